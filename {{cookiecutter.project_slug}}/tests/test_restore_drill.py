"""`make restore-drill` on a real PostgreSQL: a database with items and their events is backed
up, restored, compared table by table, migrated and served; and the comparison notices a row
that did not come back."""

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from scripts import restore_drill
from scripts.local_postgres import _run, connect, create_database, drop_database
from tests.conftest import PROJECT_ROOT, alembic

ITEMS = 300


@pytest.fixture(scope="module")
def source(server_url: URL) -> Iterator[URL]:
    """A migrated database with items, some updated, each with its events."""
    name = f"test_drill_{uuid.uuid4().hex[:12]}"
    url = create_database(server_url, name)
    result = alembic(url, "upgrade", "head")
    assert result.returncode == 0, result.stderr

    async def seed() -> None:
        connection = await connect(url)
        try:
            await connection.execute(
                "INSERT INTO items (name, description, price) "
                "SELECT 'item ' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'd' || g END, g / 7.0 "
                "FROM generate_series(1, $1) AS g",
                ITEMS,
            )
            await connection.execute(
                "UPDATE items SET name = name || ' (renamed)', version = version + 1 "
                "WHERE id % 10 = 0"
            )
            await connection.execute(
                "INSERT INTO item_events (item_id, kind, request_id) "
                "SELECT id, 'created', md5(id::text) FROM items"
            )
        finally:
            await connection.close()

    _run(seed())
    yield url
    drop_database(server_url, name)


def test_the_drill_restores_every_row_and_serves_the_copy(source: URL) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.restore_drill",
            "--source",
            source.render_as_string(hide_password=False),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every row came back" in result.stdout
    lines = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line}
    assert lines["public.items"][1:] == [f"{ITEMS:,}", f"{ITEMS:,}", "same"]
    assert lines["public.item_events"][1:] == [f"{ITEMS:,}", f"{ITEMS:,}", "same"]
    assert "read back through the API: 20 items" in result.stdout


def test_a_row_that_did_not_come_back_is_reported(source: URL, tmp_path: Path) -> None:
    backup = tmp_path / "backup.dump"
    restore_drill.dump(source, backup)
    name = f"test_drill_copy_{uuid.uuid4().hex[:12]}"
    server = source.set(database="postgres")
    copy = create_database(server, name)
    try:
        restore_drill.restore(backup, copy)
        assert all(check.same for check in restore_drill.compare(source, copy))

        async def lose_an_event() -> None:
            connection = await connect(copy)
            try:
                await connection.execute(
                    "DELETE FROM item_events WHERE id = (SELECT max(id) FROM item_events)"
                )
            finally:
                await connection.close()

        _run(lose_an_event())
        checks = {check.table: check for check in restore_drill.compare(source, copy)}
        assert not checks["public.item_events"].same
        assert checks["public.item_events"].restored_rows == ITEMS - 1
        assert checks["public.items"].same
    finally:
        drop_database(server, name)
