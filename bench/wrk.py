"""The workloads, and one wrk run of a workload: command line, pinning and the parsed result."""

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA_DIR = Path(__file__).resolve().parent / "lua"
PAGE_SIZE = 50


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    script: str
    target_ratio: float  # app rps / reference rps, from issue 12

    def script_args(self, seeded_items: int) -> list[str]:
        if self.key in ("W1", "W4"):
            return [str(seeded_items)]
        if self.key == "W2":
            return [str(max(seeded_items - PAGE_SIZE, 0))]
        return []


WORKLOADS = (
    Workload("W0", "GET /health", "w0_health.lua", 0.35),
    Workload("W1", "GET /items/{id}", "w1_item.lua", 0.7),
    Workload("W2", "GET /items?limit=50", "w2_page.lua", 0.7),
    Workload("W3", "POST /items", "w3_create.lua", 0.65),
    Workload("W4", "PATCH /items/{id}", "w4_patch.lua", 0.6),
)


@dataclass(frozen=True)
class WrkResult:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int  # responses with a status of 400 or more
    socket_errors: int

    @classmethod
    def from_report(cls, report: dict[str, float]) -> "WrkResult":
        return cls(
            requests=int(report["requests"]),
            rps=report["requests"] / (report["duration_us"] / 1e6),
            p50_ms=report["p50_us"] / 1000,
            p99_ms=report["p99_us"] / 1000,
            non_2xx=int(report["non_2xx"]),
            socket_errors=int(report["socket_errors"]),
        )


def run_wrk(
    workload: Workload,
    url: str,
    *,
    seconds: float,
    seeded_items: int,
    connections: int = 32,
    cpu: int = 1,
    headers: dict[str, str] | None = None,
) -> WrkResult:
    """One wrk run on `cpu`, one thread, sending `headers` too; the Lua `done()` prints the
    numbers as JSON."""
    command = [
        *(["taskset", "-c", str(cpu)] if cpu >= 0 else []),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(round(seconds), 1)}s",
        "--timeout",
        "10s",
        *(part for name, value in (headers or {}).items() for part in ("-H", f"{name}: {value}")),
        "-s",
        str(LUA_DIR / workload.script),
        url,
        "--",
        *workload.script_args(seeded_items),
    ]
    env = {**os.environ, "LUA_PATH": f"{LUA_DIR}/?.lua;;"}
    finished = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    for line in finished.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return WrkResult.from_report(json.loads(line.removeprefix("BENCH_JSON ")))
    raise RuntimeError(f"wrk printed no result:\n{finished.stdout}\n{finished.stderr}")
