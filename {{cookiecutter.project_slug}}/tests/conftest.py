"""Fixtures: a real PostgreSQL, one migrated database per session, one rolled-back
transaction per test, and an HTTP client on the app.

The server is TEST_DATABASE_URL when set, otherwise a throwaway embedded PostgreSQL.
{%- if cookiecutter.auth == "jwt" %}

Every app the suite builds trusts a real OIDC issuer served by this process (tests/issuer.py),
through AUTH_ISSUER in the environment; `client` and `api_client()` send one of its tokens with
both scopes. tests/test_auth.py tests the tokens themselves.
{%- endif %}
"""

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import PoolProxiedConnection, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.config import Settings
from app.database import (
    CoreLink,
    Database,
    FastLink,
    Link,
    create_engine,
    get_database,
    get_session,
)
from app.main import create_app
from scripts.local_postgres import create_database, drop_database, local_server
{%- if cookiecutter.auth == "jwt" %}
from tests.issuer import AUDIENCE, Issuer
{%- endif %}

PROJECT_ROOT = Path(__file__).resolve().parent.parent
{%- if cookiecutter.auth == "jwt" %}

ISSUER = Issuer()
AUTH_HEADERS = {"Authorization": f"Bearer {ISSUER.token(['items:read', 'items:write'])}"}
if not os.environ.get("BASE_URL"):  # e2e runs call a running service, configured its own way
    os.environ["AUTH_ISSUER"] = ISSUER.url
    os.environ["AUTH_AUDIENCE"] = f'["{AUDIENCE}"]'
    os.environ.pop("AUTH_DEV_KEY", None)
{%- endif %}


def api_client(app: FastAPI, base_url: str = "http://test") -> httpx.AsyncClient:
    """An HTTP client calling `app` in this process{% if cookiecutter.auth == "jwt" %}, with a token of both scopes{% endif %}."""
    transport = httpx.ASGITransport(app=app)
{%- if cookiecutter.auth == "jwt" %}
    return httpx.AsyncClient(transport=transport, base_url=base_url, headers=AUTH_HEADERS)
{%- else %}
    return httpx.AsyncClient(transport=transport, base_url=base_url)
{%- endif %}


def alembic(database_url: URL, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real `alembic` command line against `database_url`."""
    env = {**os.environ, "DATABASE_URL": database_url.render_as_string(hide_password=False)}
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="session")
def server_url() -> Iterator[URL]:
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield make_url(url)
        return
    # Not under pytest's tmp dir: that is private to this user, and the server runs as another
    # user when the tests run as root (as in CI containers).
    with (
        tempfile.TemporaryDirectory(prefix="pytest-postgres-") as parent,
        local_server(Path(parent) / "data", keep_data=False) as url,
    ):
        yield url


@pytest.fixture
def scratch_dir() -> Iterator[Path]:
    """A directory of the test's own. Not pytest's tmp_path: creating that makes
    /tmp/pytest-of-<user> private again, and when this suite runs from a project there (as the
    template's tests run it), the throwaway server's user, another one under root, would lose
    its way to the server's binaries mid-run ("could not access file plpgsql")."""
    with tempfile.TemporaryDirectory(prefix="pytest-scratch-") as directory:
        yield Path(directory)


@pytest.fixture
def tmp_path(scratch_dir: Path) -> Path:
    """pytest's own tmp_path, replaced for the reason above: tests a team adds can use it."""
    return scratch_dir


@pytest.fixture
def fresh_database(server_url: URL) -> Iterator[URL]:
    """A new, empty database of the test's own, dropped after it."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield create_database(server_url, name)
    drop_database(server_url, name)


@pytest.fixture(scope="session")
def database_url(server_url: URL) -> Iterator[URL]:
    """A database migrated to head, shared by the session's tests."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    url = create_database(server_url, name)
    result = alembic(url, "upgrade", "head")
    assert result.returncode == 0, result.stderr
    yield url
    drop_database(server_url, name)


@pytest.fixture(scope="session")
def settings(database_url: URL) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url.render_as_string(hide_password=False),
        environment="test",
        log_level="WARNING",
    )


class BorrowedFastLink(FastLink):
    async def release(self, *, discard: bool = False) -> None:
        pass  # the test's connection is the fixture's to return


class BorrowedCoreLink(CoreLink):
    async def release(self, *, discard: bool = False) -> None:
        pass


class RolledBackDatabase(Database):
    """Runs every statement of the app on the test's connection, inside its transaction: the
    app's units of work become savepoints in it (NESTING = 1)."""

    NESTING = 1

    def __init__(self, connection: AsyncConnection, raw: PoolProxiedConnection, fast: bool):
        super().__init__(connection.engine, connections=1, wait=5, fast_path=fast)
        self.link = BorrowedFastLink(self, raw, 0.0) if fast else BorrowedCoreLink(connection)

    async def _open(self) -> Link:
        return self.link


@pytest.fixture
async def connection(settings: Settings) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction that is rolled back after the test."""
    engine = create_engine(settings)
    async with engine.connect() as conn:
        # The app runs in autocommit; here everything it writes stays in one open transaction.
        await conn.execution_options(isolation_level="READ COMMITTED")
        transaction = await conn.begin()
        # SQLAlchemy begins lazily, on the first statement it runs itself; the app's statements
        # go straight to asyncpg, so begin now.
        await conn.execute(text("SELECT 1"))
        yield conn
        await transaction.rollback()
    await engine.dispose()


@pytest.fixture
async def db(connection: AsyncConnection, settings: Settings) -> RolledBackDatabase:
    """The app's data layer on the test's connection: its fast path, or with FAST_PATHS=false
    SQLAlchemy's Connection execution (`FAST_PATHS=false make test` runs every test on it)."""
    raw = await connection.get_raw_connection()
    return RolledBackDatabase(connection, raw, settings.fast_paths)


@pytest.fixture
async def app(
    settings: Settings, db: RolledBackDatabase, connection: AsyncConnection
) -> AsyncIterator[FastAPI]:
    application = create_app(settings)

    async def rolled_back_database() -> Database:  # async, as get_database: see app/routing.py
        return db

    async def rolled_back_session() -> AsyncIterator[AsyncSession]:
        # The ORM joins the test's transaction; its commits and rollbacks are savepoints.
        async with AsyncSession(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        ) as session:
            yield session

    application.dependency_overrides[get_database] = rolled_back_database
    application.dependency_overrides[get_session] = rolled_back_session
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as client:
        yield client
