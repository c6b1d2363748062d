"""Prometheus metrics: HTTP metrics from starlette-exporter plus DB-pool and business metrics."""

import time
from collections.abc import Iterator
from typing import Any, cast

import starlette_exporter
from fastapi import FastAPI
from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.pool import QueuePool
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette_exporter import handle_metrics

from app.config import Settings
from app.database import Database

# Resolves p50/p95/p99 from a couple of milliseconds up to slow requests.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
METRICS_PATH = "/metrics"

ITEMS_CREATED = Counter("items_created", "Items created through the API.")
DB_CONNECTION_FAILURES = Counter(
    "db_connection_failures", "Requests that failed because the database was unreachable."
)
BUILD_INFO = Gauge("app_build_info", "Build of the running service.", ["version", "git_sha"])


class PoolCollector(Collector):
    """Reads the connection pool's state at scrape time, so the gauges are never stale."""

    def __init__(self) -> None:
        self.database: Database | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        size = in_use = overflow = 0
        if self.database is not None:
            pool = cast(QueuePool, self.database.engine.pool)
            size, in_use = pool.size(), self.database.in_use
            overflow = max(pool.overflow(), 0)  # QueuePool counts from -pool_size: <0 is none
        yield GaugeMetricFamily("db_pool_size", "Connections the pool keeps open.", value=size)
        yield GaugeMetricFamily(
            "db_pool_checked_out", "Connections in use by requests.", value=in_use
        )
        yield GaugeMetricFamily(
            "db_pool_overflow", "Connections opened beyond the pool size.", value=overflow
        )


POOL = PoolCollector()
REGISTRY.register(POOL)


class PrometheusMiddleware(starlette_exporter.PrometheusMiddleware):
    """starlette-exporter's request metrics, labelled with the route template the router chose.

    The stock middleware finds the template by matching every route again after each request
    (an eighth of the whole cost of a /health request); the router has already stored the
    matched route in the scope. Requests that match no route are not recorded, which keeps
    the label set bounded whatever URLs clients send.
    """

    def __init__(self, app: ASGIApp, /, **options: Any) -> None:
        super().__init__(app, **options)
        # Labelled series, looked up once: `.labels()` takes a lock and builds a key each time.
        self.series: dict[tuple[str, ...], tuple[Any, Any]] = {}
        self.in_progress: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == METRICS_PATH:
            await self.app(scope, receive, send)
            return

        method = scope["method"]
        in_progress = self.in_progress.get(method)
        if in_progress is None:
            in_progress = self.requests_in_progress.labels(method, self.app_name)
            self.in_progress[method] = in_progress
        in_progress.inc()
        status = 500
        started = time.perf_counter()

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            in_progress.dec()
            path = getattr(scope.get("route"), "path", None)
            if path is not None:
                labels = (method, path, str(status), self.app_name)
                series = self.series.get(labels)
                if series is None:
                    series = (self.request_count.labels(*labels), self.request_time.labels(*labels))
                    self.series[labels] = series
                series[0].inc()
                series[1].observe(time.perf_counter() - started)


def instrument(app: FastAPI, settings: Settings) -> None:
    """Add the HTTP metrics middleware and the /metrics endpoint."""
    BUILD_INFO.labels(settings.version, settings.git_sha).set(1)
    app.add_middleware(
        PrometheusMiddleware,
        app_name=settings.app_name,
        prefix="http",
        buckets=LATENCY_BUCKETS,
    )
    app.add_route(METRICS_PATH, handle_metrics, include_in_schema=False)
