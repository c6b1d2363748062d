"""Prometheus metrics: HTTP metrics from starlette-exporter plus DB-pool and business metrics.

The HTTP series are starlette-exporter's, recorded by the request middleware the service has
anyway (`RequestMetrics`), which relies on starlette-exporter's metric attributes and on the
router leaving the matched route in the scope. `instrument()` checks both once at start-up; if
either fails (or with `FAST_PATHS=false`) it logs one warning and adds starlette-exporter's own
middleware, configured for the same series.
"""

import logging
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any, cast

import starlette_exporter
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
{%- if cookiecutter.cache == "redis" %}
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
{%- else %}
from prometheus_client import REGISTRY, Counter, Gauge
{%- endif %}
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.pool import QueuePool
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Match
from starlette.types import Message, Scope
from starlette_exporter import handle_metrics

from app.config import Settings
from app.database import Database
from app.fast_paths import StartupCheck, run_async

logger = logging.getLogger(__name__)

# Resolves p50/p95/p99 from a couple of milliseconds up to slow requests.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
METRICS_PATH = "/metrics"

ITEMS_CREATED = Counter("items_created", "Items created through the API.")
DB_CONNECTION_FAILURES = Counter(
    "db_connection_failures", "Requests that failed because the database was unreachable."
)
BUILD_INFO = Gauge("app_build_info", "Build of the running service.", ["version", "git_sha"])
{%- if cookiecutter.feature_flags == "unleash" %}

# Feature flags (app/flags.py).
FLAG_EVALUATIONS = Counter(
    "feature_flag_evaluations", "Feature flags asked for, by flag and result.", ["flag", "result"]
)
{%- endif %}
{%- if cookiecutter.cache == "redis" %}

# The item cache (app/cache.py).
CACHE_LOOKUPS = Counter(
    "cache_lookups",
    "Item reads looked up in the cache, by result: hit, miss, error, skipped (breaker open).",
    ["result"],
)
CACHE_ERRORS = Counter(
    "cache_errors", "Cache operations that failed or timed out, by operation.", ["operation"]
)
CACHE_LATENCY = Histogram(
    "cache_operation_seconds",
    "Time of each cache operation (get: one MGET for the reads of one event-loop turn; store,"
    " delete) that reached Redis, failures included.",
    ["operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
)
CACHE_CIRCUIT_OPEN = Gauge(
    "cache_circuit_open", "1 while the circuit breaker keeps requests away from Redis."
)
{%- endif %}


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


class RequestMetrics:
    """starlette-exporter's request series, recorded by the request middleware it already has.

    starlette-exporter's own middleware is one more layer around every request, which finds the
    route template by matching every route again after each request; here
    `RequestContextMiddleware` (app/middleware.py), which times every request anyway, records
    them, and the template is the route the router left in the scope. Requests that match no
    route are not recorded, which keeps the label set bounded whatever URLs clients send.
    Together that is about a sixth of the whole cost of a /health request (bench/README.md).
    """

    # Where the series come from (the tests put a changed one here).
    exporter: type[starlette_exporter.PrometheusMiddleware] = (
        starlette_exporter.PrometheusMiddleware
    )

    def __init__(self, **options: Any) -> None:
        # As Starlette builds it (some releases pass `app` by name); it never serves here.
        exporter = self.exporter(app=PlainTextResponse(""), **options)
        self.app_name: str = exporter.app_name
        self.request_count = exporter.request_count
        self.request_time = exporter.request_time
        self.requests_in_progress = exporter.requests_in_progress
        # Labelled series, looked up once: `.labels()` takes a lock and builds a key each time.
        self.series: dict[tuple[str, ...], tuple[Any, Any]] = {}
        self.in_progress: dict[str, Any] = {}

    def started(self, scope: Scope) -> Any:
        """Count the request in progress; its gauge for `finished`, None if not recorded."""
        if scope["path"] == METRICS_PATH:
            return None
        method = scope["method"]
        in_progress = self.in_progress.get(method)
        if in_progress is None:
            in_progress = self.requests_in_progress.labels(method, self.app_name)
            self.in_progress[method] = in_progress
        in_progress.inc()
        return in_progress

    def finished(self, scope: Scope, in_progress: Any, status: int, seconds: float) -> None:
        """Record a request `started` returned `in_progress` for; status 0: none was sent."""
        in_progress.dec()
        path = route_template(scope)
        if path is None:
            return
        labels = (scope["method"], path, str(status or 500), self.app_name)
        series = self.series.get(labels)
        if series is None:
            series = (self.request_count.labels(*labels), self.request_time.labels(*labels))
            self.series[labels] = series
        series[0].inc()
        series[1].observe(seconds)


def route_template(scope: Scope) -> str | None:
    """The path template of the route the router matched, None if none matched fully.

    As starlette-exporter's own middleware: a method the route does not take (405) counts
    as no match.
    """
    route = scope.get("route")
    path: str | None = getattr(route, "path", None)
    methods = getattr(route, "methods", None)  # None: every method
    if path is not None and methods and scope["method"] not in methods:
        return None
    if path is None and "endpoint" in scope and "router" in scope:
        # FastAPI stores only its API routes in the scope: find a Starlette route (such as
        # /docs) again, as the stock middleware does for every request.
        for route in scope["router"].routes:
            same_endpoint = getattr(route, "endpoint", None) is scope["endpoint"]
            if same_endpoint and route.matches(scope)[0] is Match.FULL:
                return cast(str, route.path)
    return path


def instrument(app: FastAPI, settings: Settings) -> RequestMetrics | None:
    """Add the /metrics endpoint; the recorder for RequestContextMiddleware, or None after
    adding starlette-exporter's own middleware (FAST_PATHS=false, or a failed start-up check).
    """
    BUILD_INFO.labels(settings.version, settings.git_sha).set(1)
    options: dict[str, Any] = {
        "app_name": settings.app_name,
        "prefix": "http",
        "buckets": LATENCY_BUCKETS,
        # What the stock middleware needs to record the same series as RequestMetrics.
        "group_paths": True,
        "filter_unhandled_paths": True,
        "skip_paths": [METRICS_PATH],
    }
    app.add_route(METRICS_PATH, handle_metrics, include_in_schema=False)
    if settings.fast_paths and fast_path_problem(options) is None:
        return RequestMetrics(**options)
    app.add_middleware(starlette_exporter.PrometheusMiddleware, **options)
    return None


# --- the start-up check: what RequestMetrics relies on is there ---------------------------

CHECK = StartupCheck(
    logger,
    f"metrics fast path off, starlette-exporter {version('starlette-exporter')}'s own "
    "middleware records requests: %s",
)


def fast_path_problem(options: dict[str, Any]) -> str | None:
    """Why RequestMetrics cannot record here (None: it can); checked once per process."""
    return CHECK.problem_of(lambda: exporter_problem(options) or run_async(route_in_scope_problem))


def exporter_problem(options: dict[str, Any]) -> str | None:
    """Does starlette-exporter still keep its metrics where RequestMetrics reads them?"""
    try:
        middleware = RequestMetrics(**options)
        if not isinstance(middleware.app_name, str):
            return "starlette-exporter's app_name is not a string"
        labels = {"method": "GET", "path": "/probe", "status_code": "200"}
        for metric, names in (
            (middleware.request_count, labels),
            (middleware.request_time, labels),
            (middleware.requests_in_progress, {"method": "GET"}),
        ):
            # The labels RequestMetrics passes by position, by name: a renamed or an
            # added label raises here, not in a request. The probe series is removed again.
            metric.labels(**names, app_name=middleware.app_name)
            metric.remove(*names.values(), middleware.app_name)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


async def route_in_scope_problem() -> str | None:
    """Does the router leave the route it matched in the scope, for each kind of route?"""
    probe = FastAPI()
    router = APIRouter()
    router.add_api_route("/included/{n}", probe_endpoint)
    probe.include_router(router)
    probe.router.routes.append(APIRoute("/direct/{n}", probe_endpoint))
    probe.add_route("/plain/{n}", plain_endpoint)
    for template in ("/included/{n}", "/direct/{n}", "/plain/{n}"):
        path = template.replace("{n}", "1")
        scope: Scope = {
            **{"type": "http", "method": "GET", "path": path, "root_path": ""},
            **{"query_string": b"", "headers": [], "http_version": "1.1", "scheme": "http"},
        }

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            pass

        await probe(scope, receive, send)
        found = route_template(scope)
        if found != template:
            return f"a request to {path} left route path {found!r} in the scope, not {template}"
    return None


async def probe_endpoint(n: int) -> int:
    return n


async def plain_endpoint(request: Request) -> PlainTextResponse:
    return PlainTextResponse("")
