"""The connection pool: the Database the routes depend on, and the readiness probe."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.config import Settings


class DatabaseUnavailable(Exception):
    """The database could not be reached in time; the request is answered with 503."""


def create_engine(settings: Settings) -> AsyncEngine:
    # AUTOCOMMIT: every statement of the data layer stands alone, so a read is one round trip
    # (no BEGIN/ROLLBACK around it) and returning a connection to the pool costs nothing.
    return create_async_engine(
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


class Database:
    """Hands out pooled connections, one per unit of work (usually one statement)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        try:
            conn = await self.engine.connect()
        except (OSError, TimeoutError, DBAPIError) as exc:
            # Refused, timed out, or refused by a server still starting ("not yet accepting
            # connections"): all mean "try again soon", never a server error.
            raise DatabaseUnavailable(str(exc)) from exc
        try:
            yield conn
        finally:
            await conn.close()

    async def is_reachable(self) -> bool:
        """True when the database answers `SELECT 1`; callers bound the wait with a timeout."""
        try:
            async with self.connection() as conn:
                await conn.execute(text("SELECT 1"))
        except (DatabaseUnavailable, DBAPIError, PoolTimeoutError):
            return False
        return True


async def get_database(request: Request) -> Database:
    # A plain dependency, not a `yield` one: the connection is taken and returned by the data
    # layer itself, which spares FastAPI's exit-stack machinery on every request.
    database: Database = request.app.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]
