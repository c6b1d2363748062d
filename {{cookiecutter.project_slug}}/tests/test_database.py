"""The data layer on a real PostgreSQL: precompiled statements, SQLAlchemy's errors, lost
connections leaving the pool, connections kept between statements."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import bindparam, event, select, text
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection

from app import repository
from app.config import Settings
from app.database import SELECT_ONE, Database, DatabaseUnavailable, Query, create_engine
from app.schemas import ItemCreate

BACKEND_PID = Query.compile(text("SELECT pg_backend_pid() AS pid"))


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    """A Database on its own pool (autocommit, as in the app): for read-only checks. On the
    fast path whatever FAST_PATHS says: these tests are about its connection handling."""
    database = Database.from_settings(settings.model_copy(update={"fast_paths": True}))
    yield database
    await database.close()


async def test_statements_return_what_sqlalchemy_core_returns(
    db: Database, connection: AsyncConnection
) -> None:
    for n in range(3):
        await repository.create_item(db, ItemCreate(name=f"n{n}", description=None, price="1.5"))

    page = await repository.list_items(db, limit=10, offset=0)
    items = repository.items
    core = await connection.execute(
        select(*repository.COLUMNS).order_by(items.c.id).limit(bindparam("limit")),
        {"limit": 10},
    )
    assert page == [dict(row) for row in core.mappings()]
    assert len(page) >= 3
    assert await repository.get_item(db, page[0]["id"]) == page[0]
    assert await repository.get_item(db, 2**63 - 1) is None


async def test_a_statement_error_is_sqlalchemys(database: Database) -> None:
    with pytest.raises(ProgrammingError, match="no_such_table"):
        await database.fetch(Query.compile(text("SELECT * FROM no_such_table")))
    assert await database.is_reachable()


def test_arguments_must_match_the_statements_parameters() -> None:
    with pytest.raises(TypeError, match="item_id"):
        repository.SELECT_ITEM.arguments({"id": 1})
    with pytest.raises(TypeError, match="limit"):
        repository.SELECT_PAGE.arguments({"limit": 1, "offset": 0, "extra": 2})
    assert repository.SELECT_PAGE.arguments({"offset": 5, "limit": 1}) == (1, 5)


async def test_a_lost_connection_leaves_the_pool(
    database: Database, connection: AsyncConnection
) -> None:
    pid = (await database.fetch_one(BACKEND_PID))["pid"]  # type: ignore[index]
    await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    # The pool hands out the dead connection once; the error says it was invalidated (or,
    # where SQLAlchemy 2.0 leaves asyncpg's error untranslated, that the connection broke)...
    with pytest.raises((DBAPIError, DatabaseUnavailable)) as lost:
        for _ in range(database.engine.pool.size() + 1):
            await database.fetch(BACKEND_PID)
    if isinstance(lost.value, DBAPIError):
        assert lost.value.connection_invalidated
    # ...and the next statement runs on a fresh one.
    assert (await database.fetch_one(BACKEND_PID))["pid"] != pid  # type: ignore[index]


async def test_callers_beyond_the_pool_queue_first_come_first_served(settings: Settings) -> None:
    database = Database(create_engine(settings), connections=1, wait=5)
    sleep = Query.compile(text("SELECT pg_sleep(0.2)"))
    done: list[int] = []

    async def caller(n: int) -> None:
        await database.fetch(sleep if n == 0 else SELECT_ONE)
        done.append(n)

    tasks = []
    for n in range(4):
        tasks.append(asyncio.create_task(caller(n)))
        await asyncio.sleep(0.01)  # 0 holds the one connection; 1, 2, 3 queue in this order
    await asyncio.gather(*tasks)
    assert done == [0, 1, 2, 3]
    await database.close()


async def test_a_caller_waits_at_most_the_pool_timeout(settings: Settings) -> None:
    database = Database(create_engine(settings), connections=1, wait=0.1)
    slow = asyncio.create_task(database.fetch(Query.compile(text("SELECT pg_sleep(0.5)"))))
    await asyncio.sleep(0.05)
    with pytest.raises(DatabaseUnavailable, match=r"within 0\.1 s"):
        await database.fetch(SELECT_ONE)
    await slow
    assert await database.fetch(SELECT_ONE) == [{"?column?": 1}]  # no slot was lost
    await database.close()


async def test_a_cancelled_waiter_leaves_the_queue_without_a_slot(settings: Settings) -> None:
    database = Database(create_engine(settings), connections=1, wait=5)
    slow = asyncio.create_task(database.fetch(Query.compile(text("SELECT pg_sleep(0.2)"))))
    await asyncio.sleep(0.05)
    queued = asyncio.create_task(database.fetch(SELECT_ONE))
    await asyncio.sleep(0.01)
    queued.cancel()
    await slow
    assert await database.fetch(SELECT_ONE) == [{"?column?": 1}]
    assert (database.slots.free, len(database.slots.waiters)) == (1, 0)
    with pytest.raises(asyncio.CancelledError):
        await queued
    await database.close()


def count_checkins(database: Database) -> list[int]:
    checkins: list[int] = []
    event.listen(database.engine.sync_engine.pool, "checkin", lambda *_: checkins.append(1))
    return checkins


async def test_a_connection_is_kept_between_statements(database: Database) -> None:
    checkins = count_checkins(database)

    pids = {(await database.fetch_one(BACKEND_PID))["pid"] for _ in range(3)}  # type: ignore[index]

    assert len(pids) == 1 and checkins == []
    assert (len(database.idle), database.in_use) == (1, 0)
    await database.close()
    assert checkins == [1]  # returned to the pool on close


async def test_a_kept_connection_goes_back_to_the_pool_after_the_hold(database: Database) -> None:
    database.HOLD_SECONDS = 0  # every statement finds its kept connection too old
    checkins = count_checkins(database)

    for _ in range(3):
        await database.fetch(SELECT_ONE)

    assert len(checkins) == 2  # the pool saw each again, and could recycle or invalidate it


async def test_a_statement_cancelled_midway_discards_its_connection(database: Database) -> None:
    sleep = Query.compile(text("SELECT pg_sleep(5)"))
    await database.fetch(SELECT_ONE)
    kept = database.idle[0].connection

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await database.fetch(sleep)

    assert not kept.is_valid and database.idle == [] and database.in_use == 0
    assert await database.is_reachable()  # on a new connection
