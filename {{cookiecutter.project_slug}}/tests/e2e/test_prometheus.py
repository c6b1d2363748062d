"""Prometheus scrapes the service and its metrics are queryable (skipped without PROMETHEUS_URL)."""

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

# Prometheus scrapes every 15 s in compose: a few scrapes' worth of patience.
TIMEOUT_SECONDS = 90


def eventually(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not (result := check()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(1)
    return result


def query(prometheus: httpx.Client, expr: str) -> list[dict[str, Any]]:
    body = prometheus.get("/api/v1/query", params={"query": expr}).json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_the_app_target_is_up(prometheus: httpx.Client) -> None:
    def app_up() -> bool:
        targets = prometheus.get("/api/v1/targets").json()["data"]["activeTargets"]
        return any(t["labels"]["job"] == "app" and t["health"] == "up" for t in targets)

    eventually(app_up, "the app target to be up")


def test_app_metrics_are_queryable(client: httpx.Client, prometheus: httpx.Client) -> None:
    created = client.post("/items", json={"name": f"e2e-{uuid.uuid4().hex[:12]}", "price": "1"})
    assert created.status_code == 201
    eventually(lambda: query(prometheus, 'http_requests_total{job="app"}'), "http_requests_total")
    eventually(
        lambda: query(prometheus, 'items_created_total{job="app"} > 0'), "items_created_total"
    )
