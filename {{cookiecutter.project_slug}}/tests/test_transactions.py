"""Units of work on a real pool, on both paths of the data layer (the fast path and SQLAlchemy's
Connection execution): commit, rollback on errors and cancellation, savepoints, isolation
levels, retries, lost connections, and the ORM session on the same connection budget."""

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import cast

import pytest
from fastapi import Request
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect_module
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, IntegrityError

from app import repository
from app.config import Settings
from app.database import (
    Database,
    DatabaseUnavailable,
    Query,
    Transaction,
    create_engine,
    retry_transaction,
    sqlstate,
)
from app.errors import database_error
from app.models import Base, Item
from app.schemas import ItemCreate

CREATE_LEDGER = "CREATE TABLE ledger (note text PRIMARY KEY, amount int NOT NULL DEFAULT 0)"
ADD = Query.compile(text("INSERT INTO ledger (note) VALUES (:note)"))
NOTES = Query.compile(text("SELECT note FROM ledger ORDER BY note"))
TOTAL = Query.compile(text("SELECT count(*) AS n FROM ledger"))
PID = Query.compile(text("SELECT pg_backend_pid() AS pid"))
LEVEL = Query.compile(text("SELECT current_setting('transaction_isolation') AS level"))
CONFLICT = Query.compile(
    text("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; END $$")
)
ITEMS = Query.compile(select(func.count().label("n")).select_from(repository.items))


def make_database(settings: Settings, url: URL, *, fast: bool, connections: int = 3) -> Database:
    scratch = settings.model_copy(
        update={
            "database_url": url.set(drivername="postgresql+asyncpg").render_as_string(
                hide_password=False
            ),
            "db_pool_size": 3,
        }
    )
    return Database(create_engine(scratch), connections=connections, wait=2, fast_path=fast)


@pytest.fixture(params=[True, False], ids=["fast-path", "sqlalchemy-connection"])
async def database(
    request: pytest.FixtureRequest, settings: Settings, fresh_database: URL
) -> AsyncIterator[Database]:
    """A Database with its own pool on an empty database of the test's (no rolled-back
    transaction around it: commits are real)."""
    database = make_database(settings, fresh_database, fast=request.param)
    async with database.engine.begin() as conn:
        await conn.execute(text(CREATE_LEDGER))
        await conn.run_sync(Base.metadata.create_all)
    yield database
    assert database.in_use == 0, "a connection was left checked out"
    await database.close()


async def notes(database: Database) -> list[str]:
    return [row["note"] for row in await database.fetch(NOTES)]


async def test_a_unit_of_work_commits_when_its_block_ends(database: Database) -> None:
    async with database.transaction() as tx:
        await tx.fetch(ADD, note="a")
        await tx.fetch(ADD, note="b")
        assert await tx.fetch_one(TOTAL) == {"n": 2}
        assert database.in_use == 1  # one connection for the whole unit of work

    assert await notes(database) == ["a", "b"]


async def test_an_error_halfway_rolls_everything_back(database: Database) -> None:
    with pytest.raises(IntegrityError):
        async with database.transaction() as tx:
            await tx.fetch(ADD, note="a")
            await tx.fetch(ADD, note="a")  # duplicate key: the unit of work fails here

    with pytest.raises(LookupError):
        async with database.transaction() as tx:
            await tx.fetch(ADD, note="b")
            raise LookupError("not the database's error")

    assert await notes(database) == []
    assert database.in_use == 0


async def test_a_cancelled_unit_of_work_leaves_nothing_and_no_connection(
    database: Database,
) -> None:
    started = asyncio.Event()
    pids: list[int] = []

    async def work() -> None:
        async with database.transaction() as tx:
            await tx.fetch(ADD, note="a")
            pids.append((await tx.fetch_one(PID))["pid"])  # type: ignore[index]
            started.set()
            await tx.fetch(Query.compile(text("SELECT pg_sleep(5)")))

    task = asyncio.create_task(work())
    await started.wait()
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await notes(database) == []
    assert database.in_use == 0
    # Its connection was closed, not kept: the server session is gone.
    backend = Query.compile(text("SELECT count(*) AS n FROM pg_stat_activity WHERE pid = :pid"))
    for _ in range(100):
        if await database.fetch_one(backend, pid=pids[0]) == {"n": 0}:
            break
        await asyncio.sleep(0.02)
    assert await database.fetch_one(backend, pid=pids[0]) == {"n": 0}


async def test_a_savepoint_rolls_back_alone(database: Database) -> None:
    async with database.transaction() as tx:
        await tx.fetch(ADD, note="outer")
        with pytest.raises(IntegrityError):
            async with tx.transaction() as inner:
                await inner.fetch(ADD, note="inner")
                await inner.fetch(ADD, note="outer")  # fails: only the savepoint rolls back
        async with tx.transaction() as inner:
            await inner.fetch(ADD, note="kept")

    assert await notes(database) == ["kept", "outer"]


@pytest.mark.parametrize(
    ("isolation", "level"),
    [
        ("read_committed", "read committed"),
        ("repeatable_read", "repeatable read"),
        ("serializable", "serializable"),
    ],
)
async def test_the_isolation_level_is_the_one_asked_for(
    database: Database, isolation: str, level: str
) -> None:
    async with database.transaction(isolation=isolation) as tx:  # type: ignore[arg-type]
        assert await tx.fetch_one(LEVEL) == {"level": level}
        before = await tx.fetch_one(TOTAL)
        await database.fetch(ADD, note="from another connection")
        after = await tx.fetch_one(TOTAL)
    assert (after == before) is (isolation != "read_committed")  # a snapshot, or not


async def test_bad_use_is_refused_clearly(database: Database) -> None:
    with pytest.raises(ValueError, match=r"isolation='chaos': must be one of"):
        async with database.transaction(isolation="chaos"):  # type: ignore[arg-type]
            pass
    async with database.transaction() as tx:
        pass
    with pytest.raises(RuntimeError, match="the transaction is over"):
        await tx.fetch(TOTAL)


async def test_a_lost_connection_mid_transaction_is_discarded(
    database: Database, settings: Settings
) -> None:
    observer = Database.from_settings(settings)
    with pytest.raises((DBAPIError, DatabaseUnavailable)) as lost:
        async with database.transaction() as tx:
            await tx.fetch(ADD, note="a")
            pid = (await tx.fetch_one(PID))["pid"]  # type: ignore[index]
            await observer.fetch(Query.compile(text(f"SELECT pg_terminate_backend({pid})")))
            await tx.fetch(ADD, note="b")
    await observer.close()

    # SQLAlchemy's own error (2.1) or, where it leaves asyncpg's untranslated (2.0), ours:
    # both are answered with 503.
    if isinstance(lost.value, DBAPIError):
        assert lost.value.connection_invalidated
    assert await notes(database) == []  # the server rolled the unit of work back
    assert database.in_use == 0


async def test_an_unreachable_server_is_database_unavailable(settings: Settings) -> None:
    for fast in (True, False):
        unreachable = URL.create("postgresql+asyncpg", "app", "x", "127.0.0.1", 9, "none")
        database = make_database(settings, unreachable, fast=fast)
        with pytest.raises(DatabaseUnavailable):
            async with database.transaction():
                pass
        assert database.in_use == 0
        await database.close()


async def test_retry_runs_a_unit_of_work_again_after_a_serialization_failure(
    database: Database,
) -> None:
    attempts: list[str] = []
    both_read = asyncio.Barrier(2)

    async def add_if_total_is_even(tx: Transaction, note: str) -> None:
        attempts.append(note)
        total = (await tx.fetch_one(TOTAL))["n"]  # type: ignore[index]
        if len(attempts) <= 2:
            await both_read.wait()  # the first two attempts overlap: one must fail
        await tx.fetch(ADD, note=f"{note}{total}")

    await asyncio.gather(
        retry_transaction(database, lambda tx: add_if_total_is_even(tx, "a")),
        retry_transaction(database, lambda tx: add_if_total_is_even(tx, "b")),
    )
    assert len(attempts) == 3  # one of the two ran again
    assert sorted(note[1] for note in await notes(database)) == ["0", "1"]


async def test_retry_gives_up_and_lets_other_errors_through(database: Database) -> None:
    calls: list[int] = []

    async def duplicate(tx: Transaction) -> None:
        calls.append(1)
        await tx.fetch(ADD, note="x")
        await tx.fetch(ADD, note="x")

    with pytest.raises(IntegrityError):
        await retry_transaction(database, duplicate)
    assert len(calls) == 1  # not retryable

    calls.clear()

    async def always_conflicts(tx: Transaction) -> None:
        calls.append(1)
        await tx.fetch(CONFLICT)

    with pytest.raises(DBAPIError) as error:
        await retry_transaction(database, always_conflicts, attempts=3)
    assert sqlstate(error.value) == "40001" and len(calls) == 3


async def test_the_orm_session_really_transacts(database: Database) -> None:
    with pytest.raises(ZeroDivisionError):
        async with database.session() as session, session.begin():
            session.add(Item(name="half", description=None, price=1))
            await session.flush()  # the INSERT has run, inside the transaction
            _ = 1 / 0

    async with database.session() as session, session.begin():
        session.add(Item(name="whole", description=None, price=1))

    assert await database.fetch_one(ITEMS) == {"n": 1}


async def test_the_orm_and_the_data_layer_share_the_connections(
    settings: Settings, fresh_database: URL
) -> None:
    database = make_database(settings, fresh_database, fast=True, connections=2)
    async with database.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)

    async def orm() -> None:
        async with database.session() as session, session.begin():
            session.add(Item(name="orm", description=None, price=1))

    async def core() -> None:
        async with database.transaction() as tx:
            await tx.fetch_one(ITEMS)
            await asyncio.sleep(0.01)

    # Two kept connections fill the pool of two: the ORM must still get one.
    await asyncio.gather(database.fetch(PID), database.fetch(PID))
    assert len(database.idle) == 2
    await asyncio.gather(*(orm() if n % 2 else core() for n in range(20)))

    assert await database.fetch_one(ITEMS) == {"n": 10}
    assert database.in_use == 0
    await database.close()


async def test_the_fast_path_answers_as_the_public_path_does(
    settings: Settings, fresh_database: URL
) -> None:
    fast = make_database(settings, fresh_database, fast=True)
    core = make_database(settings, fresh_database, fast=False)
    async with core.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.execute(text(CREATE_LEDGER))
    for n in range(3):
        await repository.create_item(core, ItemCreate(name=f"n{n}", description="d", price="2.5"))
    for query, values in [
        (repository.SELECT_PAGE, {"limit": 10, "offset": 0}),
        (repository.SELECT_ITEM, {"item_id": 2}),
        (LEVEL, {}),
    ]:
        assert await fast.fetch(query, **values) == await core.fetch(query, **values)
    assert await fast.fetch(ADD, note="once") == await core.fetch(ADD, note="twice") == []
    for query, error in [(ADD, IntegrityError), (Query.compile(text("SELECT 1 / 0")), DBAPIError)]:
        outcomes = []
        for database in (fast, core):
            with pytest.raises(error) as raised:
                await database.fetch(query, **({"note": "once"} if query is ADD else {}))
            outcomes.append((type(raised.value), sqlstate(raised.value)))
        assert outcomes[0] == outcomes[1]
    await fast.close()
    await core.close()


async def test_a_missing_internal_turns_the_fast_path_off_with_one_warning(
    settings: Settings,
    fresh_database: URL,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    adapter = asyncpg_dialect_module.AsyncAdapt_asyncpg_connection
    monkeypatch.setattr(adapter, "_handle_exception", None)  # gone in a future release
    with caplog.at_level(logging.WARNING, logger="app.database"):
        database = make_database(settings, fresh_database, fast=True)
        assert await database.fetch(LEVEL) == [{"level": "read committed"}]
        async with database.transaction() as tx:
            assert await tx.fetch_one(LEVEL) == {"level": "read committed"}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "_handle_exception" in warnings[0]
    assert not database.fast
    await database.close()


async def test_an_internal_that_misbehaves_turns_the_fast_path_off_on_first_use(
    settings: Settings,
    fresh_database: URL,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    adapter = asyncpg_dialect_module.AsyncAdapt_asyncpg_connection

    def swallows(self: object, error: Exception) -> None:
        return None  # a release where it no longer raises the translated error

    monkeypatch.setattr(adapter, "_handle_exception", swallows)
    with caplog.at_level(logging.WARNING, logger="app.database"):
        database = make_database(settings, fresh_database, fast=True)
        assert database.fast  # the attribute is there: only using it shows the change
        assert await database.fetch(LEVEL) == [{"level": "read committed"}]
        await database.fetch(LEVEL)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "division by zero" in warnings[0]
    assert not database.fast and database.idle == []
    await database.close()


async def test_units_of_work_inside_the_tests_transaction_are_savepoints(db: Database) -> None:
    with pytest.raises(LookupError):
        async with db.transaction() as tx:
            await repository.create_item(tx, ItemCreate(name="gone", description=None, price="1"))
            raise LookupError
    async with db.transaction(isolation="serializable") as tx:
        kept = await repository.create_item(
            tx, ItemCreate(name="kept", description=None, price="1")
        )

    assert await repository.get_item(db, kept["id"]) == kept
    page = await repository.list_items(db, limit=100, offset=0)
    assert "gone" not in {row["name"] for row in page}


async def test_a_conflict_that_outlived_its_retries_is_a_409(database: Database) -> None:
    async def always_conflicts(tx: Transaction) -> None:
        await tx.fetch(CONFLICT)

    with pytest.raises(DBAPIError) as error:
        await retry_transaction(database, always_conflicts, attempts=1)
    response = await database_error(cast(Request, None), error.value)

    assert response.status_code == 409 and response.headers["retry-after"] == "1"
    assert json.loads(response.body)["error"]["code"] == "concurrent_change"
