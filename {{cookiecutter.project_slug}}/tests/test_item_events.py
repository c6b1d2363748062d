"""Item history: every write records its event in the same transaction, and only then.

`history_problems` states the invariant (no event without its write, no write without its
event); the fuzz and fault tests check it too.
"""

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app import repository
from app.database import Database, Query

ITEM = {"name": "Widget", "description": "A useful widget", "price": "9.99"}

# Items whose events do not account for them (one "created", one "updated" per version after
# the first, no "deleted"), and events of items whose deletion is not exactly one "deleted".
HISTORY_PROBLEMS = text(
    """
    SELECT 'item ' || i.id AS problem FROM items i
    LEFT JOIN (
        SELECT item_id,
               count(*) FILTER (WHERE kind = 'created') AS created,
               count(*) FILTER (WHERE kind = 'updated') AS updated,
               count(*) FILTER (WHERE kind = 'deleted') AS deleted
        FROM item_events GROUP BY item_id
    ) e ON e.item_id = i.id
    WHERE coalesce(e.created, 0) <> 1 OR coalesce(e.updated, 0) <> i.version - 1
       OR coalesce(e.deleted, 0) <> 0
    UNION ALL
    SELECT 'events of ' || e.item_id FROM item_events e
    WHERE NOT EXISTS (SELECT 1 FROM items WHERE id = e.item_id)
    GROUP BY e.item_id
    HAVING count(*) FILTER (WHERE kind = 'deleted') <> 1
    """
)


async def history_problems(connection: AsyncConnection) -> list[str]:
    return list((await connection.execute(HISTORY_PROBLEMS)).scalars())


async def create(client: httpx.AsyncClient, request_id: str = "create-1") -> dict:
    response = await client.post("/items", json=ITEM, headers={"X-Request-ID": request_id})
    assert response.status_code == 201, response.text
    return response.json()


async def kinds_stored(connection: AsyncConnection, item_id: int) -> list[str]:
    result = await connection.execute(
        text("SELECT kind FROM item_events WHERE item_id = :id ORDER BY id"), {"id": item_id}
    )
    return list(result.scalars())


async def test_every_write_records_its_event_newest_first(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    item = await create(client, "create-1")
    url = f"/items/{item['id']}"
    for n in (1, 2):
        patched = await client.patch(
            url, json={"name": f"v{n}"}, headers={"X-Request-ID": f"up-{n}"}
        )
        assert patched.status_code == 200

    page = (await client.get(f"{url}/events")).json()
    events = page["events"]
    assert [(e["kind"], e["request_id"]) for e in events] == [
        ("updated", "up-2"),
        ("updated", "up-1"),
        ("created", "create-1"),
    ]
    assert all(e["item_id"] == item["id"] and e["occurred_at"] for e in events)
    assert events[-1]["occurred_at"] == item["created_at"]  # one statement, one timestamp
    assert (page["limit"], page["offset"]) == (20, 0)

    second = (await client.get(f"{url}/events", params={"limit": 1, "offset": 1})).json()
    assert second["events"] == [events[1]]
    past_the_end = (await client.get(f"{url}/events", params={"offset": 3})).json()
    assert past_the_end["events"] == []
    assert await history_problems(connection) == []


async def test_a_deleted_items_events_are_kept_but_answer_404(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    item = await create(client)
    deleted = await client.delete(f"/items/{item['id']}", headers={"X-Request-ID": "del-1"})
    assert deleted.status_code == 204
    response = await client.get(f"/items/{item['id']}/events")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert await kinds_stored(connection, item["id"]) == ["created", "deleted"]
    assert await history_problems(connection) == []


@pytest.mark.parametrize("item_id", ["999999999", "0", "-3", str(2**63)])
async def test_events_of_a_missing_or_bad_id_are_4xx(
    client: httpx.AsyncClient, item_id: str
) -> None:
    response = await client.get(f"/items/{item_id}/events")
    assert response.status_code == (404 if item_id == "999999999" else 422)


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"offset": -1}])
async def test_out_of_range_event_pages_are_422(client: httpx.AsyncClient, params: dict) -> None:
    item = await create(client)
    response = await client.get(f"/items/{item['id']}/events", params=params)
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("method", "body", "if_match", "status"),
    [
        ("PATCH", {"name": "x"}, '"9"', 412),
        ("PATCH", {"name": "x"}, "nonsense", 412),
        ("PATCH", {"name": ""}, None, 422),
        ("PATCH", {}, None, 422),
        ("DELETE", None, '"9"', 412),
        ("DELETE", None, "W/", 412),
    ],
)
async def test_refused_writes_record_nothing(
    client: httpx.AsyncClient,
    connection: AsyncConnection,
    method: str,
    body: dict | None,
    if_match: str | None,
    status: int,
) -> None:
    item = await create(client)
    headers = {"If-Match": if_match} if if_match else {}
    response = await client.request(method, f"/items/{item['id']}", json=body, headers=headers)
    assert response.status_code == status, response.text
    assert await kinds_stored(connection, item["id"]) == ["created"]
    assert await history_problems(connection) == []


@pytest.mark.parametrize(
    ("method", "statement"), [("PATCH", "RECORD_UPDATE"), ("DELETE", "RECORD_DELETE")]
)
async def test_a_statement_failing_halfway_rolls_back_the_write(
    client: httpx.AsyncClient,
    connection: AsyncConnection,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    statement: str,
) -> None:
    """The write's first statement succeeds, the event's fails: neither is kept."""
    item = await create(client)
    failing = Query.compile(text("SELECT CAST(:item_id AS bigint) / 0, CAST(:request_id AS text)"))
    monkeypatch.setattr(repository, statement, failing)
    response = await client.request(method, f"/items/{item['id']}", json={"name": "changed"})
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_server_error"
    assert (await client.get(f"/items/{item['id']}")).json() == item
    assert await kinds_stored(connection, item["id"]) == ["created"]
    assert await history_problems(connection) == []


async def test_an_exception_in_the_unit_of_work_rolls_it_back(
    client: httpx.AsyncClient, db: Database, connection: AsyncConnection
) -> None:
    item = await create(client)
    update = repository.UPDATE_ITEM[frozenset({"name"})]
    with pytest.raises(RuntimeError, match="halfway"):
        async with db.transaction() as tx:
            row = await tx.fetch_one(update, item_id=item["id"], versions=None, name="changed")
            assert row is not None and row["version"] == 2
            raise RuntimeError("halfway")
    assert (await client.get(f"/items/{item['id']}")).json() == item
    assert await history_problems(connection) == []
    assert db.in_use == 0
