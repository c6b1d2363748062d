"""The application: `app` for uvicorn and `fastapi run/dev`, `create_app()` for tests.

Building it needs no database (the lifespan connects) and no settings beyond the defaults.
"""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app import DESCRIPTION, TITLE, metrics
from app.api import health, items
{%- if cookiecutter.auth == "jwt" %}
from app.auth import Authenticator, document
{%- endif %}
{%- if cookiecutter.cache == "redis" %}
from app.cache import ItemCache
{%- endif %}
from app.config import Settings, get_settings
from app.database import Database
from app.errors import register_error_handlers
{%- if cookiecutter.feature_flags == "unleash" %}
from app.flags import FeatureFlags
{%- endif %}
from app.log import configure_logging
from app.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from app.routing import include


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database.from_settings(settings)
        app.state.database = database
        metrics.POOL.database = database
{%- if cookiecutter.auth == "jwt" %}
        app.state.auth = Authenticator(settings)
        await app.state.auth.start()
{%- endif %}
{%- if cookiecutter.cache == "redis" %}
        app.state.cache = ItemCache.from_settings(settings)
{%- endif %}
{%- if cookiecutter.feature_flags == "unleash" %}
        app.state.flags = FeatureFlags(settings)
        await app.state.flags.start()
{%- endif %}
        # Everything allocated at startup lives as long as the process: move it out of the
        # cyclic collector's way, so collections under load only scan request garbage.
        gc.collect()
        gc.freeze()
        yield
{%- if cookiecutter.feature_flags == "unleash" %}
        await app.state.flags.stop()
{%- endif %}
{%- if cookiecutter.cache == "redis" %}
        await app.state.cache.close()
{%- endif %}
{%- if cookiecutter.auth == "jwt" %}
        await app.state.auth.stop()
{%- endif %}
        await database.close()

    app = FastAPI(
        title=TITLE,
        description=DESCRIPTION,
        version=settings.version,
        lifespan=lifespan,
        # Metrics are Prometheus'; FastAPI's OpenTelemetry hooks would check providers (and the
        # environment) on every request for nothing. One docs UI is enough.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    include(app, health.router, items.router, fast_paths=settings.fast_paths)
    app.state.settings = settings
    register_error_handlers(app)
{%- if cookiecutter.auth == "jwt" %}
    document(app)
{%- endif %}
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=[{% if cookiecutter.auth == "jwt" %}"authorization", {% endif %}"content-type", "if-match", "x-request-id"],
            expose_headers=["etag", "x-request-id"],
        )
    # HTTP metrics: recorded by RequestContextMiddleware, or starlette-exporter's middleware here.
    request_metrics = metrics.instrument(app, settings)
    # Added last, so it runs first: every response, errors included, carries the request id.
    app.add_middleware(
        RequestContextMiddleware, access_log=settings.access_log, metrics=request_metrics
    )
    return app


# `uvicorn app.main:app`, `fastapi run`: the app of the environment's settings.
app = create_app()
