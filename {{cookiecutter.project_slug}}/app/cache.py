"""Cache-aside for `GET /items/{id}`: Redis in front of the database, never a source of errors.

A read looks the item up in Redis; on a miss it reads the database and stores the response body
with the item's version, for CACHE_TTL_SECONDS. The lookups that requests make in one turn of
the event loop go to Redis together, as one MGET: under load one round trip answers many
requests (the client's per-command cost is most of a lookup's), and a lone request waits for
no one. A write stores the new version (an update) or a
tombstone (a delete) once its transaction has committed. Every store goes through one Lua
script that keeps the newest version: a read that fetched version 1 before an update committed
version 2 can reach Redis after the update did, and still not put version 1 back.

Redis is an optimisation only. Each operation is bounded by REDIS_TIMEOUT (waiting for a pooled
connection, connecting and the command together) and any failure means "not cached": the read
goes to the database. After CACHE_BREAKER_FAILURES failures in a row a circuit breaker keeps
requests away from Redis for CACHE_BREAKER_SECONDS, then lets one try. A write whose store did
not reach Redis leaves the old entry there until its TTL ends: this worker reads that item from
the database until then, and other workers may serve the old entry for at most the TTL.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from app.config import Settings
from app.metrics import CACHE_CIRCUIT_OPEN, CACHE_ERRORS, CACHE_LATENCY, CACHE_LOOKUPS

logger = logging.getLogger(__name__)

# An entry is b"<version> <ItemRead JSON>"; a deleted item's is the tombstone.
TOMBSTONE = b"-"
# Store ARGV[2] for ARGV[3] ms unless the key holds version ARGV[1] or a newer one, or a tombstone.
STORE_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  if current == '-' then return 0 end
  local version = tonumber(string.match(current, '^(%d+) '))
  if version and version >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
# Ids whose write did not reach Redis, at most this many; beyond, the whole cache is skipped.
MAX_UNSYNCED = 10_000

# Labelled series, looked up once: `.labels()` takes a lock and builds a key each time.
HITS, MISSES, FAILED, SKIPPED = (
    CACHE_LOOKUPS.labels(result) for result in ("hit", "miss", "error", "skipped")
)
OPERATIONS = ("get", "store", "delete")
LATENCY = {operation: CACHE_LATENCY.labels(operation) for operation in OPERATIONS}
ERRORS = {operation: CACHE_ERRORS.labels(operation) for operation in OPERATIONS}


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the cache said: the item's response body on a hit, and whether to store a miss."""

    body: bytes | None = None
    version: int = 0
    fill: bool = False


MISS = Lookup(fill=True)
UNAVAILABLE = Lookup()  # Redis failed or is skipped: read the database, store nothing


class Failure:
    """A call that did not reach Redis: failed, or skipped while the breaker is open."""

    __slots__ = ("skipped",)

    def __init__(self, *, skipped: bool) -> None:
        self.skipped = skipped


SKIPPED_CALL = Failure(skipped=True)
FAILED_CALL = Failure(skipped=False)


class CircuitBreaker:
    """Closed until `threshold` failures in a row; then open for `cooldown` seconds, after which
    one call at a time tries Redis again until one succeeds."""

    def __init__(self, threshold: int, cooldown: float) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.failures = 0
        self.open_until = 0.0
        self.trying = False

    def allows(self) -> bool:
        if self.failures < self.threshold:
            return True
        if self.trying or time.monotonic() < self.open_until:
            return False
        self.trying = True
        return True

    def record(self, ok: bool) -> None:
        self.trying = False
        if ok:
            if self.failures >= self.threshold:
                logger.warning("cache: Redis answers again, using it")
                CACHE_CIRCUIT_OPEN.set(0)
            self.failures = 0
            return
        self.failures += 1
        if self.failures >= self.threshold:
            if self.failures == self.threshold:
                logger.warning("cache: Redis failing, reads go to the database for a while")
                CACHE_CIRCUIT_OPEN.set(1)
            self.open_until = time.monotonic() + self.cooldown


class ItemCache:
    """The items' cache on one connection pool per worker; `client` None: caching is off."""

    def __init__(self, client: Redis | None, settings: Settings) -> None:
        self.client = client
        self.prefix = settings.cache_key_prefix
        self.ttl_ms = settings.cache_ttl_seconds * 1000
        self.timeout = settings.redis_timeout
        self.breaker = CircuitBreaker(
            settings.cache_breaker_failures, settings.cache_breaker_seconds
        )
        # Item id -> until when its entry may be older than the database (a write missed Redis).
        self.unsynced: dict[int, float] = {}
        self.skip_all_until = 0.0
        # The lookups of this turn of the event loop, sent together as one MGET.
        self.batch: list[tuple[str, asyncio.Future[bytes | Failure | None]]] | None = None
        self.sending: set[asyncio.Task[None]] = set()
        self.store_if_newer = client.register_script(STORE_IF_NEWER) if client else None

    @classmethod
    def from_settings(cls, settings: Settings) -> "ItemCache":
        if settings.redis_url is None or not settings.cache_ttl_seconds:
            return cls(None, settings)
        password = settings.redis_password.get_secret_value() if settings.redis_password else None
        pool = BlockingConnectionPool.from_url(
            str(settings.redis_url),
            max_connections=settings.redis_max_connections,
            timeout=settings.redis_timeout,
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=settings.redis_connect_timeout,
            retry=Retry(NoBackoff(), 0),  # a failure is a miss; retrying would only add waiting
            client_name=settings.app_name,
            **({"username": settings.redis_username} if settings.redis_username else {}),
            **({"password": password} if password else {}),
        )
        return cls(Redis(connection_pool=pool), settings)

    async def get(self, item_id: int) -> Lookup:
        client = self.client
        if client is None:
            return UNAVAILABLE
        if self.unsynced and self._unsynced(item_id):
            SKIPPED.inc()
            return MISS  # the database's answer repairs the entry (it is newer)
        value = await self._lookup(client, self.prefix + str(item_id))
        if value is None:
            MISSES.inc()
            return MISS
        if isinstance(value, Failure):
            (SKIPPED if value.skipped else FAILED).inc()
            return UNAVAILABLE
        if value == TOMBSTONE:
            MISSES.inc()  # deleted: the database answers 404, and no read may store the item
            return UNAVAILABLE
        head, _, body = value.partition(b" ")
        HITS.inc()
        return Lookup(body, int(head))

    def _lookup(self, client: Redis, key: str) -> "asyncio.Future[bytes | Failure | None]":
        """`key`'s value, from the MGET of this turn of the event loop (one per turn)."""
        loop = asyncio.get_running_loop()
        if self.batch is None:
            self.batch = []
            # Runs once this turn's requests have asked. Held until done: the loop keeps only a
            # weak reference to a task.
            task = loop.create_task(self._send_batch(client))
            self.sending.add(task)
            task.add_done_callback(self.sending.discard)
        future: asyncio.Future[bytes | Failure | None] = loop.create_future()
        self.batch.append((key, future))
        return future

    async def _send_batch(self, client: Redis) -> None:
        batch, self.batch = self.batch or [], None
        keys = [key for key, _ in batch]
        values = await self._call("get", lambda: client.mget(keys))
        if isinstance(values, Failure):
            values = [values] * len(batch)
        for (_, future), value in zip(batch, values, strict=True):
            if not future.done():  # its request was cancelled meanwhile
                future.set_result(value)

    async def fill(self, item_id: int, version: int, body: bytes | memoryview) -> bool:
        """After a miss: cache the item at `version`, unless a newer version (or its delete)
        is there. False: Redis was not reached (nothing changed there)."""
        if self.store_if_newer is None:
            return False
        script, key = self.store_if_newer, self.prefix + str(item_id)
        args: list[int | bytes] = [version, b"%d %s" % (version, body), self.ttl_ms]
        reply = await self._call("store", lambda: script(keys=[key], args=args))
        return not isinstance(reply, Failure)

    async def update(self, item_id: int, version: int, body: bytes | memoryview) -> None:
        """After an update committed: its version, stored as a fill is (the newest wins)."""
        if not await self.fill(item_id, version, body) and self.client is not None:
            self._mark_unsynced(item_id)

    async def delete(self, item_id: int) -> None:
        """After a delete committed: the tombstone, which no store of an older read replaces."""
        if self.client is None:
            return
        client, key, ttl_ms = self.client, self.prefix + str(item_id), self.ttl_ms
        reply = await self._call("delete", lambda: client.set(key, TOMBSTONE, px=ttl_ms))
        if isinstance(reply, Failure):
            self._mark_unsynced(item_id)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            await self.client.connection_pool.disconnect()

    async def _call(self, operation: str, command: Callable[[], Awaitable[Any]]) -> Any:
        """The command's reply, or a Failure: never an exception, never longer than the timeout."""
        if not self.breaker.allows():
            return SKIPPED_CALL
        started = time.perf_counter()
        ok = False
        try:
            async with asyncio.timeout(self.timeout):
                result = await command()
            ok = True
            return result
        except (RedisError, OSError, TimeoutError) as error:
            ERRORS[operation].inc()
            if isinstance(error, RedisConnectionError | ConnectionError) and self.client:
                # A restarted server closed every connection: drop the idle ones now rather
                # than fail once on each of them after it is back.
                with suppress(RedisError, OSError):
                    await self.client.connection_pool.disconnect(inuse_connections=False)
            return FAILED_CALL
        finally:
            LATENCY[operation].observe(time.perf_counter() - started)
            self.breaker.record(ok)

    def _unsynced(self, item_id: int) -> bool:
        now = time.monotonic()
        if now < self.skip_all_until:
            return True
        until = self.unsynced.get(item_id)
        if until is None:
            return False
        if now < until:
            return True
        del self.unsynced[item_id]
        return False

    def _mark_unsynced(self, item_id: int) -> None:
        now = time.monotonic()
        until = now + self.ttl_ms / 1000
        if len(self.unsynced) >= MAX_UNSYNCED:
            self.unsynced = {key: end for key, end in self.unsynced.items() if end > now}
        if len(self.unsynced) >= MAX_UNSYNCED:
            self.unsynced.clear()
            self.skip_all_until = until
        self.unsynced[item_id] = until


async def get_item_cache(request: Request) -> ItemCache:
    cache: ItemCache = request.app.state.cache
    return cache


ItemCacheDep = Annotated[ItemCache, Depends(get_item_cache)]
