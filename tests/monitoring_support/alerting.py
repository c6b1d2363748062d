"""A real Alertmanager (Debian's `prometheus-alertmanager`) and the project's alert logger on
loopback, for the test that follows an alert from a Prometheus rule to a receiver."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from .prometheus import log_tail, wait_for


class Alertmanager:
    """`prometheus-alertmanager` with the given config, throwaway storage, no gossip cluster."""

    def __init__(self, config: Path, workdir: Path, port: int) -> None:
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        assert binary, "alertmanager is missing: apt-get install prometheus-alertmanager"
        self.url = f"http://127.0.0.1:{port}"
        self.log = workdir / "alertmanager.log"
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={workdir / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        wait_for(self._ready, timeout=30, what=f"alertmanager to be ready\n{log_tail(self.log)}")

    def _ready(self) -> bool:
        assert self.process.poll() is None, f"alertmanager exited:\n{log_tail(self.log)}"
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


class AlertLogger:
    """The rendered project's monitoring/alert_logger.py, serving on loopback."""

    def __init__(self, script: Path, workdir: Path, port: int) -> None:
        self.log = workdir / "alert-logger.log"
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(script), str(port), "127.0.0.1"],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{port}/"
        wait_for(self._listening, timeout=30, what=f"alert-logger to listen\n{log_tail(self.log)}")

    def _listening(self) -> bool:
        assert self.process.poll() is None, f"alert-logger exited:\n{log_tail(self.log)}"
        return "listening" in self.log.read_text()

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert line printed so far, parsed."""
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
