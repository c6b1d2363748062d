"""Feature flags against a real Unleash server (scripts/local_unleash.py, on a database of its
own): off, toggled on, the server stopped, a restart while it is down, and no Unleash at all.

The example flag is items-client-caching (app/flags.py): on, GET /items/{id} answers with
`Cache-Control: private, max-age=5`; off or unknown, without Cache-Control.
"""

import asyncio
import socket
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy.engine import URL

from app.config import Settings
from app.flags import DEFAULTS, ITEM_MAX_AGE_SECONDS
from app.main import create_app
from scripts.local_postgres import create_database, drop_database
from scripts.local_unleash import LocalUnleash
from tests.conftest import alembic

FLAG = "items-client-caching"
CACHING = f"private, max-age={ITEM_MAX_AGE_SECONDS}"
REFRESH_SECONDS = 1


@pytest.fixture(scope="module")
def committed_url(server_url: URL) -> Iterator[URL]:
    """A migrated database of the module's own (the app runs with its own lifespan)."""
    name = f"test_flags_{uuid.uuid4().hex[:12]}"
    url = create_database(server_url, name)
    result = alembic(url, "upgrade", "head")
    assert result.returncode == 0, result.stderr
    yield url
    drop_database(server_url, name)


@pytest.fixture(scope="module")
def unleash(server_url: URL) -> Iterator[LocalUnleash]:
    name = f"unleash_{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory(prefix="pytest-unleash-") as directory:
        server = LocalUnleash(create_database(server_url, name), Path(directory))
        server.start()
        try:
            yield server
        finally:
            server.stop()
            drop_database(server_url, name)


@pytest.fixture
def flag(unleash: LocalUnleash) -> Iterator[str]:
    """A flag of the test's own: the example flag's name, created off in Unleash."""
    unleash.create_flag(FLAG)
    yield FLAG
    if not unleash.healthy():
        unleash.start()
    unleash.admin("DELETE", f"/projects/default/features/{FLAG}")
    unleash.admin("DELETE", f"/archive/{FLAG}")


def flag_settings(database: URL, unleash: LocalUnleash | None, backup: Path) -> Settings:
    values: dict[str, object] = {
        "database_url": database.render_as_string(hide_password=False),
        "environment": "test",
        "log_level": "ERROR",
        "unleash_backup_dir": backup,
        "unleash_refresh_seconds": REFRESH_SECONDS,
        "unleash_timeout_seconds": 1,
    }
    if unleash is not None:
        values |= {"unleash_url": unleash.api_url, "unleash_api_token": unleash.client_token}
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, app


async def item_id(client: httpx.AsyncClient) -> int:
    created = await client.post("/items", json={"name": "Flagged", "price": "1.00"})
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


async def caching(client: httpx.AsyncClient, item: int) -> str | None:
    response = await client.get(f"/items/{item}")
    assert response.status_code == 200, response.text
    return response.headers.get("cache-control")


async def until(client: httpx.AsyncClient, item: int, expected: str | None) -> None:
    """Read the item until its Cache-Control is `expected`: a few refresh intervals at most."""
    for _ in range(100):
        if await caching(client, item) == expected:
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"Cache-Control never became {expected!r}")


def evaluations(result: str) -> float:
    labels = {"flag": FLAG, "result": result}
    return REGISTRY.get_sample_value("feature_flag_evaluations_total", labels) or 0.0


async def test_without_unleash_every_flag_has_its_default(
    committed_url: URL, tmp_path: Path
) -> None:
    assert DEFAULTS[FLAG] is False
    before = evaluations("false")
    async with serve(flag_settings(committed_url, None, tmp_path)) as (client, app):
        assert app.state.flags.client is None
        assert await caching(client, await item_id(client)) is None
    assert evaluations("false") == before + 1


async def test_off_then_toggled_on_then_off_again(
    committed_url: URL, unleash: LocalUnleash, flag: str, tmp_path: Path
) -> None:
    async with serve(flag_settings(committed_url, unleash, tmp_path)) as (client, _app):
        item = await item_id(client)
        await until(client, item, None)  # the flag exists and is off
        unleash.toggle(flag, on=True)
        await until(client, item, CACHING)  # within the SDK's refresh interval
        unleash.toggle(flag, on=False)
        await until(client, item, None)


async def test_unleash_stopped_the_service_keeps_its_last_toggles(
    committed_url: URL, unleash: LocalUnleash, flag: str, tmp_path: Path
) -> None:
    unleash.toggle(flag, on=True)
    async with serve(flag_settings(committed_url, unleash, tmp_path)) as (client, _app):
        item = await item_id(client)
        await until(client, item, CACHING)
        unleash.stop()
        try:
            await asyncio.sleep(3 * REFRESH_SECONDS)  # polls fail meanwhile
            assert await caching(client, item) == CACHING
            assert (await client.get("/health/ready")).status_code == 200
        finally:
            unleash.start()


async def test_a_restart_while_unleash_is_down_uses_the_backup_or_the_defaults(
    committed_url: URL, unleash: LocalUnleash, flag: str, tmp_path: Path
) -> None:
    backup = tmp_path / "backup"
    unleash.toggle(flag, on=True)
    async with serve(flag_settings(committed_url, unleash, backup)) as (client, _app):
        item = await item_id(client)
        await until(client, item, CACHING)
    unleash.stop()
    try:
        # The same backup directory: the last toggles the previous run fetched.
        async with serve(flag_settings(committed_url, unleash, backup)) as (client, _app):
            await until(client, item, CACHING)
        # No backup: the defaults.
        async with serve(flag_settings(committed_url, unleash, tmp_path / "none")) as (
            client,
            _app,
        ):
            assert await caching(client, item) is None
            assert (await client.get("/health/ready")).status_code == 200
    finally:
        unleash.start()


async def test_an_unleash_that_never_answers_delays_nothing(
    committed_url: URL, tmp_path: Path
) -> None:
    """A server that accepts connections and never answers: the app starts and serves on the
    defaults while the SDK's first fetch is still waiting."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        settings = flag_settings(committed_url, None, tmp_path)
        settings = settings.model_copy(update={"unleash_url": f"http://127.0.0.1:{port}/api"})
        async with serve(settings) as (client, app):
            assert not app.state.flags.starting.done(), "the first fetch is still waiting"
            assert await caching(client, await item_id(client)) is None
            assert (await client.get("/health/ready")).status_code == 200


async def test_shutdown_leaves_no_thread_and_no_task(
    committed_url: URL, unleash: LocalUnleash, tmp_path: Path
) -> None:
    threads = threading.active_count()
    async with serve(flag_settings(committed_url, unleash, tmp_path)) as (client, app):
        await item_id(client)
        await asyncio.wait_for(app.state.flags.starting, timeout=30)  # the first fetch
        assert app.state.flags.client.is_initialized
    assert threading.active_count() == threads
    current = asyncio.current_task()
    leftovers = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert leftovers == []
