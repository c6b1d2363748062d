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
"""

import asyncio
import logging
import os
import socket
from contextlib import suppress
from typing import Annotated, Any

from fastapi import Depends, Request
from UnleashClient.clients.async_unleash_client import AsyncUnleashClient
from UnleashClient.utils import InstanceAllowType

from app.config import Settings
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
    return DEFAULTS[name]


class FeatureFlags:
    """The worker's Unleash client (None: flags off, defaults only) and its start-up task."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client: AsyncUnleashClient | None = None
        self.starting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        settings = self.settings
        if settings.unleash_url is None:
            return
        token = settings.unleash_api_token
        backup = settings.unleash_backup_dir
        backup.mkdir(parents=True, exist_ok=True)
        self.client = AsyncUnleashClient(
            url=str(settings.unleash_url),
            app_name=settings.app_name,
            environment=settings.unleash_environment,
            instance_id=f"{socket.gethostname()}-{os.getpid()}",
            refresh_interval=settings.unleash_refresh_seconds,
            custom_headers={"Authorization": token.get_secret_value()} if token else {},
            cache_directory=str(backup),
            request_timeout=settings.unleash_timeout_seconds,
            request_retries=0,
            # Tests and `--reload` build several apps in one process.
            multiple_instance_mode=InstanceAllowType.SILENTLY_ALLOW,
        )
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

    def enabled(self, name: str, context: dict[str, Any]) -> bool:
        client = self.client
        value = DEFAULTS[name] if client is None else client.is_enabled(name, context, _default)
        RESULTS[name, value].inc()
        return bool(value)


class Flags:
    """The flags for one request: `flags.enabled("items-client-caching")`."""

    __slots__ = ("context", "flags")

    def __init__(self, flags: FeatureFlags, context: dict[str, Any]) -> None:
        self.flags = flags
        self.context = context

    def enabled(self, name: str) -> bool:
        return self.flags.enabled(name, self.context)


async def get_flags(request: Request) -> Flags:
    flags: FeatureFlags = request.app.state.flags
    context: dict[str, Any] = {"sessionId": request_id_var.get()}
    if request.client is not None:
        context["remoteAddress"] = request.client.host
    return Flags(flags, context)


FlagsDep = Annotated[Flags, Depends(get_flags)]
