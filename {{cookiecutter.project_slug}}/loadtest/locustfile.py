"""Load test: the benchmark's mix of reads and writes (W1 item by id, W2 page, W3 create).

locust is not a dependency of the service; run it with uvx against a running instance:

    uvx locust -f loadtest/locustfile.py --host http://127.0.0.1:8000
    uvx locust -f loadtest/locustfile.py --host http://127.0.0.1:8000 \
        --headless --users 32 --spawn-rate 32 --run-time 1m

Ids and offsets are drawn from 1..ITEM_ID_MAX (default 10000): seed that many items first.
"""

import os
import random

from locust import FastHttpUser, task

ITEM_ID_MAX = int(os.environ.get("ITEM_ID_MAX", "10000"))
PAGE_SIZE = 50
NEW_ITEM = {"name": "Load-test widget", "description": "Created by locust", "price": 9.99}


class ApiUser(FastHttpUser):
    """One client; no think time, so users x rps per user is the offered load."""

    @task(6)
    def get_item(self) -> None:
        item_id = random.randint(1, ITEM_ID_MAX)
        self.client.get(f"/items/{item_id}", name="/items/[id]")

    @task(2)
    def list_page(self) -> None:
        offset = random.randint(0, max(ITEM_ID_MAX - PAGE_SIZE, 0))
        self.client.get(f"/items?limit={PAGE_SIZE}&offset={offset}", name="/items?offset=[n]")

    @task(1)
    def create_item(self) -> None:
        self.client.post("/items", json=NEW_ITEM)
