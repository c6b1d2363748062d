"""Load generators on loopback: a bounded asyncio client loop that records every request, a
readiness poller, and wrk paced by its Lua `delay()` for the soak."""

import asyncio
import json
import os
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

LUA_DIR = Path(__file__).resolve().parent / "lua"


@dataclass(frozen=True)
class Sample:
    """One request: when it was sent and answered (monotonic seconds), and how."""

    kind: str  # "write" or "read"
    started: float
    finished: float
    status: int  # 0: no HTTP answer (connection refused/reset, timeout)
    error_code: str | None = None  # the `error.code` of an error body
    retry_after: str | None = None
    item_id: int | None = None
    name: str | None = None

    @property
    def latency(self) -> float:
        return self.finished - self.started


@dataclass
class Recorder:
    samples: list[Sample] = field(default_factory=list)
    readiness: list[tuple[float, int]] = field(default_factory=list)

    def acknowledged_writes(self) -> dict[int, str]:
        return {s.item_id: s.name for s in self.samples if s.status == 201 and s.item_id and s.name}

    def between(self, start: float, end: float) -> list[Sample]:
        """Requests sent at or after `start` and answered by `end`."""
        return [s for s in self.samples if s.started >= start and s.finished <= end]


def _error_code(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


async def _one(client: httpx.AsyncClient, kind: str, recorder: Recorder, item: int | None) -> int:
    name = f"reliability {uuid.uuid4().hex}"
    started = time.monotonic()
    try:
        if kind == "write":
            response = await client.post("/items", json={"name": name, "price": "1.50"})
        else:
            response = await client.get(f"/items/{item or 1}")
    except httpx.HTTPError:
        recorder.samples.append(Sample(kind, started, time.monotonic(), 0))
        return 0
    finished = time.monotonic()
    body_id = None
    if response.status_code == 201:
        body_id = int(response.json()["id"])
    recorder.samples.append(
        Sample(
            kind,
            started,
            finished,
            response.status_code,
            _error_code(response) if response.status_code >= 400 else None,
            response.headers.get("retry-after"),
            body_id,
            name if kind == "write" else None,
        )
    )
    return body_id or 0


async def steady_load(
    base_url: str, recorder: Recorder, stop: asyncio.Event, *, workers: int = 6, pause: float = 0.01
) -> None:
    """`workers` loops, each writing an item then reading one back, until `stop` is set."""
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    timeout = httpx.Timeout(30.0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:

        async def worker() -> None:
            last = 0
            while not stop.is_set():
                created = await _one(client, "write", recorder, None)
                last = created or last
                await _one(client, "read", recorder, last or None)
                await asyncio.sleep(pause)

        await asyncio.gather(*(worker() for _ in range(workers)))


async def poll_readiness(
    base_url: str, recorder: Recorder, stop: asyncio.Event, every: float = 0.1
) -> None:
    """GET /health/ready every `every` seconds on a fresh connection; records (time, status)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=5.0) as client:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                status = (await client.get("/health/ready")).status_code
            except httpx.HTTPError:
                status = 0
            recorder.readiness.append((sent, status))
            await asyncio.sleep(max(0.0, every - (time.monotonic() - sent)))


@dataclass(frozen=True)
class WrkRun:
    requests: int
    seconds: float
    rps: float
    non_2xx: int
    socket_errors: int
    p99_ms: float
    max_ms: float


def run_wrk(
    url: str,
    *,
    seconds: int,
    connections: int,
    delay_ms: float,
    read_ids: int,
) -> WrkRun:
    """wrk on the mixed workload (mixed.lua: half writes, half reads of ids 1..`read_ids`);
    each connection waits `delay_ms` between requests, which paces the rate."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_DIR / "mixed.lua"),
        url,
        "--",
        str(read_ids),
        str(delay_ms),
    ]
    env = dict(os.environ)
    finished = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    for line in finished.stdout.splitlines():
        if line.startswith("RELIABILITY_JSON "):
            report = json.loads(line.removeprefix("RELIABILITY_JSON "))
            duration = report["duration_us"] / 1e6
            return WrkRun(
                requests=int(report["requests"]),
                seconds=duration,
                rps=report["requests"] / duration,
                non_2xx=int(report["non_2xx"]),
                socket_errors=int(report["socket_errors"]),
                p99_ms=report["p99_us"] / 1000,
                max_ms=report["max_us"] / 1000,
            )
    raise RuntimeError(f"wrk printed no result:\n{finished.stdout}\n{finished.stderr}")
