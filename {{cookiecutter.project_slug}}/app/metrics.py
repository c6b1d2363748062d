"""Prometheus metrics: HTTP metrics from starlette-exporter plus DB-pool and business metrics."""

from collections.abc import Iterator

from fastapi import FastAPI
from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette_exporter import PrometheusMiddleware, handle_metrics

from app.config import Settings

# Resolves p50/p95/p99 from a couple of milliseconds up to slow requests.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

ITEMS_CREATED = Counter("items_created", "Items created through the API.")
DB_CONNECTION_FAILURES = Counter(
    "db_connection_failures", "Requests that failed because the database was unreachable."
)
BUILD_INFO = Gauge("app_build_info", "Build of the running service.", ["version", "git_sha"])


class PoolCollector(Collector):
    """Reads the connection pool's state at scrape time, so the gauges are never stale."""

    def __init__(self) -> None:
        self.engine: AsyncEngine | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = self.engine.pool if self.engine is not None else None
        readings = {
            "db_pool_size": ("Connections the pool keeps open.", "size"),
            "db_pool_checked_out": ("Connections in use by requests.", "checkedout"),
            "db_pool_overflow": ("Connections opened beyond the pool size.", "overflow"),
        }
        for name, (documentation, method) in readings.items():
            # QueuePool counts overflow from -pool_size; below zero means "none in use".
            value = max(getattr(pool, method)(), 0) if pool is not None else 0
            yield GaugeMetricFamily(name, documentation, value=value)


POOL = PoolCollector()
REGISTRY.register(POOL)


def instrument(app: FastAPI, settings: Settings) -> None:
    """Add the HTTP metrics middleware and the /metrics endpoint."""
    BUILD_INFO.labels(settings.version, settings.git_sha).set(1)
    app.add_middleware(
        PrometheusMiddleware,
        app_name=settings.app_name,
        prefix="http",
        group_paths=True,  # label by route template, never by raw path
        filter_unhandled_paths=True,
        buckets=LATENCY_BUCKETS,
        skip_paths=["/metrics"],
    )
    app.add_route("/metrics", handle_metrics, include_in_schema=False)
