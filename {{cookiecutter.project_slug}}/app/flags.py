"""Feature flags from Unleash, never a reason for the service not to start or not to answer.

One `AsyncUnleashClient` (the official SDK's asyncio client: no threads) per worker, started in
the lifespan and stopped on shutdown. It polls Unleash every UNLEASH_REFRESH_SECONDS and keeps
the last toggles it fetched in a backup file under UNLEASH_BACKUP_DIR; a worker that starts
while Unleash is unreachable uses that file, and without one every flag has its default below.
Starting does not wait for Unleash: until the first answer (or the backup) arrives, defaults.
Without UNLEASH_URL no client runs and every flag has its default.

Add a flag: name it in DEFAULTS with the value the service must have when Unleash does not know
the flag (or is down on a first start), create it in Unleash, and ask `flags.enabled(name)` in
an endpoint that takes `flags: FlagsDep` (README, "Feature flags").

The fast path: the SDK's evaluation costs 30-100 us a call (the context is enriched, written as
JSON for its Rust engine and the answers read back, twice), a third of a GET /items/{id}. Most
flags, most of the time, are plainly on or off for everyone: switched off, or on with only the
`default` strategy and no constraint, segment, parent flag or impression data. Their answers are
read from the features payload the SDK hands its engine, which passes through its cache (a
documented extension point: `PayloadCache` below). Their evaluations are counted here and added
to the engine's usage bucket when the SDK reads it to report to Unleash (`reported_metrics`), so
Unleash sees every evaluation. Any other flag is asked of the SDK, and so is every flag with
FAST_PATHS=false or when the start-up check finds the SDK not as expected (one warning).
"""

import asyncio
import json
import logging
import os
import socket
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from importlib.metadata import version
from typing import Annotated, Any

from fastapi import Depends, Request
from UnleashClient.cache import FileCache
from UnleashClient.clients.async_unleash_client import AsyncUnleashClient
from UnleashClient.constants import FEATURES_URL
from UnleashClient.utils import InstanceAllowType
from yggdrasil_engine.engine import UnleashEngine

from app.config import Settings
from app.fast_paths import StartupCheck
from app.log import request_id_var
from app.metrics import FLAG_EVALUATIONS

logger = logging.getLogger(__name__)

# Every flag the code asks for, and its value when Unleash cannot say.
DEFAULTS: dict[str, bool] = {
    # GET /items/{id} answers with `Cache-Control: private, max-age=ITEM_MAX_AGE_SECONDS`, so
    # clients may reuse an item for that long (off: `no-cache`, they revalidate every time).
    "items-client-caching": False,
}
ITEM_MAX_AGE_SECONDS = 5

# Labelled series, looked up once (each `.labels()` call takes a lock and builds a key).
RESULTS = {
    (name, value): FLAG_EVALUATIONS.labels(name, str(value).lower())
    for name in DEFAULTS
    for value in (True, False)
}


def _default(name: str, _context: dict[str, Any]) -> bool:
    return DEFAULTS.get(name, False)


class FeatureFlags:
    """The worker's Unleash client (None: flags off, defaults only), its start-up task, and the
    fast path's answers: the flags whose answer cannot depend on the request."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client: AsyncUnleashClient | None = None
        self.starting: asyncio.Task[None] | None = None
        self.known: dict[str, bool] = {}  # empty: every flag is asked of the SDK
        # The fast path's evaluations since Unleash was last told (None: no fast path).
        self.counts: dict[tuple[str, bool], int] | None = None
        self.payload: object = None  # the features payload `known` was read from

    async def start(self) -> None:
        settings = self.settings
        if settings.unleash_url is None:
            return
        token = settings.unleash_api_token
        backup = settings.unleash_backup_dir
        backup.mkdir(parents=True, exist_ok=True)
        fast = settings.fast_paths and fast_path_problem() is None
        # The SDK's own backup file (same name, same place), which also shows us each payload.
        cache = PayloadCache(settings.app_name, str(backup), self.learn if fast else None)
        self.client = AsyncUnleashClient(
            url=str(settings.unleash_url),
            app_name=settings.app_name,
            environment=settings.unleash_environment,
            instance_id=f"{socket.gethostname()}-{os.getpid()}",
            refresh_interval=settings.unleash_refresh_seconds,
            custom_headers={"Authorization": token.get_secret_value()} if token else {},
            cache=cache,
            request_timeout=settings.unleash_timeout_seconds,
            request_retries=0,
            # Tests and `--reload` build several apps in one process.
            multiple_instance_mode=InstanceAllowType.SILENTLY_ALLOW,
        )
        if fast:
            self.counts = {}
            engine = self.client._engine  # private: checked at start-up
            engine.get_metrics = partial(self.reported_metrics, engine, engine.get_metrics)
        # In the background: a slow or absent Unleash must not delay the start.
        self.starting = asyncio.create_task(self._initialize(self.client), name="unleash-start")

    async def _initialize(self, client: AsyncUnleashClient) -> None:
        try:
            await client.initialize_client()
        except Exception as error:  # the SDK polls on; until it succeeds, backup or defaults
            logger.warning("feature flags: Unleash not reached yet (%s)", error)

    async def stop(self) -> None:
        if self.starting is not None and not self.starting.done():
            self.starting.cancel()
            with suppress(asyncio.CancelledError):
                await self.starting
        if self.client is not None:
            await self.client.destroy()

    def learn(self, payload: object) -> None:
        """The SDK stored or read a features payload for its engine: the answers it settles."""
        if payload is self.payload:  # the same object: each poll reads the cache again
            return
        self.payload = payload
        try:
            self.known = context_free_answers(payload)
        except Exception:  # not a payload we can read (and never an error in the SDK): ask it
            self.known = {}

    def answer(self, name: str, context: Callable[[], dict[str, Any]]) -> bool:
        """The flag's value: DEFAULTS without a client, the fast path's answer for a flag that
        has one, else the SDK's (`context` is built only then)."""
        client = self.client
        if client is None:
            return DEFAULTS.get(name, False)
        known = self.known.get(name)
        if known is not None and (counts := self.counts) is not None:
            key = (name, known)
            counts[key] = counts.get(key, 0) + 1
            return known
        return bool(client.is_enabled(name, context(), _default))

    def enabled(self, name: str, context: Callable[[], dict[str, Any]]) -> bool:
        value = self.answer(name, context)
        RESULTS[name, value].inc()
        return value

    def reported_metrics(
        self, engine: UnleashEngine, get_metrics: Callable[[], Any]
    ) -> dict[str, Any] | None:
        """The engine's usage bucket, which the SDK sends to Unleash, with the fast path's
        evaluations in it: each flag is counted once in the engine (so the bucket holds it in
        the engine's own form) and the rest of its count added there."""
        counts, self.counts = self.counts or {}, {}
        for name, value in counts:
            engine.count_toggle(name, value)
        bucket: dict[str, Any] | None = get_metrics()
        try:
            for (name, value), count in counts.items():
                bucket["toggles"][name]["yes" if value else "no"] += count - 1  # type: ignore[index]
        except (KeyError, TypeError):  # a bucket unlike the start-up check's: once each counted
            logger.warning("feature flags: usage counts reported once each, bucket unexpected")
        return bucket


class Flags:
    """The flags for one request: `flags.enabled("items-client-caching")`."""

    __slots__ = ("flags", "request")

    def __init__(self, flags: FeatureFlags, request: Request) -> None:
        self.flags = flags
        self.request = request

    def enabled(self, name: str) -> bool:
        return self.flags.enabled(name, self.context)

    def context(self) -> dict[str, Any]:
        """The Unleash context of the request (built only when a strategy may need it)."""
        context: dict[str, Any] = {"sessionId": request_id_var.get()}
        if self.request.client is not None:
            context["remoteAddress"] = self.request.client.host
        return context


async def get_flags(request: Request) -> Flags:
    return Flags(request.app.state.flags, request)


FlagsDep = Annotated[Flags, Depends(get_flags)]


# --- the fast path ----------------------------------------------------------------------------


class PayloadCache(FileCache):
    """The SDK's FileCache (its backup file), which hands every features payload the SDK stores
    in it or reads from it to `on_payload`. The SDK feeds its engine from this cache, so that is
    what the engine evaluates: on a first start from the backup file, and after each fetch."""

    def __init__(
        self, name: str, directory: str, on_payload: Callable[[object], None] | None
    ) -> None:
        super().__init__(name, directory=directory)
        self.on_payload = on_payload

    def set(self, key: str, value: Any) -> None:
        super().set(key, value)
        if key == FEATURES_URL and self.on_payload is not None:
            self.on_payload(value)

    def mset(self, data: dict[str, Any]) -> None:
        super().mset(data)
        if FEATURES_URL in data and self.on_payload is not None:
            self.on_payload(data[FEATURES_URL])

    def get(self, key: str, default: Any = None) -> Any:
        value = super().get(key, default)
        if key == FEATURES_URL and value and self.on_payload is not None:
            self.on_payload(value)
        return value


def context_free_answers(payload: object) -> dict[str, bool]:
    """The flags of a client-API features payload whose answer is the same for every context:
    off when switched off; on when on with only `default` strategies free of constraints and
    segments and no parent flag. A flag with impression data is left out (the SDK emits its
    events), and so is every other shape: those are the SDK's to evaluate."""
    state: Any = json.loads(payload) if isinstance(payload, str | bytes) else payload
    answers: dict[str, bool] = {}
    for feature in state["features"]:
        name = feature["name"]
        if feature.get("impressionData"):
            continue
        if not feature.get("enabled"):
            answers[name] = False
        elif (
            (strategies := feature.get("strategies"))
            and not feature.get("dependencies")
            and all(plain_default(strategy) for strategy in strategies)
        ):
            answers[name] = True
    return answers


def plain_default(strategy: dict[str, Any]) -> bool:
    return (
        strategy.get("name") == "default"
        and not strategy.get("constraints")
        and not strategy.get("segments")
        and not strategy.get("disabled")
    )


# --- the start-up check: what the fast path relies on is there and answers as the SDK does ----

CHECK = StartupCheck(
    logger,
    f"feature flags fast path off, UnleashClient {version('UnleashClient')} evaluates every "
    "flag: %s",
)

# One flag of each shape the fast path answers, and one it must leave to the engine.
PROBE = {
    "version": 2,
    "features": [
        {"name": "off", "enabled": False, "strategies": [{"name": "default"}]},
        {"name": "on", "enabled": True, "strategies": [{"name": "default", "constraints": []}]},
        {
            "name": "some",
            "enabled": True,
            "strategies": [
                {"name": "flexibleRollout", "parameters": {"rollout": "50", "groupId": "some"}}
            ],
        },
    ],
}


def fast_path_problem() -> str | None:
    """Why the fast path cannot answer here (None: it can); checked once per process."""
    return CHECK.problem_of(sdk_problem)


def sdk_problem() -> str | None:
    """Does the SDK still keep its engine where the fast path adds its counts, does the engine
    give the fast path's answers for the probe's flags, and keep its usage bucket as read?"""
    if not callable(getattr(UnleashEngine, "count_toggle", None)):
        return "UnleashEngine.count_toggle is gone"
    client_init = AsyncUnleashClient.__init__.__code__
    if "_engine" not in client_init.co_names or "cache" not in client_init.co_varnames:
        return "AsyncUnleashClient no longer keeps its engine in _engine or takes a cache"
    try:
        engine = UnleashEngine()
        engine.take_state(json.dumps(PROBE))
        answers = context_free_answers(PROBE)
        if set(answers) != {"off", "on"}:
            return f"the probe's context-free flags are {sorted(answers)}"
        for name, value in answers.items():
            for context in ({}, {"userId": "1", "sessionId": "a"}, {"sessionId": "b"}):
                if engine.check_enabled(name, context).is_enabled is not value:
                    return f"the engine answers {name} otherwise than the fast path"
        engine.count_toggle("on", True)
        counted = engine.get_metrics()["toggles"]["on"]
        if (counted["yes"], counted["no"]) != (1, 0):
            return f"the engine's usage bucket reads {counted!r}"
    except Exception as error:
        return f"the probe failed: {type(error).__name__}: {error}"
    return None
