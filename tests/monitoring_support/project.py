"""The rendered service for the end-to-end test: its own venv, a fresh database, uvicorn."""

import os
import shutil
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from .prometheus import free_port, log_tail, wait_for

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# Runs inside the project's venv, where asyncpg is installed.
_EXECUTE_SQL = """
import asyncio, sys, asyncpg
async def main(dsn, sql):
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"


def install(project: Path, venv: Path) -> Path:
    """A venv with the project's runtime dependencies (uv when available, else pip)."""
    dependencies = tomllib.loads((project / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]
    python = venv / "bin" / "python"
    uv = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    if uv:
        run(uv, "venv", "--quiet", "--python", sys.executable, venv)
        run(uv, "pip", "install", "--quiet", "--python", python, *dependencies)
    else:
        run(sys.executable, "-m", "venv", venv)
        run(python, "-m", "pip", "install", "--quiet", *dependencies)
    return python


def with_database(url: str, name: str) -> str:
    """`url` with its database replaced by `name`, in the plain postgresql:// scheme."""
    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def fresh_database(python: Path) -> Iterator[str]:
    """A new database on TEST_DATABASE_URL's server (else local 5432), dropped afterwards."""
    server = with_database(os.environ.get("TEST_DATABASE_URL") or DEFAULT_SERVER_URL, "postgres")
    name = f"monitoring_e2e_{uuid.uuid4().hex[:12]}"
    execute_sql(python, server, f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server, name)
    finally:
        execute_sql(python, server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def execute_sql(python: Path, url: str, sql: str) -> None:
    """Run one statement on `url` with asyncpg from `python`'s venv (the project's)."""
    run(python, "-c", _EXECUTE_SQL, url, sql)


def migrate(python: Path, project: Path, database_url: str) -> None:
    run(
        python,
        "-m",
        "alembic",
        "upgrade",
        "head",
        cwd=project,
        env={**os.environ, "DATABASE_URL": database_url},
    )


@contextmanager
def serve(
    python: Path, project: Path, database_url: str, log: Path, **settings: str
) -> Iterator[str]:
    """Uvicorn serving the app as the Dockerfile does, on a free loopback port; yields host:port.
    `settings`: more environment for the app (REDIS_URL=...)."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "ACCESS_LOG": "false", "GIT_SHA": "e2e"}
    env |= settings
    process = subprocess.Popen(
        [
            python,
            "-m",
            "uvicorn",
            "app.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=project,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )

    def healthy() -> bool:
        assert process.poll() is None, f"uvicorn exited:\n{log_tail(log)}"
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(healthy, timeout=60, what=f"the app on port {port}")
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
