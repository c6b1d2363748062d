"""The data layer's runtime: SQLAlchemy's connection pool, precompiled statements, readiness.

Statements are written with SQLAlchemy Core (app/repository.py) and compiled once, at import, by
SQLAlchemy's asyncpg dialect. A request runs one of them with asyncpg (and its prepared-statement
cache) on a connection of SQLAlchemy's pool, kept out of the pool between statements for a while,
and errors are raised as SQLAlchemy's exceptions, as its asyncpg adapter translates them. What is
skipped is the Engine/Connection execution layer (execution context, compiled-cache lookup,
result objects) and the DBAPI cursor: for a one-statement unit of work they cost more CPU than
the statement itself (bench/README.md).
"""

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn, cast

from fastapi import Depends, Request
from sqlalchemy import ClauseElement, PoolProxiedConnection, text
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

from app.config import Settings
from app.db_credentials import use_credentials

Record = dict[str, Any]

DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]


class DatabaseUnavailable(Exception):
    """The database could not be reached in time; the request is answered with 503."""


@dataclass(frozen=True, slots=True)
class Query:
    """A Core statement compiled once: its SQL and the names of its parameters, in order."""

    sql: str
    parameters: tuple[str, ...]

    @classmethod
    def compile(cls, statement: ClauseElement) -> "Query":
        compiled = cast(SQLCompiler, statement.compile(dialect=DIALECT))
        return cls(compiled.string, tuple(compiled.positiontup or ()))

    def arguments(self, values: Mapping[str, object]) -> tuple[object, ...]:
        try:
            if len(values) == len(self.parameters):
                return tuple(values[name] for name in self.parameters)
        except KeyError:
            pass
        raise TypeError(f"the query takes {self.parameters}, not {tuple(values)}: {self.sql!r}")


SELECT_ONE = Query.compile(text("SELECT 1"))


def create_engine(settings: Settings) -> AsyncEngine:
    # AUTOCOMMIT: every statement of the data layer stands alone, so a read is one round trip
    # (no BEGIN/ROLLBACK around it) and returning a connection to the pool costs nothing.
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


class Database:
    """Runs precompiled statements on pooled connections, one statement per call."""

    # How long a connection stays out of SQLAlchemy's pool between statements before it goes
    # back, so the pool's recycling (pool_recycle) and invalidation still reach it.
    HOLD_SECONDS = 60.0

    def __init__(self, engine: AsyncEngine, *, connections: int, wait: float) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        # One statement per pooled connection at a time. Callers beyond that queue here, first
        # come first served, for at most `wait` seconds: the pool's own queue lets a newcomer
        # take a connection that a woken waiter was about to get, which stretches the latency
        # tail under load, and its waits cost greenlet switches on every hand-over.
        self.slots = Slots(connections, wait)
        # Connections taken from SQLAlchemy's pool and kept between statements, the most
        # recently used last, with the loop time they were taken. Taking one from the pool for
        # each statement costs a greenlet hop (the pool is synchronous), which under load cost
        # more than the statement (bench/README.md); now only opening, returning and discarding
        # connections hop. At most `connections` are out, as each slot holds at most one.
        self.idle: list[tuple[PoolProxiedConnection, float]] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> "Database":
        return cls(
            create_engine(settings),
            connections=settings.db_pool_size + settings.db_max_overflow,
            wait=settings.db_pool_timeout,
        )

    @property
    def in_use(self) -> int:
        """Connections running a statement now."""
        return self.slots.capacity - self.slots.free

    async def fetch(self, query: Query, /, **values: object) -> list[Record]:
        """The rows `query` returns (none for a plain write), as dicts keyed by column."""
        arguments = query.arguments(values)
        await self.slots.acquire()
        try:
            connection, taken = await self._take()
            try:
                rows = await self._run(connection, query, arguments)
            finally:
                self._keep(connection, taken)
        finally:
            self.slots.release()
        return [dict(row) for row in rows]

    async def fetch_one(self, query: Query, /, **values: object) -> Record | None:
        rows = await self.fetch(query, **values)
        return rows[0] if rows else None

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

    async def _take(self) -> tuple[PoolProxiedConnection, float]:
        now = asyncio.get_running_loop().time()
        while self.idle:
            connection, taken = self.idle.pop()
            if now - taken < self.HOLD_SECONDS:
                return connection, taken
            await greenlet_spawn(connection.close)  # back to the pool, which may recycle it
        return await greenlet_spawn(self._checkout), now

    def _keep(self, connection: PoolProxiedConnection, taken: float) -> None:
        if connection.is_valid:  # not invalidated by a lost connection or a cancellation
            self.idle.append((connection, taken))

    def _checkout(self) -> PoolProxiedConnection:
        try:
            return self.engine.sync_engine.raw_connection()
        except (OSError, TimeoutError, self.dialect.loaded_dbapi.Error) as exc:
            # Refused, timed out, or refused by a server still starting ("not yet accepting
            # connections"): all mean "try again soon", never a server error.
            raise DatabaseUnavailable(str(exc)) from exc

    def _return_idle(self) -> None:
        while self.idle:
            connection, _ = self.idle.pop()
            connection.close()

    async def _run(
        self, connection: PoolProxiedConnection, query: Query, arguments: tuple[object, ...]
    ) -> list[Any]:
        # asyncpg's own call (and its statement cache) on the pooled connection: SQLAlchemy's
        # DBAPI cursor around it cost ~50 us more per INSERT in the served app (bench/).
        driver = cast(Any, connection.driver_connection)
        try:
            rows: list[Any] = await driver.fetch(query.sql, *arguments)
        except Exception as error:
            await greenlet_spawn(self._raise_translated, error, connection, query, arguments)
            raise  # not reached: _raise_translated always raises
        except BaseException:
            # Cancelled mid-statement: the connection's state is unknown, so it is not reused.
            await greenlet_spawn(connection.invalidate)
            raise
        return rows

    def _raise_translated(
        self,
        error: Exception,
        connection: PoolProxiedConnection,
        query: Query,
        arguments: tuple[object, ...],
    ) -> NoReturn:
        """Raise `error` as SQLAlchemy would have: its DBAPIError subclass, the pool updated."""
        adapter = cast(Any, connection.dbapi_connection)
        try:
            adapter._handle_exception(error)  # the asyncpg adapter's translation to DBAPI errors
        except self.dialect.loaded_dbapi.Error as dbapi_error:
            # As SQLAlchemy's Connection does: a lost connection is dropped from the pool, with
            # every connection opened before it (a restarted server has closed them all).
            lost = self.dialect.is_disconnect(dbapi_error, adapter, None)
            if lost:
                self.engine.sync_engine.pool._invalidate(connection, dbapi_error)
                self._return_idle()  # the pool replaces them when they are next taken
            raise DBAPIError.instance(
                query.sql,
                arguments,
                dbapi_error,
                self.dialect.loaded_dbapi.Error,
                connection_invalidated=lost,
                dialect=self.dialect,
            ) from error
        raise error  # not the database's (a timeout, say): as it is


async def get_database(request: Request) -> Database:
    # A plain dependency, not a `yield` one: the connection is taken and returned by the data
    # layer itself, which spares FastAPI's exit-stack machinery on every request.
    database: Database = request.app.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]
