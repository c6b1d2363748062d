"""A local Redis without Docker (the `redis-server` binary on a free port, nothing saved to disk).

Used by the test suite when REDIS_URL is unset, and by `make dev` when no REDIS_URL is configured
(scripts/dev.py). Debian/Ubuntu: `apt-get install redis-server`; macOS: `brew install redis`.
"""

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

START_TIMEOUT_S = 10


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LocalRedis:
    """One redis-server process on 127.0.0.1, which the tests may kill, restart or pause."""

    def __init__(self, directory: Path, config: tuple[str, ...] = ()) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server not found: install it (apt-get install redis-server, "
                "brew install redis) or set REDIS_URL to a Redis of your own"
            )
        self.binary = binary
        self.directory = directory
        self.config = config  # extra redis.conf lines, e.g. ACL users
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server (again, on the same port) and wait until it answers PING."""
        self.directory.mkdir(parents=True, exist_ok=True)
        config_file = self.directory / "redis.conf"
        config_file.write_text("".join(f"{line}\n" for line in self.config))
        # A cache: no snapshots, no append-only file, so a restart starts empty.
        options = {"port": str(self.port), "bind": "127.0.0.1", "save": "", "appendonly": "no"}
        options |= {"dir": str(self.directory), "logfile": "redis.log"}
        arguments = [part for name, value in options.items() for part in (f"--{name}", value)]
        self.process = subprocess.Popen(
            [self.binary, str(config_file), *arguments], stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = self.directory / "redis.log"
                raise RuntimeError(f"redis-server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.02)

    def answers(self) -> bool:
        """Listening and answering (PONG, or NOAUTH when the default user is switched off)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the server is gone at once, its connections reset."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers (a server stuck, or a slow one)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.resume()  # a paused server cannot act on SIGTERM
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


@contextmanager
def local_redis(directory: Path, config: tuple[str, ...] = ()) -> Iterator[LocalRedis]:
    """A started server for the duration of the block, stopped afterwards."""
    server = LocalRedis(directory, config)
    server.start()
    try:
        yield server
    finally:
        server.stop()
