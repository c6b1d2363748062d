"""The fault and load scenarios, shared by tests/test_reliability.py (which asserts on their
results) and reliability/report.py (which prints the same figures for the README table)."""

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from .app import ServedApp, dockerfile_cmd, option
from .load import Recorder, Sample, WrkRun, poll_readiness, run_wrk, steady_load
from .postgres import TableLock, ThrowawayPostgres, wait_until, waiting_on_locks

# --- database outage ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OutageResult:
    requests: int
    outage_seconds: float  # from the stop command until the server accepts connections again
    acknowledged_writes: int
    lost_writes: int
    server_errors_not_503: int  # 5xx other than the documented 503
    no_answer: int  # transport errors: refused/reset/timeout (the app died or hung)
    outage_requests: int  # sent after the server was down, answered before its restart
    outage_not_503_json: int  # of those, answers that were not 503 database_unavailable JSON
    outage_max_latency_s: float
    outage_without_retry_after: int
    ready_503_after_s: float | None  # readiness 503, seconds after the stop command
    ready_200_after_s: float | None  # readiness 200, seconds after the server accepts again
    settled_not_2xx: int  # requests sent 5 s after the restart or later that were not 2xx
    app_alive: bool


def database_outage(
    server: ThrowawayPostgres,
    app: ServedApp,
    database: str,
    *,
    baseline: float = 3.0,
    outage: float = 5.0,
    after: float = 7.0,
) -> OutageResult:
    """Steady writes and reads; PostgreSQL crashes (stop -m immediate) and comes back."""
    recorder = Recorder()
    marks: dict[str, float] = {}

    async def timeline() -> None:
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(steady_load(app.url, recorder, stop)),
            asyncio.create_task(poll_readiness(app.url, recorder, stop)),
        ]
        await asyncio.sleep(baseline)
        marks["stop"] = time.monotonic()
        await asyncio.to_thread(server.stop, "immediate")
        marks["stopped"] = time.monotonic()
        await asyncio.sleep(outage)
        marks["start"] = time.monotonic()
        await asyncio.to_thread(server.start)
        marks["started"] = time.monotonic()
        await asyncio.sleep(after)
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(timeline())
    return _judge_outage(server, app, database, recorder, marks)


def _judge_outage(
    server: ThrowawayPostgres,
    app: ServedApp,
    database: str,
    recorder: Recorder,
    marks: dict[str, float],
) -> OutageResult:
    samples = recorder.samples
    during = recorder.between(marks["stopped"], marks["start"])
    acknowledged = recorder.acknowledged_writes()
    return OutageResult(
        requests=len(samples),
        outage_seconds=marks["started"] - marks["stop"],
        acknowledged_writes=len(acknowledged),
        lost_writes=_missing_writes(server, database, acknowledged),
        server_errors_not_503=sum(1 for s in samples if s.status >= 500 and s.status != 503),
        no_answer=sum(1 for s in samples if s.status == 0),
        outage_requests=len(during),
        outage_not_503_json=sum(1 for s in during if not _is_unavailable(s)),
        outage_max_latency_s=max((s.latency for s in during), default=0.0),
        outage_without_retry_after=sum(1 for s in during if s.status == 503 and not s.retry_after),
        ready_503_after_s=_first_after(recorder.readiness, marks["stop"], lambda s: s == 503),
        ready_200_after_s=_first_after(recorder.readiness, marks["started"], lambda s: s == 200),
        settled_not_2xx=sum(
            1 for s in samples if s.started >= marks["started"] + 5 and not 200 <= s.status < 300
        ),
        app_alive=app.alive(),
    )


def _is_unavailable(sample: Sample) -> bool:
    return sample.status == 503 and sample.error_code == "database_unavailable"


def _first_after(polls: list[tuple[float, int]], start: float, wanted) -> float | None:  # type: ignore[no-untyped-def]
    """Seconds from `start` until the first poll sent after it got a `wanted` status.

    Polls are sent every 100 ms; the time counted is when the answer was asked for.
    """
    for sent, status in polls:
        if sent >= start and wanted(status):
            return sent - start
    return None


def _missing_writes(server: ThrowawayPostgres, database: str, acknowledged: dict[int, str]) -> int:
    """Acknowledged (201) items that are not in the table with the name they were given."""
    if not acknowledged:
        return 0
    ids = ",".join(str(item_id) for item_id in acknowledged)
    rows = server.psql(f"SELECT id, name FROM items WHERE id IN ({ids})", database)
    stored = dict(line.split("|", 1) for line in rows.splitlines())
    return sum(1 for item_id, name in acknowledged.items() if stored.get(str(item_id)) != name)


# --- graceful shutdown -------------------------------------------------------------------------


@dataclass(frozen=True)
class ShutdownResult:
    in_flight: int
    completed_200: int
    refused_after_s: float | None  # from SIGTERM until a new connection is refused
    exit_after_s: float  # from SIGTERM until the process has exited
    exit_code: int
    graceful_timeout_s: float | None  # uvicorn --timeout-graceful-shutdown in the Dockerfile


def graceful_shutdown(
    app: ServedApp, database_url: str, project: Path, *, in_flight: int = 8, hold: float = 3.0
) -> ShutdownResult:
    """SIGTERM while `in_flight` reads wait on a table lock; the lock goes `hold` s later."""
    item = httpx.post(f"{app.url}/items", json={"name": "in flight", "price": "1"}, timeout=10)
    assert item.status_code == 201, item.text
    path = f"/items/{item.json()['id']}"
    with TableLock(database_url, "items") as lock, ThreadPoolExecutor(in_flight) as pool:
        futures = [pool.submit(_get_status, f"{app.url}{path}") for _ in range(in_flight)]
        blocked = wait_until(lambda: waiting_on_locks(database_url) >= in_flight, timeout=10)
        assert blocked, "the in-flight requests never reached the database"
        sent = time.monotonic()
        app.process.send_signal(15)  # SIGTERM, as ECS sends it
        refused_after = _seconds_until_refused(app.port, sent, timeout=hold)
        time.sleep(max(0.0, hold - (time.monotonic() - sent)))
        lock.release()
        statuses = [future.result() for future in futures]
    exit_code = app.process.wait(timeout=60)
    return ShutdownResult(
        in_flight=in_flight,
        completed_200=statuses.count(200),
        refused_after_s=refused_after,
        exit_after_s=time.monotonic() - sent,
        exit_code=exit_code,
        graceful_timeout_s=_graceful_timeout(project),
    )


def _get_status(url: str) -> int:
    try:
        return httpx.get(url, timeout=60).status_code
    except httpx.HTTPError:
        return 0


def _seconds_until_refused(port: int, since: float, *, timeout: float) -> float | None:
    deadline = since + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return time.monotonic() - since
        time.sleep(0.02)
    return None


def _graceful_timeout(project: Path) -> float | None:
    value = option(dockerfile_cmd(project), "--timeout-graceful-shutdown")
    return float(value) if value is not None else None


@dataclass(frozen=True)
class InfraTimeouts:
    stop_timeout_s: int  # ECS container stopTimeout of the app container
    deregistration_delay_s: int  # ALB target group of the app


def infra_timeouts(project: Path) -> InfraTimeouts:
    """Run the rendered Pulumi program under its own mocks and read what it declares."""
    recorder = project / "infra" / "tests" / "record_program.py"
    finished = subprocess.run(
        [sys.executable, str(recorder)],
        input="[{}]",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-4000:]
    (result,) = json.loads(finished.stdout)
    assert "error" not in result, result.get("error")
    stop_timeouts, delays = [], []
    for resource in result["resources"]:
        inputs = resource["inputs"]
        if resource["type"] == "aws:ecs/taskDefinition:TaskDefinition" and resource[
            "name"
        ].endswith("-app-task"):
            containers = json.loads(inputs["containerDefinitions"])
            stop_timeouts += [c["stopTimeout"] for c in containers if c["name"] == "app"]
        if resource["type"] == "aws:lb/targetGroup:TargetGroup" and resource["name"].endswith(
            "-app"
        ):
            delays.append(int(float(inputs["deregistrationDelay"])))
    assert len(stop_timeouts) == 1 and len(delays) == 1, (stop_timeouts, delays)
    return InfraTimeouts(stop_timeouts[0], delays[0])


# --- pool exhaustion ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolExhaustionResult:
    pool_size: int
    pool_timeout_s: float
    concurrent: int
    answered_503: int  # 503 database_unavailable JSON
    answered_200: int
    other: int
    max_503_latency_s: float
    liveness_during: int  # GET /health while the pool is exhausted


def pool_exhaustion(
    app: ServedApp,
    database_url: str,
    *,
    pool_size: int,
    pool_timeout: float,
    concurrent: int = 6,
    hold: float = 3.0,
) -> PoolExhaustionResult:
    """More concurrent reads than connections while every connection waits on a lock."""
    item = httpx.post(f"{app.url}/items", json={"name": "pool", "price": "1"}, timeout=10)
    assert item.status_code == 201, item.text
    url = f"{app.url}/items/{item.json()['id']}"
    results: list[tuple[int, str | None, float]] = []
    with TableLock(database_url, "items") as lock:
        threads = [
            threading.Thread(target=_timed_get, args=(url, results)) for _ in range(concurrent)
        ]
        for thread in threads:
            thread.start()
        time.sleep(pool_timeout / 2)
        liveness = httpx.get(f"{app.url}/health", timeout=5).status_code
        time.sleep(max(0.0, hold - pool_timeout / 2))
        lock.release()
        for thread in threads:
            thread.join(timeout=60)
    unavailable = [r for r in results if r[0] == 503 and r[1] == "database_unavailable"]
    return PoolExhaustionResult(
        pool_size=pool_size,
        pool_timeout_s=pool_timeout,
        concurrent=concurrent,
        answered_503=len(unavailable),
        answered_200=sum(1 for r in results if r[0] == 200),
        other=sum(1 for r in results if r[0] not in (200, 503)),
        max_503_latency_s=max((r[2] for r in unavailable), default=0.0),
        liveness_during=liveness,
    )


def _timed_get(url: str, results: list[tuple[int, str | None, float]]) -> None:
    started = time.monotonic()
    try:
        response = httpx.get(url, timeout=60)
    except httpx.HTTPError:
        results.append((0, None, time.monotonic() - started))
        return
    code = response.json().get("error", {}).get("code") if response.status_code >= 400 else None
    results.append((response.status_code, code, time.monotonic() - started))


# --- soak --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoakResult:
    capacity_rps: float  # unpaced, on the same workload
    warmup: WrkRun
    soak: WrkRun
    rss_after_warmup_mib: float
    rss_after_soak_mib: float

    @property
    def rss_growth(self) -> float:
        return self.rss_after_soak_mib / self.rss_after_warmup_mib - 1


SEEDED = 100


def soak(
    app: ServedApp, *, warmup: int = 10, seconds: int = 30, connections: int = 8
) -> SoakResult:
    """Half of the measured capacity on the mixed workload; RSS after warm-up and at the end."""
    with httpx.Client(base_url=app.url, timeout=10) as client:
        for n in range(SEEDED):
            client.post("/items", json={"name": f"seed {n}", "price": "1"}).raise_for_status()
    capacity = run_wrk(app.url, seconds=4, connections=16, delay_ms=0, read_ids=SEEDED).rps
    # Each connection sends one request per delay plus its latency: pace by the delay, then
    # scale it once by the rate the warm-up reached.
    target = capacity / 2
    delay_ms = 1000 * connections / target
    warm = run_wrk(
        app.url, seconds=warmup, connections=connections, delay_ms=delay_ms, read_ids=SEEDED
    )
    delay_ms *= warm.rps / target
    before = app.rss_kib()
    run = run_wrk(
        app.url, seconds=seconds, connections=connections, delay_ms=delay_ms, read_ids=SEEDED
    )
    after = app.rss_kib()
    return SoakResult(capacity, warm, run, before / 1024, after / 1024)
