"""A throwaway PostgreSQL server on a loopback TCP port that the fault tests may stop and start.

Debian's server binaries (`apt-get install postgresql`), run as the `postgres` user when we are
root (the server refuses to run as root). Never the shared server on 5432: this one has its own
data directory and a free port, and is deleted afterwards.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_major_version)
    assert found, "PostgreSQL server binaries are missing: apt-get install postgresql"
    return Path(found[-1]).parent


def _major_version(path: str) -> int:
    return int(Path(path).parent.parent.name)


class ThrowawayPostgres:
    """initdb + pg_ctl on a temp data dir; `stop()`/`start()` keep the same port and data."""

    def __init__(self) -> None:
        self.bin = server_bin_dir()
        self.port = free_port()
        self.as_user = "postgres" if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="reliability-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        if self.as_user:
            entry = pwd.getpwnam(self.as_user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._pg("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        (self.data / "postgresql.auto.conf").write_text(
            f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
            f"unix_socket_directories = '{self.root}'\nmax_connections = 100\n"
        )
        self.start()

    @property
    def server_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _pg(self, tool: str, *args: str | Path, timeout: float = 60) -> str:
        result = subprocess.run(
            [str(self.bin / tool), *map(str, args)],
            user=self.as_user,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, f"{tool} {args}:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def start(self) -> None:
        """Start the server and return once it accepts connections."""
        self._pg("pg_ctl", "start", "-D", self.data, "-l", self.log, "-w", "-t", "30")

    def stop(self, mode: str = "immediate") -> None:
        """Stop the postmaster; `immediate` is a crash (recovery on the next start)."""
        self._pg("pg_ctl", "stop", "-D", self.data, "-m", mode, "-w", "-t", "30")

    def is_running(self) -> bool:
        result = subprocess.run(
            [str(self.bin / "pg_ctl"), "status", "-D", str(self.data)],
            user=self.as_user,
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def psql(self, sql: str, database: str = "postgres") -> str:
        return psql(self.url(database), sql)

    def create_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        if self.is_running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class TableLock:
    """An open psql session holding ACCESS EXCLUSIVE on a table: every query on it waits.

    Makes requests slow from the outside (no slow endpoint in the app): they hold a pooled
    connection, blocked on the lock, until `release()`.
    """

    def __init__(self, database_url: str, table: str) -> None:
        self.process = subprocess.Popen(
            ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", database_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._send(f"BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT 'locked';")
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        assert line == "locked", f"psql did not take the lock: {line!r}"

    def _send(self, sql: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(sql + "\n")
        self.process.stdin.flush()

    def release(self) -> None:
        if self.process.poll() is None:
            self._send("COMMIT;")
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(timeout=10)

    def __enter__(self) -> "TableLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def psql(database_url: str, sql: str) -> str:
    """Run `sql` and return the unaligned, tuples-only output."""
    result = subprocess.run(
        ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-At", "-d", database_url, "-c", sql],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"psql {sql!r}:\n{result.stderr}"
    return result.stdout.strip()


def waiting_on_locks(database_url: str) -> int:
    """How many sessions of the database are blocked on a lock right now."""
    return int(
        psql(
            database_url,
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
    )


def wait_until(check, *, timeout: float, every: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return bool(check())
