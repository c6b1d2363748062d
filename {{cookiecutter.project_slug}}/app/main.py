"""Application factory: settings, logging, database lifespan, middleware and routers."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import DESCRIPTION, TITLE, metrics
from app.api import health, items
from app.config import Settings, get_settings
from app.database import create_engine
from app.errors import register_error_handlers
from app.log import configure_logging
from app.middleware import RequestContextMiddleware


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.engine = metrics.POOL.engine = engine
        yield
        await engine.dispose()

    app = FastAPI(
        title=TITLE,
        description=DESCRIPTION,
        version=settings.version,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(health.router)
    app.include_router(items.router)
    register_error_handlers(app)
    metrics.instrument(app, settings)
    # Added last, so it runs first: every response, errors included, carries the request id.
    app.add_middleware(RequestContextMiddleware, access_log=settings.access_log)
    return app
