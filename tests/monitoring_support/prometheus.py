"""A real Prometheus server on loopback for the end-to-end test, and polling helpers."""

import math
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], T | None], *, timeout: float, what: str, every: float = 0.5) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def log_tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class PromQLError(Exception):
    pass


class Prometheus:
    """`prometheus` with the given config, a throwaway TSDB and the HTTP API on loopback."""

    def __init__(self, config: Path, workdir: Path, port: int) -> None:
        binary = shutil.which("prometheus")
        assert binary, "the prometheus binary is missing: apt-get install prometheus"
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "prometheus.log"
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.http = httpx.Client(base_url=self.url, timeout=10)
        wait_for(self._ready, timeout=30, what=f"prometheus to be ready\n{log_tail(self.log)}")

    def _ready(self) -> bool:
        assert self.process.poll() is None, f"prometheus exited:\n{log_tail(self.log)}"
        try:
            return self.http.get("/-/ready").status_code == 200
        except httpx.TransportError:
            return False

    def api(self, path: str, **params: str) -> Any:
        body = self.http.get(f"/api/v1/{path}", params=params).json()
        if body["status"] != "success":
            raise PromQLError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; raises PromQLError when Prometheus rejects the expression."""
        return self.api("query", query=expr)["result"]

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        self.process.wait(timeout=30)


def has_finite_value(result: list[dict[str, Any]]) -> bool:
    """True when an instant vector has at least one sample that is a real number (not NaN)."""
    return any(math.isfinite(float(sample["value"][1])) for sample in result)
