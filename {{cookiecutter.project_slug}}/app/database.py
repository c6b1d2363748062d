"""Async engine, the per-request connection dependency and the readiness probe."""

from collections.abc import AsyncIterator
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
        connect_args={
            "timeout": settings.db_connect_timeout,
            "server_settings": {
                "application_name": settings.app_name,
                "statement_timeout": str(settings.db_statement_timeout_ms),
            },
        },
    )


async def get_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    """A pooled connection for the duration of one request."""
    engine: AsyncEngine = request.app.state.engine
    try:
        conn = await engine.connect()
    except (OSError, TimeoutError) as exc:
        raise DatabaseUnavailable(str(exc)) from exc
    try:
        yield conn
    finally:
        await conn.close()


ConnectionDep = Annotated[AsyncConnection, Depends(get_connection)]


async def is_reachable(engine: AsyncEngine) -> bool:
    """True when the database answers `SELECT 1`; callers bound the wait with a timeout."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (OSError, DBAPIError, PoolTimeoutError):
        return False
    return True
