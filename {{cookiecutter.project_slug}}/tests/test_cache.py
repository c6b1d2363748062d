"""The item cache on a real Redis and real commits: hits, writes seen at once, races, outages.

Redis is REDIS_URL when set, otherwise a throwaway redis-server; the outage tests always start
their own, as they kill and pause it. Unlike the rest of the suite, these tests commit: a race
between a write and a read needs two connections, which one rolled-back transaction cannot
give. They use a migrated database of this module's own.
"""

import asyncio
import os
import random
import re
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError
from sqlalchemy.engine import URL

from app import repository
from app.cache import TOMBSTONE, CircuitBreaker, ItemCache
from app.config import Settings
from app.main import create_app
from scripts.local_postgres import create_database, drop_database
from scripts.local_redis import LocalRedis, local_redis
from tests.conftest import PROJECT_ROOT, alembic, api_client

NEW_ITEM = {"name": "Widget", "description": "A thing", "price": "9.99"}


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    with (
        tempfile.TemporaryDirectory(prefix="pytest-redis-") as directory,
        local_redis(Path(directory)) as server,
    ):
        yield server.url


@pytest.fixture
def own_redis() -> Iterator[LocalRedis]:
    """A redis-server of the test's own, to kill, restart and pause."""
    with (
        tempfile.TemporaryDirectory(prefix="pytest-redis-") as directory,
        local_redis(Path(directory)) as server,
    ):
        yield server


@pytest.fixture(scope="module")
def committed_url(server_url: URL) -> Iterator[URL]:
    """A migrated database whose writes commit (the module's own: other tests never see it)."""
    name = f"test_cache_{uuid.uuid4().hex[:12]}"
    url = create_database(server_url, name)
    result = alembic(url, "upgrade", "head")
    assert result.returncode == 0, result.stderr
    yield url
    drop_database(server_url, name)


def cache_settings(database_url: URL, redis_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url.render_as_string(hide_password=False),
        "redis_url": redis_url,
        # Keys of this app only: ids start again at 1 in every test database.
        "cache_key_prefix": f"test-{uuid.uuid4().hex[:12]}:item:",
        "environment": "test",
        "log_level": "ERROR",
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[arg-type]


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """The app with its own lifespan: a real Database pool and a real cache."""
    app = create_app(settings)
    async with app.router.lifespan_context(app), api_client(app) as client:
        yield client, app


@pytest.fixture
async def served(
    committed_url: URL, redis_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    async with serve(cache_settings(committed_url, redis_url)) as client_and_app:
        yield client_and_app


def lookups(result: str) -> float:
    return REGISTRY.get_sample_value("cache_lookups_total", {"result": result}) or 0.0


async def cached_entry(app: FastAPI, item_id: int) -> bytes | None:
    cache: ItemCache = app.state.cache
    assert cache.client is not None
    value: bytes | None = await cache.client.get(f"{cache.prefix}{item_id}")
    return value


async def create(client: httpx.AsyncClient) -> int:
    response = await client.post("/items", json=NEW_ITEM)
    assert response.status_code == 201, response.text
    item_id: int = response.json()["id"]
    return item_id


async def test_a_read_is_a_miss_then_a_hit_served_from_redis(
    served: tuple[httpx.AsyncClient, FastAPI],
) -> None:
    client, app = served
    item_id = await create(client)
    misses, hits = lookups("miss"), lookups("hit")

    first = await client.get(f"/items/{item_id}")
    assert first.status_code == 200
    assert lookups("miss") == misses + 1
    assert await cached_entry(app, item_id) == b"1 " + first.content

    second = await client.get(f"/items/{item_id}")
    assert lookups("hit") == hits + 1
    assert second.status_code == 200
    assert second.content == first.content
    assert second.headers["etag"] == first.headers["etag"] == '"1"'
    assert second.headers["content-type"] == first.headers["content-type"]


def round_trips(operation: str) -> float:
    labels = {"operation": operation}
    return REGISTRY.get_sample_value("cache_operation_seconds_count", labels) or 0.0


async def test_concurrent_reads_share_one_round_trip_and_each_gets_its_own_item(
    served: tuple[httpx.AsyncClient, FastAPI],
) -> None:
    client, _app = served
    ids = [await create(client) for _ in range(20)]
    for item_id in ids:  # renamed, so that every body differs; then cached
        await client.patch(f"/items/{item_id}", json={"name": f"Item {item_id}"})
        await client.get(f"/items/{item_id}")
    hits, trips = lookups("hit"), round_trips("get")

    reads = [random.choice(ids) for _ in range(60)]  # repeats included
    responses = await asyncio.gather(*(client.get(f"/items/{i}") for i in reads))

    assert [r.json()["name"] for r in responses] == [f"Item {i}" for i in reads]
    assert lookups("hit") == hits + len(reads)
    assert round_trips("get") - trips < len(reads) / 4, "the reads were not sent together"


async def test_a_cancelled_read_leaves_the_others_of_its_round_trip_answered(
    served: tuple[httpx.AsyncClient, FastAPI],
) -> None:
    client, app = served
    ids = [await create(client) for _ in range(5)]
    for item_id in ids:
        await client.get(f"/items/{item_id}")
    cache: ItemCache = app.state.cache

    lookups_ = [asyncio.ensure_future(cache.get(item_id)) for item_id in ids]
    await asyncio.sleep(0)  # every lookup has joined the round trip, which is now under way
    lookups_[0].cancel()
    answered = await asyncio.gather(*lookups_[1:])

    assert all(found.body is not None for found in answered)
    assert [found.version for found in answered] == [1] * 4
    assert cache.batch is None


async def test_an_update_is_read_back_at_once(served: tuple[httpx.AsyncClient, FastAPI]) -> None:
    client, app = served
    item_id = await create(client)
    await client.get(f"/items/{item_id}")  # cached at version 1

    patched = await client.patch(f"/items/{item_id}", json={"name": "Renamed"})
    assert patched.status_code == 200
    read = await client.get(f"/items/{item_id}")
    assert read.headers["etag"] == '"2"'
    assert read.json()["name"] == "Renamed"
    assert read.content == patched.content
    assert await cached_entry(app, item_id) == b"2 " + patched.content


async def test_a_delete_is_read_back_as_404_and_no_late_read_brings_it_back(
    served: tuple[httpx.AsyncClient, FastAPI],
) -> None:
    client, app = served
    item_id = await create(client)
    old = await client.get(f"/items/{item_id}")

    assert (await client.delete(f"/items/{item_id}")).status_code == 204
    assert (await client.get(f"/items/{item_id}")).status_code == 404
    assert await cached_entry(app, item_id) == TOMBSTONE
    # A read that fetched the item before the delete committed stores it only now.
    await app.state.cache.fill(item_id, 1, old.content)
    assert (await client.get(f"/items/{item_id}")).status_code == 404


async def test_a_store_never_replaces_a_newer_version(
    served: tuple[httpx.AsyncClient, FastAPI],
) -> None:
    _, app = served
    cache: ItemCache = app.state.cache
    await cache.fill(10**9, 3, b'{"v":3}')
    await cache.fill(10**9, 2, b'{"v":2}')
    await cache.fill(10**9, 3, b'{"v":"3 again"}')
    assert await cached_entry(app, 10**9) == b'3 {"v":3}'
    await cache.fill(10**9, 4, b'{"v":4}')
    assert await cached_entry(app, 10**9) == b'4 {"v":4}'


async def test_concurrent_updates_and_reads_never_leave_an_old_version_cached(
    served: tuple[httpx.AsyncClient, FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, app = served
    read_from_database = repository.get_item

    async def slow_read(db: object, item_id: int) -> object:
        # Reads reach Redis late, after writes that committed meanwhile: the race to lose.
        row = await read_from_database(db, item_id)  # type: ignore[arg-type]
        await asyncio.sleep(random.uniform(0, 0.01))  # nosec B311
        return row

    monkeypatch.setattr(repository, "get_item", slow_read)
    item_id = await create(client)
    for round_ in range(40):

        async def update(name: str) -> int:
            response = await client.patch(f"/items/{item_id}", json={"name": name})
            assert response.status_code == 200
            version = int(response.json()["version"])
            # Committed and answered: from now on no read may return an older version.
            after = await client.get(f"/items/{item_id}")
            assert int(after.json()["version"]) >= version
            return version

        async def read() -> None:
            await asyncio.sleep(random.uniform(0, 0.005))  # nosec B311
            assert (await client.get(f"/items/{item_id}")).status_code == 200

        results = await asyncio.gather(update(f"r{round_}"), *(read() for _ in range(6)))
        newest = results[0]
        entry = await cached_entry(app, item_id)
        assert entry is not None and entry.startswith(b"%d " % newest), (round_, entry)
        final = await client.get(f"/items/{item_id}")
        assert final.json()["version"] == newest


async def test_redis_killed_under_load_costs_no_error_and_is_used_again_after_restart(
    committed_url: URL, own_redis: LocalRedis
) -> None:
    settings = cache_settings(
        committed_url, own_redis.url, redis_timeout=0.2, cache_breaker_seconds=0.3
    )
    async with serve(settings) as (client, app):
        ids = [await create(client) for _ in range(5)]
        expected = {item_id: (await client.get(f"/items/{item_id}")).content for item_id in ids}
        statuses: list[int] = []
        wrong: list[int] = []
        stop = time.monotonic() + 3.0

        async def reader() -> None:
            while time.monotonic() < stop:
                item_id = random.choice(ids)  # nosec B311
                response = await client.get(f"/items/{item_id}")
                statuses.append(response.status_code)
                if response.content != expected[item_id]:
                    wrong.append(item_id)

        async def outage() -> None:
            await asyncio.sleep(0.5)
            own_redis.kill()
            await asyncio.sleep(0.5)
            ready = await client.get("/health/ready")
            assert ready.status_code == 200, "readiness does not depend on the cache"
            await asyncio.sleep(0.5)
            await asyncio.to_thread(own_redis.start)

        failures = lookups("error") + lookups("skipped")
        await asyncio.gather(outage(), *(reader() for _ in range(8)))
        assert statuses and set(statuses) == {200}
        assert wrong == []
        assert lookups("error") + lookups("skipped") > failures, "the outage was noticed"

        # Recovered: the restarted (empty) Redis is filled and read again.
        hits = lookups("hit")
        deadline = time.monotonic() + 5
        while lookups("hit") == hits and time.monotonic() < deadline:
            await client.get(f"/items/{ids[0]}")
            await asyncio.sleep(0.05)
        assert lookups("hit") > hits, "the cache is used again after Redis came back"
        assert await cached_entry(app, ids[0]) == b"1 " + expected[ids[0]]


async def test_a_paused_redis_delays_requests_by_at_most_the_timeout(
    committed_url: URL, own_redis: LocalRedis
) -> None:
    timeout = 0.2
    # A breaker that never opens: every request waits for Redis, and must stop at the timeout.
    settings = cache_settings(
        committed_url, own_redis.url, redis_timeout=timeout, cache_breaker_failures=10**6
    )
    async with serve(settings) as (client, app):
        item_id = await create(client)
        assert (await client.get(f"/items/{item_id}")).headers["etag"] == '"1"'  # cached
        own_redis.pause()
        try:
            started = time.monotonic()
            responses = await asyncio.gather(
                *(client.get(f"/items/{item_id}") for _ in range(20)),
                client.patch(f"/items/{item_id}", json={"name": "While paused"}),
            )
            elapsed = time.monotonic() - started
            assert [r.status_code for r in responses] == [200] * 21
            # Each request waited for Redis once (in parallel); the rest is the database's part
            # and a busy machine's slack, far below a client's own default (5 s, or forever).
            assert elapsed < timeout + 1.5, elapsed
            assert (await client.get("/health/ready")).status_code == 200
        finally:
            own_redis.resume()
        # The update's store timed out, so Redis still holds version 1: this worker reads the
        # item from the database (and repairs the entry) until that entry's TTL is over.
        assert await cached_entry(app, item_id) is not None
        read = await client.get(f"/items/{item_id}")
        assert read.json()["name"] == "While paused"
        assert read.headers["etag"] == '"2"'
        assert (await cached_entry(app, item_id) or b"").startswith(b"2 ")


async def test_without_redis_url_every_read_goes_to_the_database(committed_url: URL) -> None:
    settings = cache_settings(committed_url, "redis://127.0.0.1:1/0")
    settings = settings.model_copy(update={"redis_url": None})
    async with serve(settings) as (client, app):
        assert app.state.cache.client is None
        item_id = await create(client)
        hits = lookups("hit")
        for _ in range(2):
            assert (await client.get(f"/items/{item_id}")).status_code == 200
        assert lookups("hit") == hits


def test_the_breaker_opens_after_failures_in_a_row_then_lets_one_call_try(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    breaker = CircuitBreaker(threshold=2, cooldown=5.0)
    breaker.record(False)
    assert breaker.allows()
    breaker.record(True)  # a success resets the count
    breaker.record(False)
    breaker.record(False)
    assert not breaker.allows()
    now[0] += 5.1
    assert breaker.allows()  # one trial
    assert not breaker.allows()  # and only one
    breaker.record(False)
    assert not breaker.allows()
    now[0] += 5.1
    assert breaker.allows()
    breaker.record(True)
    assert breaker.allows() and breaker.allows()


async def test_the_client_connects_with_the_settings_credentials(redis_url: str) -> None:
    settings = Settings(
        _env_file=None, redis_url=redis_url, redis_username="app", redis_password="s3cret"
    )
    cache = ItemCache.from_settings(settings)
    assert isinstance(cache.client, Redis)
    options = cache.client.connection_pool.connection_kwargs
    assert (options["username"], options["password"]) == ("app", "s3cret")
    assert options["socket_timeout"] == settings.redis_timeout
    await cache.close()


async def test_the_aws_user_s_permissions_let_the_app_do_all_it_does_and_nothing_else(
    committed_url: URL,
) -> None:
    """The access string infra/components/cache.py gives the app's ElastiCache user, on a local
    server: every cache operation works under it, and no key outside the app's prefix."""
    infra = (PROJECT_ROOT / "infra" / "components" / "cache.py").read_text()
    match = re.search(r'^APP_ACCESS = "([^"]+)"', infra, re.MULTILINE)
    assert match, "APP_ACCESS not found in infra/components/cache.py"
    prefix, password = "acl-test:item:", uuid.uuid4().hex
    users = ("user default off", f"user app on >{password} {match[1].format(prefix=prefix)}")
    with (
        tempfile.TemporaryDirectory(prefix="pytest-redis-") as directory,
        local_redis(Path(directory), users) as server,
    ):
        settings = cache_settings(committed_url, server.url, cache_key_prefix=prefix)
        settings = settings.model_copy(update={"redis_username": "app"})
        settings = settings.model_copy(update={"redis_password": SecretStr(password)})
        async with serve(settings) as (client, app):
            failed, hits = lookups("error"), lookups("hit")
            item_id = await create(client)
            await client.get(f"/items/{item_id}")  # a miss, stored (EVALSHA, SCRIPT LOAD)
            assert (await client.get(f"/items/{item_id}")).headers["etag"] == '"1"'  # a hit
            await client.patch(f"/items/{item_id}", json={"name": "x"})
            assert (await client.get(f"/items/{item_id}")).headers["etag"] == '"2"'
            await client.delete(f"/items/{item_id}")
            assert (await client.get(f"/items/{item_id}")).status_code == 404
            assert lookups("hit") == hits + 2
            assert lookups("error") == failed
            assert app.state.cache.breaker.failures == 0
            with pytest.raises(NoPermissionError):
                await app.state.cache.client.set("not-the-app:1", "x")
