"""The floor the rendered app is measured against: a raw ASGI callable on an asyncpg pool and
orjson, running the same SQL as the app and answering with the same JSON shapes.

Served by uvicorn from the rendered project's venv: `uvicorn reference_app:app --app-dir bench`.
It reads DATABASE_URL (a plain postgresql:// URL) like the app does.
"""

import os
from decimal import Decimal
from urllib.parse import parse_qsl

import asyncpg
import orjson

# The statements SQLAlchemy Core renders for app/repository.py.
COLUMNS = "items.id, items.name, items.description, items.price, items.created_at, items.version"
GET_ITEM = f"SELECT {COLUMNS} FROM items WHERE items.id = $1"
LIST_ITEMS = f"SELECT {COLUMNS} FROM items ORDER BY items.id LIMIT $1 OFFSET $2"
# Create: the item and its event in one statement (a data-modifying CTE), as the app does.
CREATE_ITEM = (
    "WITH new_item AS (INSERT INTO items (name, description, price) VALUES ($2, $3, $4) "
    f"RETURNING {COLUMNS}), "
    "anon_1 AS (INSERT INTO item_events (item_id, kind, request_id) "
    "SELECT new_item.id, 'created', $1 FROM new_item) "
    "SELECT new_item.id, new_item.name, new_item.description, new_item.price, "
    "new_item.created_at, new_item.version FROM new_item"
)
# Update: these two in one transaction, as the app's Database.transaction() runs them.
UPDATE_ITEM = (
    "UPDATE items SET name=$1, price=$2, version=(items.version + 1) "
    "WHERE items.id = $3 AND ($4::INTEGER[] IS NULL OR items.version = ANY ($4::INTEGER[])) "
    f"RETURNING {COLUMNS}"
)
RECORD_UPDATE = "INSERT INTO item_events (item_id, kind, request_id) SELECT $1, 'updated', $2"
POOL_SIZE = 10  # the app's default DB_POOL_SIZE
JSON_HEADERS = [(b"content-type", b"application/json")]

pool: asyncpg.Pool | None = None


def item_json(row: asyncpg.Record) -> dict[str, object]:
    # As pydantic serializes ItemRead: price a decimal string, created_at ISO 8601 with "Z".
    return {
        "id": row[0],
        "name": row[1],
        "description": row[2],
        "price": str(row[3]),
        "created_at": row[4],
        "version": row[5],
    }


async def respond(send, status: int, body: object, headers: list | None = None) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": headers or JSON_HEADERS}
    )
    await send({"type": "http.response.body", "body": orjson.dumps(body, option=orjson.OPT_UTC_Z)})


async def respond_item(send, status: int, row: asyncpg.Record) -> None:
    """The item with its version as ETag, as the app sends it."""
    await respond(send, status, item_json(row), [*JSON_HEADERS, (b"etag", b'"%d"' % row[5])])


async def read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def lifespan(receive, send) -> None:
    global pool
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            pool = await asyncpg.create_pool(
                os.environ["DATABASE_URL"], min_size=POOL_SIZE, max_size=POOL_SIZE
            )
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def get_item(send, raw_id: str) -> None:
    if not raw_id.isdigit():
        await respond(send, 422, {"error": "id must be a positive integer"})
        return
    row = await pool.fetchrow(GET_ITEM, int(raw_id))
    if row is None:
        await respond(send, 404, {"error": "not found"})
    else:
        await respond_item(send, 200, row)


async def list_items(send, query_string: bytes) -> None:
    query = dict(parse_qsl(query_string.decode("latin-1")))
    try:
        limit, offset = int(query.get("limit", 20)), int(query.get("offset", 0))
    except ValueError:
        await respond(send, 422, {"error": "limit and offset must be integers"})
        return
    rows = await pool.fetch(LIST_ITEMS, limit, offset)
    await respond(
        send, 200, {"items": [item_json(r) for r in rows], "limit": limit, "offset": offset}
    )


async def create_item(send, receive) -> None:
    try:
        data = orjson.loads(await read_body(receive))
        values = (data["name"], data.get("description"), Decimal(str(data["price"])))
    except (orjson.JSONDecodeError, KeyError, TypeError, ArithmeticError):
        await respond(send, 422, {"error": "invalid item"})
        return
    row = await pool.fetchrow(CREATE_ITEM, os.urandom(16).hex(), *values)  # the request id
    await respond_item(send, 201, row)


async def update_item(send, receive, raw_id: str) -> None:
    try:
        item_id = int(raw_id)
        data = orjson.loads(await read_body(receive))
        values = (data["name"], Decimal(str(data["price"])))
    except (ValueError, orjson.JSONDecodeError, KeyError, TypeError, ArithmeticError):
        await respond(send, 422, {"error": "invalid update"})
        return
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(UPDATE_ITEM, *values, item_id, None)  # no If-Match
        if row is not None:
            await conn.execute(RECORD_UPDATE, item_id, os.urandom(16).hex())
    if row is None:
        await respond(send, 404, {"error": "not found"})
    else:
        await respond_item(send, 200, row)


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    method, path = scope["method"], scope["path"]
    if path == "/health":
        await respond(send, 200, {"status": "ok"})
    elif path == "/health/ready":
        await pool.fetchval("SELECT 1")
        await respond(send, 200, {"status": "ready"})
    elif path.startswith("/items/") and method == "GET":
        await get_item(send, path.removeprefix("/items/"))
    elif path.startswith("/items/") and method == "PATCH":
        await update_item(send, receive, path.removeprefix("/items/"))
    elif path == "/items" and method == "GET":
        await list_items(send, scope["query_string"])
    elif path == "/items" and method == "POST":
        await create_item(send, receive)
    else:
        await respond(send, 404, {"error": "not found"})
