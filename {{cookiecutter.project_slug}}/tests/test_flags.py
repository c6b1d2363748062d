"""Feature flags against a real Unleash server (scripts/local_unleash.py, on a database of its
own): off, toggled on, the server stopped, a restart while it is down, and no Unleash at all;
the fast path's answers against the SDK's on every shape of flag, and its fallback.

The example flag is items-client-caching (app/flags.py): on, GET /items/{id} answers with
`Cache-Control: private, max-age=5`; off or unknown, without Cache-Control.
"""

import asyncio
import json
import logging
import random
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
from UnleashClient.cache import FileCache
from UnleashClient.constants import FEATURES_URL
from yggdrasil_engine.engine import UnleashEngine

from app import flags as flags_module
from app.config import Settings
from app.flags import DEFAULTS, ITEM_MAX_AGE_SECONDS, FeatureFlags, _default
from app.main import create_app
from scripts.local_postgres import create_database, drop_database
from scripts.local_unleash import LocalUnleash
from tests.conftest import alembic, api_client

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
    async with app.router.lifespan_context(app), api_client(app) as client:
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


def in_list(field: str, *values: str) -> dict[str, object]:
    return {"contextName": field, "operator": "IN", "values": list(values), "inverted": False}


def feature(name: str, enabled: bool, *strategies: dict[str, object], **more: object) -> dict:
    return {
        "name": name,
        "type": "release",
        "enabled": enabled,
        "project": "default",
        "stale": False,
        "impressionData": False,
        "strategies": list(strategies),
        **more,
    }


# Every shape of flag: the fast path answers the first five (the same for every context) and
# leaves the others to the SDK.
DEFAULT = {"name": "default", "parameters": {}, "constraints": []}
ROLLOUT = {"name": "flexibleRollout", "parameters": {"rollout": "50", "stickiness": "default"}}
PAYLOAD = {
    "version": 2,
    "segments": [{"id": 1, "constraints": [in_list("userId", "2")]}],
    "features": [
        feature("off", False, DEFAULT),
        feature("on", True, DEFAULT),
        feature("on-twice", True, DEFAULT, {"name": "default"}),
        feature("off-rollout", False, ROLLOUT),
        feature("off-child", False, DEFAULT, dependencies=[{"feature": "on"}]),
        # The SDK's to answer:
        feature("constrained", True, {**DEFAULT, "constraints": [in_list("userId", "1")]}),
        feature("rollout", True, {**ROLLOUT, "parameters": {**ROLLOUT["parameters"]}}),
        feature("segmented", True, {**DEFAULT, "segments": [1]}),
        feature("child-of-off", True, DEFAULT, dependencies=[{"feature": "off"}]),
        feature("child-of-on", True, DEFAULT, dependencies=[{"feature": "on"}]),
        feature("impressions", True, DEFAULT, impressionData=True),
        feature("no-strategy", True),
        feature("strategy-disabled", True, {**DEFAULT, "disabled": True}, ROLLOUT),
        feature("mixed", True, DEFAULT, ROLLOUT),
    ],
}
CONTEXT_FREE = {
    "off": False,
    "on": True,
    "on-twice": True,
    "off-rollout": False,
    "off-child": False,
}


def contexts() -> list[dict[str, object]]:
    """Contexts with a user or session id: without one the SDK's gradual rollout is random."""
    fixed = [
        {"userId": "1"},
        {"userId": "2", "sessionId": "s"},
        {"sessionId": "t", "remoteAddress": "10.0.0.1"},
    ]
    drawn = random.Random(16)
    return fixed + [{"sessionId": f"{drawn.getrandbits(64):x}"} for _ in range(40)]


def needs_the_fast_path() -> None:
    """Skip where the installed SDK fails the fast path's start-up check (it then serves every
    flag itself: scripts/release_spread.py reports it, as for the other fast paths)."""
    if (problem := flags_module.fast_path_problem()) is not None:
        pytest.skip(f"feature flags fast path off: {problem}")


@asynccontextmanager
async def offline_flags(tmp_path: Path, *, fast_paths: bool) -> AsyncIterator[FeatureFlags]:
    """FeatureFlags whose Unleash is unreachable and whose backup file holds PAYLOAD: the SDK's
    engine evaluates it as it would toggles fetched from a server."""
    if fast_paths:
        needs_the_fast_path()
    backup = tmp_path / "backup"
    backup.mkdir()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url="postgresql://unused@127.0.0.1/unused",
        unleash_url=f"http://127.0.0.1:{port}/api",
        unleash_backup_dir=backup,
        unleash_timeout_seconds=1,
        fast_paths=fast_paths,  # whatever FAST_PATHS says
    )
    FileCache(settings.app_name, directory=str(backup)).set(FEATURES_URL, json.dumps(PAYLOAD))
    flags = FeatureFlags(settings)
    await flags.start()
    try:
        await asyncio.wait_for(flags.starting, timeout=30)  # the fetch fails: the backup
        yield flags
    finally:
        await flags.stop()


@pytest.mark.parametrize("fast_paths", [True, False], ids=["fast-path", "sdk-only"])
async def test_the_fast_path_answers_every_flag_as_the_sdk_does(
    tmp_path: Path, fast_paths: bool
) -> None:
    async with offline_flags(tmp_path, fast_paths=fast_paths) as flags:
        client = flags.client
        assert client is not None
        assert flags.known == (CONTEXT_FREE if fast_paths else {})
        sdk_answers = set()
        for name in [f["name"] for f in PAYLOAD["features"]] + ["unknown"]:
            for context in contexts():
                stock = client.is_enabled(name, dict(context), _default)
                assert flags.answer(name, lambda c=context: dict(c)) is stock, (name, context)
                sdk_answers.add((name, stock))
        for name, value in CONTEXT_FREE.items():  # no context at all
            assert client.is_enabled(name, {}, _default) is value
            assert flags.answer(name, dict) is value
        # The payload is not trivial: the SDK's flags answer both ways between them.
        assert ("rollout", True) in sdk_answers and ("rollout", False) in sdk_answers
        assert ("child-of-off", False) in sdk_answers and ("child-of-on", True) in sdk_answers


async def test_the_fast_path_counts_each_evaluation_for_unleash(tmp_path: Path) -> None:
    async with offline_flags(tmp_path, fast_paths=True) as flags:
        assert flags.client is not None
        engine = flags.client._engine  # the SDK's own: it reports what get_metrics returns
        engine.get_metrics()  # drained: only what follows is counted
        for _ in range(3):
            assert flags.answer("on", dict) is True
            assert flags.answer("off", dict) is False
        assert flags.client.is_enabled("constrained", {"userId": "1"}) is True  # the SDK's
        toggles = engine.get_metrics()["toggles"]
        assert (toggles["on"]["yes"], toggles["on"]["no"]) == (3, 0)
        assert (toggles["off"]["yes"], toggles["off"]["no"]) == (0, 3)
        assert (toggles["constrained"]["yes"], toggles["constrained"]["no"]) == (1, 0)
        assert not engine.get_metrics()  # reported once: the next bucket starts empty


async def test_unleash_receives_the_usage_of_flags_the_fast_path_answered(
    committed_url: URL, unleash: LocalUnleash, flag: str, tmp_path: Path
) -> None:
    needs_the_fast_path()
    unleash.toggle(flag, on=True)
    settings = flag_settings(committed_url, unleash, tmp_path)
    settings = settings.model_copy(update={"fast_paths": True})  # whatever FAST_PATHS says
    async with serve(settings) as (client, app):
        item = await item_id(client)
        await until(client, item, CACHING)
        assert app.state.flags.known.get(flag) is True  # answered by the fast path
        for _ in range(5):
            assert await caching(client, item) == CACHING
    # Shutting down, the SDK sends what it has not reported yet; Unleash stores it in a while.
    for _ in range(120):
        usage = unleash.admin("GET", f"/client-metrics/features/{flag}").json()["lastHourUsage"]
        if sum(bucket["yes"] for bucket in usage) >= 6:
            break
        await asyncio.sleep(0.5)
    else:
        pytest.fail(f"Unleash never counted the flag's evaluations: {usage}")


def break_count_toggle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(UnleashEngine, "count_toggle")


def break_engine_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine that answers every flag with True: the probe's switched-off flag is not off."""
    monkeypatch.setattr(
        UnleashEngine,
        "check_enabled",
        lambda self, name, context, **_: type("Toggle", (), {"is_enabled": True})(),
    )


@pytest.mark.parametrize("break_it", [break_count_toggle, break_engine_answers])
def test_an_sdk_unlike_the_fast_path_expects_turns_it_off_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, break_it
) -> None:
    # Forget the outcome; monkeypatch puts back the process's own afterwards.
    monkeypatch.setattr(flags_module.CHECK, "done", False)
    monkeypatch.setattr(flags_module.CHECK, "problem", None)
    break_it(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="app.flags"):
        assert flags_module.fast_path_problem() is not None
        assert flags_module.fast_path_problem() is not None  # asked again: no second warning
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "feature flags fast path off" in warnings[0]
