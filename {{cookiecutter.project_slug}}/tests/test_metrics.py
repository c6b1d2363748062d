"""The /metrics endpoint: HTTP metrics by route template, pool, business and build metrics."""

import re

import httpx


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
    for bucket in ("0.002", "0.005", "0.5", "5.0", "+Inf"):
        assert (
            sample(metrics, "http_request_duration_seconds_bucket", path="/health", le=bucket) >= 1
        )


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
