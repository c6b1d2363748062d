"""Migrations: a full up/down cycle, no drift from the models, and the advisory lock."""

import ast
import asyncio
import os
import sys
from pathlib import Path

import asyncpg
from sqlalchemy.engine import URL

from scripts.local_postgres import connect
from tests.conftest import PROJECT_ROOT, alembic


def migration_lock_key() -> int:
    tree = ast.parse(Path(PROJECT_ROOT, "migrations", "env.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "MIGRATION_LOCK_KEY":  # type: ignore[attr-defined]
            return ast.literal_eval(node.value)
    raise AssertionError("MIGRATION_LOCK_KEY not found in migrations/env.py")


async def table_exists(conn: asyncpg.Connection, name: str) -> bool:
    return await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name)


async def test_upgrade_downgrade_upgrade(fresh_database: URL) -> None:
    conn = await connect(fresh_database)
    try:
        for args, exists in (
            (("upgrade", "head"), True),
            (("downgrade", "base"), False),
            (("upgrade", "head"), True),
        ):
            result = await asyncio.to_thread(alembic, fresh_database, *args)
            assert result.returncode == 0, result.stderr
            assert await table_exists(conn, "items") is exists
    finally:
        await conn.close()


def test_models_and_migrations_do_not_drift(database_url: URL) -> None:
    result = alembic(database_url, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr


async def test_concurrent_upgrades_wait_for_the_advisory_lock(fresh_database: URL) -> None:
    key = migration_lock_key()
    holder = await connect(fresh_database)
    await holder.execute("SELECT pg_advisory_lock($1)", key)
    env = {**os.environ, "DATABASE_URL": fresh_database.render_as_string(hide_password=False)}
    upgrade = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "alembic",
        "upgrade",
        "head",
        cwd=PROJECT_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        # Wait until the migration is queued behind our lock, then prove it has done nothing.
        async with asyncio.timeout(30):
            while not await holder.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ):
                assert upgrade.returncode is None, "alembic exited instead of waiting"
                await asyncio.sleep(0.05)
        assert not await table_exists(holder, "items")
    finally:
        await holder.execute("SELECT pg_advisory_unlock($1)", key)
    _, stderr = await asyncio.wait_for(upgrade.communicate(), timeout=60)
    assert upgrade.returncode == 0, stderr.decode()
    assert await table_exists(holder, "items")
    await holder.close()
