"""The rendered service as production runs it: the Dockerfile's CMD, on a loopback port.

Reuses monitoring_support.project for the venv and the migrations; unlike its `serve()`, this
one hands back the process (signals, RSS) and takes extra settings for the app.
"""

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from monitoring_support import project as service
from monitoring_support.prometheus import log_tail, wait_for

from .postgres import ThrowawayPostgres, free_port


def dockerfile_cmd(project: Path) -> list[str]:
    """The exec-form CMD of the rendered Dockerfile (the production command line)."""
    text = re.sub(r"\\\n", " ", (project / "Dockerfile").read_text())  # join continued lines
    match = re.search(r"^CMD\s+(\[.*\])\s*$", text, re.M)
    assert match, "the Dockerfile has no exec-form CMD"
    return list(json.loads(match.group(1)))


def option(command: list[str], name: str) -> str | None:
    """The value of `--name value` or `--name=value` in a command line."""
    for index, arg in enumerate(command):
        if arg == name and index + 1 < len(command):
            return command[index + 1]
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
    return None


def local_command(project: Path, python: Path, port: int) -> list[str]:
    """The Dockerfile's uvicorn command, bound to 127.0.0.1:`port` and run by `python`."""
    command = dockerfile_cmd(project)
    assert command[0] == "uvicorn", command
    for flag, value in (("--host", "127.0.0.1"), ("--port", str(port))):
        command[command.index(flag) + 1] = value
    return [str(python), "-m", *command]


def prepare_database(python: Path, project: Path, server: ThrowawayPostgres, name: str) -> str:
    """A new, migrated database `name` on `server`; returns its URL."""
    url = server.create_database(name)
    service.migrate(python, project, url)
    return url


@dataclass
class ServedApp:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_kib(self) -> int:
        """Resident memory of the uvicorn worker (one process: WEB_CONCURRENCY unset)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        assert match, status
        return int(match.group(1))

    def alive(self) -> bool:
        return self.process.poll() is None

    def terminate(self) -> float:
        """SIGTERM, as ECS sends it; returns the seconds until the process has exited."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        return time.monotonic() - started


@contextmanager
def serve(
    python: Path,
    project: Path,
    database_url: str,
    log: Path,
    settings: Mapping[str, str] | None = None,
) -> Iterator[ServedApp]:
    """Serve the app with its production command; yields once /health answers 200."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ACCESS_LOG": "false",
        "LOG_LEVEL": "WARNING",
        "ENVIRONMENT": "test",
        **(settings or {}),
    }
    process = subprocess.Popen(
        local_command(project, python, port),
        cwd=project,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    app = ServedApp(process, port, log)

    def healthy() -> bool:
        assert process.poll() is None, f"uvicorn exited:\n{log_tail(log)}"
        try:
            return httpx.get(f"{app.url}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(healthy, timeout=60, what=f"the app on port {port}", every=0.1)
        yield app
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
