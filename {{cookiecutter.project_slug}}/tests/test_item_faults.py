"""Faults in the middle of a unit of work, on committed data (no test transaction around it):
a client that goes away and a database that drops every connection, each while PATCH waits
between its UPDATE and its event. Either both are written or neither; the connection is not
leaked (the pool gauge is back to zero); the next request is served.
"""

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.config import Settings
from app.database import Database
from app.main import create_app
from scripts.local_postgres import connect
from tests.conftest import alembic
from tests.test_item_events import history_problems

ITEM = {"name": "Widget", "price": "1.00"}


@pytest.fixture
async def app(fresh_database: URL) -> AsyncIterator[FastAPI]:
    """The app on a database of its own, committing for real (conftest's `client` uses it)."""
    result = await asyncio.to_thread(alembic, fresh_database, "upgrade", "head")
    assert result.returncode == 0, result.stderr
    settings = Settings(
        _env_file=None,
        database_url=fresh_database.render_as_string(hide_password=False),
        environment="test",
        log_level="CRITICAL",
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def admin(fresh_database: URL) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own, outside the app's pool."""
    conn = await connect(fresh_database)
    yield conn
    await conn.close()


@pytest.fixture
async def engine(fresh_database: URL) -> AsyncIterator[AsyncEngine]:
    url = fresh_database.set(drivername="postgresql+asyncpg")
    engine = create_async_engine(url)
    yield engine
    await engine.dispose()


async def patch_stuck_between_its_statements(
    client: httpx.AsyncClient, admin: asyncpg.Connection, item_id: int
) -> asyncio.Task[httpx.Response]:
    """Start a PATCH whose UPDATE has run and whose event INSERT waits for a table lock."""
    await admin.execute("BEGIN; LOCK TABLE item_events IN EXCLUSIVE MODE")
    task = asyncio.create_task(client.patch(f"/items/{item_id}", json={"name": "changed"}))
    for _ in range(500):
        waiting = await admin.fetchval(
            "SELECT count(*) FROM pg_locks WHERE relation = 'item_events'::regclass AND NOT granted"
        )
        if waiting:
            return task
        await asyncio.sleep(0.01)
    raise AssertionError("the PATCH never reached its event INSERT")


async def assert_untouched(
    client: httpx.AsyncClient, engine: AsyncEngine, database: Database, item: dict
) -> None:
    assert database.in_use == 0, "a connection was leaked"
    assert (await client.get(f"/items/{item['id']}")).json() == item
    async with engine.connect() as conn:
        assert await history_problems(conn) == []
    # The next write is served, on a working connection.
    response = await client.patch(f"/items/{item['id']}", json={"name": "after"})
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    assert database.in_use == 0


async def test_a_client_gone_mid_transaction_leaves_nothing_behind(
    client: httpx.AsyncClient,
    app: FastAPI,
    admin: asyncpg.Connection,
    engine: AsyncEngine,
) -> None:
    item = (await client.post("/items", json=ITEM)).json()
    task = await patch_stuck_between_its_statements(client, admin, item["id"])
    task.cancel()  # what a cancelled request task (timeout, shutdown) does to the endpoint
    with pytest.raises(asyncio.CancelledError):
        await task
    await admin.execute("ROLLBACK")  # release the lock
    await assert_untouched(client, engine, app.state.database, item)


async def test_database_restart_mid_transaction_is_503_and_leaves_nothing_behind(
    client: httpx.AsyncClient,
    app: FastAPI,
    admin: asyncpg.Connection,
    engine: AsyncEngine,
) -> None:
    item = (await client.post("/items", json=ITEM)).json()
    task = await patch_stuck_between_its_statements(client, admin, item["id"])
    # What a restart does to the app: the server ends every session of the app's pool.
    settings: Settings = app.state.settings
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        settings.app_name,
    )
    response = await asyncio.wait_for(task, 10)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "database_unavailable"
    assert response.headers["retry-after"]
    await admin.execute("ROLLBACK")
    await assert_untouched(client, engine, app.state.database, item)
