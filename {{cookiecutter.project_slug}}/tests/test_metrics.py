"""The /metrics endpoint: HTTP metrics by route template, pool, business and build metrics."""

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import Counter
from starlette_exporter import PrometheusMiddleware

from app import metrics
from app.config import Settings
from app.database import Database
from app.main import create_app
from app.middleware import RequestContextMiddleware
from tests.test_routing import logged, openapi, served
from tests.test_routing import stock_client as stock_client  # a fixture


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format, 0 if absent."""
    for line in metrics.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.partition(" ")[0]))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text


async def test_requests_are_counted_by_route_template(client: httpx.AsyncClient) -> None:
    before = sample(
        await scrape(client), "http_requests_total", path="/items/{item_id}", status_code="404"
    )
    await client.get("/items/123456789")
    after = await scrape(client)
    assert sample(after, "http_requests_total", path="/items/{item_id}", status_code="404") == (
        before + 1
    )
    assert "/items/123456789" not in after


async def test_latency_histogram_has_fine_buckets(client: httpx.AsyncClient) -> None:
    await client.get("/health")
    metrics = await scrape(client)
    buckets = {
        dict(re.findall(r'(\w+)="([^"]*)"', line))["le"]
        for line in metrics.splitlines()
        if line.startswith("http_request_duration_seconds_bucket{") and 'path="/health"' in line
    }
    assert buckets >= {"0.002", "0.005", "0.5", "5.0", "+Inf"}
    # Cumulative: how fast the request was on a busy machine does not matter here.
    assert sample(metrics, "http_request_duration_seconds_bucket", path="/health", le="+Inf") >= 1


async def test_metrics_endpoint_is_not_in_its_own_stats(client: httpx.AsyncClient) -> None:
    await scrape(client)
    assert 'path="/metrics"' not in await scrape(client)


async def test_items_created_counter(client: httpx.AsyncClient) -> None:
    before = sample(await scrape(client), "items_created_total")
    await client.post("/items", json={"name": "counted", "price": 1})
    assert sample(await scrape(client), "items_created_total") == before + 1


async def test_pool_build_and_process_metrics(client: httpx.AsyncClient) -> None:
    await client.get("/health/ready")
    metrics = await scrape(client)
    assert sample(metrics, "db_pool_size") >= 1
    assert "db_pool_checked_out" in metrics
    assert "db_pool_overflow" in metrics
    assert "db_connection_failures_total" in metrics
    assert sample(metrics, "app_build_info", version="0.1.0", git_sha="unknown") == 1
    assert "process_resident_memory_bytes" in metrics
    assert "http_requests_in_progress" in metrics


# --- the fast path (app/metrics.py RequestMetrics) and its fallback -----------------------------

SERIES = ("http_requests_total", "http_request_duration_seconds_count", "http_requests_in_progress")


def series(metrics: str) -> dict[str, float]:
    """The HTTP samples of a scrape, by name and labels."""
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(SERIES)
    }


def urls(document: dict[str, Any]) -> list[tuple[str, str]]:
    """A request to every operation, and to what no operation answers."""
    requests = [
        (method.upper(), path.replace("{", "").replace("}", ""))  # {item_id} -> item_id: a 422
        for path, operations in document["paths"].items()
        for method in operations
    ]
    return [*requests, ("GET", "/docs"), ("GET", "/no/such/path"), ("DELETE", "/health")]


async def recorded(client: httpx.AsyncClient, scraper: httpx.AsyncClient) -> dict[str, float]:
    """What the requests of `urls()` through `client` added to the series."""
    before = series(await scrape(scraper))
    for method, url in urls(openapi()):
        await client.request(method, url, json={})
    after = series(await scrape(scraper))
    return {key: value - before.get(key, 0) for key, value in after.items()} | {
        key: 0 for key in before if key not in after
    }


def recorder_of(app: FastAPI) -> type:
    """What records the HTTP series: RequestMetrics, or starlette-exporter's own middleware."""
    stock = [m.cls for m in app.user_middleware if m.cls is PrometheusMiddleware]  # type: ignore[comparison-overlap]
    context = next(m for m in app.user_middleware if m.cls is RequestContextMiddleware)  # type: ignore[comparison-overlap]
    fast = context.kwargs["metrics"]
    assert (fast is None) == bool(stock), "exactly one of the two records"
    return type(fast) if fast is not None else PrometheusMiddleware


async def test_fast_middleware_records_the_stock_middlewares_series(
    app: FastAPI, client: httpx.AsyncClient, stock_client: httpx.AsyncClient
) -> None:
    fast_path = app.state.settings.fast_paths and (
        metrics.CHECK.done and metrics.CHECK.problem is None
    )
    expected = metrics.RequestMetrics if fast_path else PrometheusMiddleware
    assert recorder_of(app) is expected
    fast = await recorded(client, client)
    stock = await recorded(stock_client, client)
    assert fast == stock
    assert any(value > 0 for value in fast.values())


class MetricMissing(PrometheusMiddleware):
    """starlette-exporter keeps one of its metrics elsewhere."""

    requests_in_progress = property(lambda _: 1 / 0)


class LabelAdded(PrometheusMiddleware):
    """starlette-exporter adds a label to a metric."""

    request_count = property(
        lambda _: Counter("probe_total", "", ["method", "extra"], registry=None)
    )


@pytest.mark.parametrize(
    "break_it",
    [
        lambda patch: patch.setattr(metrics.RequestMetrics, "exporter", MetricMissing),
        lambda patch: patch.setattr(metrics.RequestMetrics, "exporter", LabelAdded),
        # FastAPI no longer leaves the route it matched in the scope.
        lambda patch: patch.setattr(metrics, "route_template", lambda scope: None),
    ],
    ids=["metric-missing", "label-added", "route-not-in-scope"],
)
async def test_a_changed_internal_falls_back_to_the_stock_middleware(
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    db: Database,
    stock_client: httpx.AsyncClient,
    break_it: Callable[[pytest.MonkeyPatch], None],
) -> None:
    # Forget the outcome; monkeypatch puts back the process's own afterwards.
    monkeypatch.setattr(metrics.CHECK, "done", False)
    monkeypatch.setattr(metrics.CHECK, "problem", None)
    break_it(monkeypatch)
    settings = settings.model_copy(update={"fast_paths": True})  # whatever FAST_PATHS says
    with logged("app.metrics") as warnings:
        assert recorder_of(create_app(settings)) is PrometheusMiddleware
        async with served(settings, db) as client:
            assert await recorded(client, client) == await recorded(stock_client, client)
    assert len(warnings) == 1, warnings
    assert "metrics fast path off" in warnings[0]


def test_fast_paths_off_uses_the_stock_middleware(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"fast_paths": False}))
    assert recorder_of(app) is PrometheusMiddleware
