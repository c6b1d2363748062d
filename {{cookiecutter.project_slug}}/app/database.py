"""The data layer's runtime: pooled connections, precompiled statements, units of work, readiness.

Statements are written with SQLAlchemy Core (app/repository.py) and compiled once, at import, by
SQLAlchemy's asyncpg dialect. `Database.fetch` runs one statement on its own; `transaction()`
holds one connection for several (savepoints when nested); `session()` is an ORM AsyncSession
on the same connection budget.

The fast path runs a statement with asyncpg (and its prepared-statement cache) on a connection
of SQLAlchemy's pool, kept out of the pool between statements for a while, and raises errors as
SQLAlchemy's exceptions, as its asyncpg adapter translates them. It skips the Engine/Connection
execution layer and the DBAPI cursor, which cost more CPU than a one-row statement
(bench/README.md), and so leans on two SQLAlchemy internals (the adapter's `_handle_exception`,
the pool's `_invalidate`). They are checked when the Database is made and again on its first
connection; if either is missing or misbehaves (or `FAST_PATHS=false`), every statement runs
through SQLAlchemy's public Connection execution instead, after one warning line.
"""

import asyncio
import inspect
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NoReturn, Protocol, TypeVar, cast

from fastapi import Depends, Request
from sqlalchemy import ClauseElement, Executable, PoolProxiedConnection, text
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect_module
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import Pool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

from app.config import Settings
from app.db_credentials import use_credentials

logger = logging.getLogger(__name__)

Record = dict[str, Any]
T = TypeVar("T")

DIALECT = asyncpg_dialect_module.dialect()  # type: ignore[no-untyped-call]

Isolation = Literal["read_committed", "repeatable_read", "serializable"]
ISOLATION_SQL: dict[str, str] = {
    "read_committed": "READ COMMITTED",
    "repeatable_read": "REPEATABLE READ",
    "serializable": "SERIALIZABLE",
}
# serialization_failure and deadlock_detected: the unit of work may succeed if run again.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})


class DatabaseUnavailable(Exception):
    """The database could not be reached in time; the request is answered with 503."""


@dataclass(frozen=True, slots=True)
class Query:
    """A Core statement compiled once: its SQL and the names of its parameters, in order."""

    sql: str
    parameters: tuple[str, ...]
    statement: ClauseElement = field(compare=False, repr=False)

    @classmethod
    def compile(cls, statement: ClauseElement) -> "Query":
        compiled = cast(SQLCompiler, statement.compile(dialect=DIALECT))
        return cls(compiled.string, tuple(compiled.positiontup or ()), statement)

    def arguments(self, values: Mapping[str, object]) -> tuple[object, ...]:
        try:
            if len(values) == len(self.parameters):
                return tuple(values[name] for name in self.parameters)
        except KeyError:
            pass
        raise TypeError(f"the query takes {self.parameters}, not {tuple(values)}: {self.sql!r}")


class Executor(Protocol):
    """What runs statements: the Database (each on its own) or a Transaction (all on one)."""

    async def fetch(self, query: Query, /, **values: object) -> list[Record]: ...

    async def fetch_one(self, query: Query, /, **values: object) -> Record | None: ...


SELECT_ONE = Query.compile(text("SELECT 1"))
# The fast path's check on its first connection: a known error, translated as SQLAlchemy would.
DIVISION_BY_ZERO = Query.compile(text("SELECT 1 / 0"))


def sqlstate(error: BaseException) -> str | None:
    """PostgreSQL's SQLSTATE of a database error, if it has one."""
    original = getattr(error, "orig", error)
    return getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)


def broken_connection(error: BaseException) -> bool:
    """An asyncpg error that SQLAlchemy's adapter left untranslated: its protocol state is off.

    Seen on SQLAlchemy 2.0 after the server ended the session (InternalClientError, "another
    operation is in progress"); 2.1 translates it. The connection is not used again.
    """
    return not isinstance(error, DBAPIError) and type(error).__module__.startswith("asyncpg")


def create_engine(settings: Settings) -> AsyncEngine:
    # AUTOCOMMIT: a statement of the data layer stands alone, so a read is one round trip (no
    # BEGIN/ROLLBACK around it); units of work say BEGIN themselves (Database.transaction).
    engine = create_async_engine(
        settings.sqlalchemy_url,
        isolation_level="AUTOCOMMIT",
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=1800,
        pool_reset_on_return=None,
        connect_args={
            "timeout": settings.db_connect_timeout,
            # A client-side bound too: a frozen server never enforces its statement_timeout.
            "command_timeout": settings.db_statement_timeout_ms / 1000 + 1,
            "server_settings": {
                "application_name": settings.app_name,
                "statement_timeout": str(settings.db_statement_timeout_ms),
            },
        },
    )
    use_credentials(engine, settings)  # a password or token per new connection, and TLS
    return engine


def fast_path_missing() -> str | None:
    """What the fast path needs from SQLAlchemy and does not find, or None."""
    adapter = getattr(asyncpg_dialect_module, "AsyncAdapt_asyncpg_connection", None)
    handle = getattr(adapter, "_handle_exception", None)
    if not callable(handle) or len(inspect.signature(handle).parameters) != 2:
        return "the asyncpg adapter's _handle_exception(error)"
    invalidate = getattr(Pool, "_invalidate", None)
    if not callable(invalidate) or list(inspect.signature(invalidate).parameters)[:3] != [
        "self",
        "connection",
        "exception",
    ]:
        return "Pool._invalidate(connection, exception)"
    return None


class Slots:
    """At most `capacity` holders at a time; the others queue first come, first served, each
    for at most `wait` seconds, then get DatabaseUnavailable.

    asyncio.Semaphore under asyncio.timeout() does the same, but arms and cancels a timer per
    waiter: ~10 us per request when every request queues. Here deadlines are in queue order,
    so one timer, set for the oldest waiter, serves the whole queue.
    """

    def __init__(self, capacity: int, wait: float) -> None:
        self.capacity = capacity
        self.free = capacity
        self.wait = wait
        self.waiters: deque[tuple[float, asyncio.Future[None]]] = deque()
        self.timer: asyncio.TimerHandle | None = None

    async def acquire(self) -> None:
        if self.free and not self.waiters:
            self.free -= 1
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self.waiters.append((loop.time() + self.wait, waiter))
        if self.timer is None:
            self.timer = loop.call_at(self.waiters[0][0], self._expire)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as it was cancelled: pass it on
            raise

    def release(self) -> None:
        while self.waiters:
            _, waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes straight to the oldest waiter
                return
        self.free += 1

    def _expire(self) -> None:
        self.timer = None
        loop = asyncio.get_running_loop()
        while self.waiters and self.waiters[0][0] <= loop.time():
            _, waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(
                    DatabaseUnavailable(f"no database connection free within {self.wait} s")
                )
        if self.waiters:
            self.timer = loop.call_at(self.waiters[0][0], self._expire)


class Link:
    """One connection, held by one caller: runs statements and plain SQL (BEGIN, COMMIT)."""

    async def run(
        self, query: Query, arguments: tuple[object, ...], values: Mapping[str, object]
    ) -> list[Record]:
        raise NotImplementedError

    async def execute(self, sql: str) -> None:
        raise NotImplementedError

    async def release(self, *, discard: bool = False) -> None:
        """Give the connection back; `discard` closes it (its state is unknown)."""
        raise NotImplementedError


class FastLink(Link):
    """The fast path: asyncpg's own calls on a connection of SQLAlchemy's pool."""

    __slots__ = ("connection", "database", "driver", "taken")

    def __init__(self, database: "Database", connection: PoolProxiedConnection, taken: float):
        self.database = database
        self.connection = connection
        self.driver = cast(Any, connection.driver_connection)
        self.taken = taken

    async def run(
        self, query: Query, arguments: tuple[object, ...], values: Mapping[str, object]
    ) -> list[Record]:
        try:
            rows = await self.driver.fetch(query.sql, *arguments)
        except Exception as error:
            await greenlet_spawn(self._raise_translated, error, query.sql, arguments)
            raise  # not reached: _raise_translated always raises
        except BaseException:
            # Cancelled mid-statement: the connection's state is unknown, so it is not reused.
            await greenlet_spawn(self.connection.invalidate)
            raise
        return [dict(row) for row in rows]

    async def execute(self, sql: str) -> None:
        try:
            await self.driver.execute(sql)
        except Exception as error:
            await greenlet_spawn(self._raise_translated, error, sql, ())
        except BaseException:
            await greenlet_spawn(self.connection.invalidate)
            raise

    async def release(self, *, discard: bool = False) -> None:
        if discard and self.connection.is_valid:
            await greenlet_spawn(self.connection.invalidate)
        if self.connection.is_valid:  # not invalidated by a lost connection or a cancellation
            self.database.idle.append(self)

    def _raise_translated(
        self, error: Exception, sql: str, arguments: tuple[object, ...]
    ) -> NoReturn:
        """Raise `error` as SQLAlchemy would have: its DBAPIError subclass, the pool updated."""
        database = self.database
        dialect = database.engine.dialect
        adapter = cast(Any, self.connection.dbapi_connection)
        try:
            adapter._handle_exception(error)  # the asyncpg adapter's translation to DBAPI errors
        except dialect.loaded_dbapi.Error as dbapi_error:
            # As SQLAlchemy's Connection does: a lost connection is dropped from the pool, with
            # every connection opened before it (a restarted server has closed them all).
            lost = dialect.is_disconnect(dbapi_error, adapter, None)
            if lost:
                database.engine.sync_engine.pool._invalidate(self.connection, dbapi_error)
                database._return_idle()  # the pool replaces them when they are next taken
            raise DBAPIError.instance(
                sql,
                arguments,
                dbapi_error,
                dialect.loaded_dbapi.Error,
                connection_invalidated=lost,
                dialect=dialect,
            ) from error
        except Exception as untranslated:  # SQLAlchemy 2.0 re-raises what it does not map
            error = untranslated
        if broken_connection(error):
            database.engine.sync_engine.pool._invalidate(self.connection, error)
            database._return_idle()
            raise DatabaseUnavailable(f"the connection broke: {error!r}") from error
        raise error  # not the database's (a timeout, say): as it is


class CoreLink(Link):
    """The public path: SQLAlchemy's AsyncConnection, which compiles, executes and translates."""

    __slots__ = ("connection",)

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    @classmethod
    async def open(cls, engine: AsyncEngine) -> "CoreLink":
        try:
            return cls(await engine.connect())
        except (OSError, TimeoutError, PoolTimeoutError, DBAPIError) as exc:
            raise DatabaseUnavailable(str(exc)) from exc

    async def run(
        self, query: Query, arguments: tuple[object, ...], values: Mapping[str, object]
    ) -> list[Record]:
        try:
            result = await self.connection.execute(cast(Executable, query.statement), dict(values))
        except BaseException as error:
            await self._discard_if_broken(error)
            raise
        return [dict(row) for row in result.mappings()] if result.returns_rows else []

    async def execute(self, sql: str) -> None:
        try:
            await self.connection.exec_driver_sql(sql)
        except BaseException as error:
            await self._discard_if_broken(error)
            raise

    async def _discard_if_broken(self, error: BaseException) -> None:
        if not isinstance(error, Exception):  # cancelled mid-statement: state unknown
            await self.connection.invalidate()
        elif broken_connection(error):
            await self.connection.invalidate()
            raise DatabaseUnavailable(f"the connection broke: {error!r}") from error

    async def release(self, *, discard: bool = False) -> None:
        if discard and not self.connection.invalidated:
            await self.connection.invalidate()
        await self.connection.close()


class Transaction:
    """A unit of work on one connection: the same `fetch` and `fetch_one` as Database."""

    __slots__ = ("clean", "depth", "link", "open")

    def __init__(self, link: Link, depth: int) -> None:
        self.link = link
        self.depth = depth  # 0: the transaction itself; n > 0: the n-th savepoint inside it
        self.open = False
        self.clean = False  # ended by COMMIT or a ROLLBACK that went through

    async def fetch(self, query: Query, /, **values: object) -> list[Record]:
        """The rows `query` returns (none for a plain write), as dicts keyed by column."""
        if not self.open:
            raise RuntimeError("the transaction is over: run statements inside its `async with`")
        return await self.link.run(query, query.arguments(values), values)

    async def fetch_one(self, query: Query, /, **values: object) -> Record | None:
        rows = await self.fetch(query, **values)
        return rows[0] if rows else None

    def transaction(self) -> AbstractAsyncContextManager["Transaction"]:
        """A nested unit of work: a SAVEPOINT, rolled back alone if its body raises."""
        if not self.open:
            raise RuntimeError("the transaction is over: nest inside its `async with`")
        return Transaction(self.link, self.depth + 1).scope(None)

    @asynccontextmanager
    async def scope(self, isolation: Isolation | None) -> AsyncIterator["Transaction"]:
        """BEGIN (or SAVEPOINT) now; COMMIT (RELEASE) on normal exit, ROLLBACK on an error.

        A cancellation gets no ROLLBACK (it could be cancelled again halfway): the connection
        is then closed by its owner, which ends the transaction on the server.
        """
        savepoint = f"unit_of_work_{self.depth}"
        if self.depth:
            await self.link.execute(f"SAVEPOINT {savepoint}")
        else:
            level = ISOLATION_SQL[isolation or "read_committed"]
            await self.link.execute(f"BEGIN ISOLATION LEVEL {level}")
        self.open = True
        try:
            yield self
        except Exception:
            self.open = False
            with suppress(Exception):  # the body's error is the one to raise
                await self.link.execute(
                    f"ROLLBACK TO SAVEPOINT {savepoint}" if self.depth else "ROLLBACK"
                )
                self.clean = True
            raise
        finally:
            self.open = False
        await self.link.execute(f"RELEASE SAVEPOINT {savepoint}" if self.depth else "COMMIT")
        self.clean = True


class Database:
    """Runs precompiled statements on pooled connections: one per call, or a unit of work."""

    # How long a connection stays out of SQLAlchemy's pool between statements before it goes
    # back, so the pool's recycling (pool_recycle) and invalidation still reach it.
    HOLD_SECONDS = 60.0
    # Units of work begun on a fresh connection are transactions (0); the tests' database runs
    # inside a transaction of its own, so its units of work are savepoints (1).
    NESTING = 0

    def __init__(
        self, engine: AsyncEngine, *, connections: int, wait: float, fast_path: bool = True
    ) -> None:
        self.engine = engine
        # One holder per pooled connection at a time. Callers beyond that queue here, first
        # come first served, for at most `wait` seconds: the pool's own queue lets a newcomer
        # take a connection that a woken waiter was about to get, which stretches the latency
        # tail under load, and its waits cost greenlet switches on every hand-over.
        self.slots = Slots(connections, wait)
        # Fast-path connections taken from SQLAlchemy's pool and kept between statements, the
        # most recently used last. Taking one from the pool for each statement costs a greenlet
        # hop (the pool is synchronous), which under load cost more than the statement
        # (bench/README.md). At most `connections` are out, as each slot holds at most one.
        self.idle: list[FastLink] = []
        # The ORM's engine: the same pool, but its connections really begin transactions.
        self.orm_engine = engine.execution_options(isolation_level="READ COMMITTED")
        self.fast = fast_path
        self.verified = False  # the fast path's check on a real connection is still to come
        if fast_path and (missing := fast_path_missing()):
            self._leave_fast_path(f"{missing} is missing")

    @classmethod
    def from_settings(cls, settings: Settings) -> "Database":
        return cls(
            create_engine(settings),
            connections=settings.db_pool_size + settings.db_max_overflow,
            wait=settings.db_pool_timeout,
            fast_path=settings.fast_paths,
        )

    @property
    def in_use(self) -> int:
        """Connections running a statement or a unit of work now."""
        return self.slots.capacity - self.slots.free

    async def fetch(self, query: Query, /, **values: object) -> list[Record]:
        """The rows `query` returns (none for a plain write), as dicts keyed by column."""
        arguments = query.arguments(values)
        await self.slots.acquire()
        try:
            link = await self._open()
            try:
                rows = await link.run(query, arguments, values)
            finally:
                await link.release()
        finally:
            self.slots.release()
        return rows

    async def fetch_one(self, query: Query, /, **values: object) -> Record | None:
        rows = await self.fetch(query, **values)
        return rows[0] if rows else None

    @asynccontextmanager
    async def transaction(
        self, *, isolation: Isolation = "read_committed"
    ) -> AsyncIterator[Transaction]:
        """A unit of work on one connection: committed when the block ends, rolled back if it
        raises (or is cancelled). Nest with `tx.transaction()` for a savepoint."""
        if isolation not in ISOLATION_SQL:
            raise ValueError(f"isolation={isolation!r}: must be one of {sorted(ISOLATION_SQL)}")
        await self.slots.acquire()
        try:
            link = await self._open()
            tx = Transaction(link, self.NESTING)
            try:
                async with tx.scope(isolation):
                    yield tx
            finally:
                # Not ended cleanly (cancelled, or the connection broke): closing the connection
                # is the one way to be sure none of the work survives.
                await link.release(discard=not tx.clean)
        finally:
            self.slots.release()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """An ORM session on the same connection budget; `session.begin()` is a transaction."""
        await self.slots.acquire()
        try:
            # This slot's connection comes from the pool, where the kept ones are counted as
            # taken: hand one back so the pool has one for the session.
            if self.idle:
                await greenlet_spawn(self.idle.pop().connection.close)
            async with AsyncSession(self.orm_engine, expire_on_commit=False) as session:
                yield session
        finally:
            self.slots.release()

    async def is_reachable(self) -> bool:
        """True when the database answers `SELECT 1`; callers bound the wait with a timeout."""
        try:
            await self.fetch(SELECT_ONE)
        except (DatabaseUnavailable, DBAPIError, PoolTimeoutError):
            return False
        return True

    async def close(self) -> None:
        """Return the kept connections and close the pool."""
        await greenlet_spawn(self._return_idle)
        await self.engine.dispose()

    async def _open(self) -> Link:
        if not self.fast:
            return await CoreLink.open(self.engine)
        now = asyncio.get_running_loop().time()
        while self.idle:
            link = self.idle.pop()
            if now - link.taken < self.HOLD_SECONDS:
                return link
            await greenlet_spawn(link.connection.close)  # back to the pool, which may recycle it
        link = FastLink(self, await greenlet_spawn(self._checkout), now)
        if not self.verified and not await self._verify(link):
            await greenlet_spawn(link.connection.close)
            return await CoreLink.open(self.engine)
        return link

    async def _verify(self, link: FastLink) -> bool:
        """Check, once, that errors on the fast path come out as SQLAlchemy's would."""
        self.verified = True
        try:
            await link.run(DIVISION_BY_ZERO, (), {})
        except DBAPIError as error:
            if sqlstate(error) == "22012" and not error.connection_invalidated:
                return True
            problem = f"a division by zero came out as {error!r}"
        except Exception as error:  # an internal that moved: AttributeError, TypeError, ...
            problem = f"a division by zero raised {error!r}"
        else:
            problem = "a division by zero raised nothing"
        self._leave_fast_path(problem)
        return False

    def _leave_fast_path(self, problem: str) -> None:
        self.fast = False
        logger.warning(
            "data layer fast path off (%s); running statements through SQLAlchemy's Connection",
            problem,
        )

    def _checkout(self) -> PoolProxiedConnection:
        try:
            return self.engine.sync_engine.raw_connection()
        except (OSError, TimeoutError, self.engine.dialect.loaded_dbapi.Error) as exc:
            # Refused, timed out, or refused by a server still starting ("not yet accepting
            # connections"): all mean "try again soon", never a server error.
            raise DatabaseUnavailable(str(exc)) from exc

    def _return_idle(self) -> None:
        while self.idle:
            self.idle.pop().connection.close()


async def retry_transaction(
    database: Database,
    work: Callable[[Transaction], Awaitable[T]],
    *,
    isolation: Isolation = "serializable",
    attempts: int = 3,
    backoff: float = 0.02,
) -> T:
    """Run `work` in a transaction, again (up to `attempts` times in all) when PostgreSQL
    aborts it for a serialization failure or a deadlock; any other error is raised at once.

    `work` must do nothing but database work: it may run more than once.
    """
    for attempt in range(1, attempts + 1):
        try:
            async with database.transaction(isolation=isolation) as tx:
                return await work(tx)
        except DBAPIError as error:
            if attempt == attempts or sqlstate(error) not in RETRYABLE_SQLSTATES:
                raise
        # Jittered exponential backoff, so the transactions that collided do not collide again.
        await asyncio.sleep(backoff * 2 ** (attempt - 1) * random.random())  # nosec B311
    raise AssertionError("not reached")


async def get_database(request: Request) -> Database:
    # A plain dependency, not a `yield` one: the connection is taken and returned by the data
    # layer itself, which spares FastAPI's exit-stack machinery on every request.
    database: Database = request.app.state.database
    return database


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    database: Database = request.app.state.database
    async with database.session() as session:
        yield session


DatabaseDep = Annotated[Database, Depends(get_database)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
