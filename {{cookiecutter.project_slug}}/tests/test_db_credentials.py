"""Credentials per connection on a real PostgreSQL that checks passwords: a password rotated
under load costs no request beyond the connections cut, and every new connection asks the
provider. Also the app role the migrations grant, and TLS settings.

These tests run their own throwaway server (not TEST_DATABASE_URL): they rewrite its pg_hba.conf
so that the app's role must give a password, as on RDS.
"""

import asyncio
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import certifi
import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import event
from sqlalchemy.engine import URL

from app.config import Settings
from app.database import Database
from app.db_credentials import PasswordFile, password_provider, tls_context, use_credentials
from app.main import create_app
from scripts.local_postgres import connect, create_database, local_server
from tests.conftest import alembic, api_client

APP_ROLE = "app_login"
# Connections cut under running requests fail those requests (at most one per pooled
# connection); every request that starts this long after the cut succeeds (in practice every one
# that starts after it). infra/README.md, "Database credentials", documents it.
RECONNECT_WINDOW = 1.0
WORKERS = 16
# Any CA bundle will do for checking the wiring (RDS's is in the image only).
CA_BUNDLE = Path(certifi.where())


@pytest.fixture(scope="module")
def password_server() -> Iterator[URL]:
    """Its own server: the superuser over the socket as before, every other role by password."""
    with (
        tempfile.TemporaryDirectory(prefix="pytest-postgres-auth-") as parent,
        local_server(Path(parent) / "data", keep_data=False) as admin,
    ):

        async def query(sql: str) -> str:
            conn = await connect(admin)
            try:
                return str(await conn.fetchval(sql))
            finally:
                await conn.close()

        # On a thread of its own: the session's event loop may be running here.
        with ThreadPoolExecutor(1) as thread:
            hba = Path(thread.submit(asyncio.run, query("SHOW hba_file")).result())
            hba.write_text("local all postgres trust\nlocal all all scram-sha-256\n")
            thread.submit(asyncio.run, query("SELECT pg_reload_conf()")).result()
        yield admin


@pytest.fixture(scope="module")
def migrated(password_server: URL) -> URL:
    """A database migrated with DB_APP_USER set, as the deploy's migration task runs it."""
    url = create_database(password_server, "credentials")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DB_APP_USER", APP_ROLE)
        patch.setenv("DB_APP_PASSWORD", "set-by-the-migrations")
        result = alembic(url, "upgrade", "head")
    assert result.returncode == 0, result.stderr
    return url


async def admin_execute(url: URL, *statements: str) -> None:
    conn = await connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def app_settings(admin: URL, password_file: Path | None) -> Settings:
    """The app as its role, the password read from `password_file` (None: given by a test)."""
    return Settings(
        _env_file=None,
        database_url=admin.set(username=APP_ROLE).render_as_string(hide_password=False),
        db_password_file=password_file,
        db_pool_size=4,
        environment="production" if password_file else "test",
        log_level="WARNING",
    )


class CountingProvider(PasswordFile):
    """The app's file provider, counting how often a connection asked it and was refused."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.calls = 0
        self.refreshes = 0

    async def __call__(self) -> str:
        self.calls += 1
        return await super().__call__()

    def refresh(self) -> None:
        self.refreshes += 1
        super().refresh()


@pytest.fixture
async def rotating(migrated: URL) -> AsyncIterator[tuple[Path, URL]]:
    await admin_execute(migrated, f"ALTER ROLE {APP_ROLE} PASSWORD 'first-password'")
    # Not pytest's tmp_path: creating it makes /tmp/pytest-of-<user> private again, and the
    # template's own tests run this suite from a project there, whose PostgreSQL binaries the
    # server's user (another one, under root) must still reach.
    with tempfile.TemporaryDirectory(prefix="pytest-secret-") as directory:
        password_file = Path(directory) / "db-password"
        password_file.write_text("first-password\n")
        yield password_file, migrated


async def test_the_migrations_set_the_app_role_password(migrated: URL) -> None:
    """(database=ecs_efs: the app's password comes from a secret the migrations apply.)"""
    conn = await asyncpg.connect(
        user=APP_ROLE,
        password="set-by-the-migrations",
        host=migrated.query["host"],
        port=migrated.port,
        database=migrated.database,
    )
    await conn.close()


async def test_the_server_really_checks_the_password(rotating: tuple[Path, URL]) -> None:
    _, url = rotating
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(
            user=APP_ROLE, password="wrong", host=url.query["host"], port=url.port, database="x"
        )


async def test_a_rotation_under_load_fails_no_request_after_the_reconnect_window(
    rotating: tuple[Path, URL],
) -> None:
    password_file, url = rotating
    settings = app_settings(url, password_file)
    app = create_app(settings)
    outcomes: list[tuple[float, float, int]] = []  # (started, finished, status)
    stop = asyncio.Event()

    async def client_loop(client: httpx.AsyncClient, worker: int) -> None:
        n = 0
        while not stop.is_set():
            started = time.monotonic()
            if n % 4 == 0:
                body = {"name": f"w{worker}-{n}", "price": "1.00"}
                response = await client.post("/items", json=body)
            else:
                response = await client.get("/items", params={"limit": 5})
            outcomes.append((started, time.monotonic(), response.status_code))
            n += 1

    async with app.router.lifespan_context(app), api_client(app) as client:
        workers = [asyncio.create_task(client_loop(client, w)) for w in range(WORKERS)]
        await asyncio.sleep(1.0)
        rotation = time.monotonic()
        # The rotation: a new password on the server and in the secret; then the pool's
        # connections go (a recycle, a failover), so the next ones log in with it.
        await admin_execute(url, f"ALTER ROLE {APP_ROLE} PASSWORD 'second-password'")
        password_file.write_text("second-password\n")
        await admin_execute(
            url,
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{APP_ROLE}'",
        )
        cut = time.monotonic()
        await asyncio.sleep(RECONNECT_WINDOW + 2.0)
        stop.set()
        await asyncio.gather(*workers)

    before = [status for _, finished, status in outcomes if finished < rotation]
    after_window = [status for started, _, status in outcomes if started >= cut + RECONNECT_WINDOW]
    assert before and all(status in (200, 201) for status in before)
    assert len(after_window) > 100
    failed = [status for status in after_window if status not in (200, 201)]
    assert failed == [], f"{len(failed)} of {len(after_window)} requests failed: {failed[:5]}"
    cut_short = [status for _, _, status in outcomes if status not in (200, 201)]
    assert len(cut_short) <= settings.db_pool_size  # only those running on a cut connection


async def test_every_new_connection_asks_the_provider(rotating: tuple[Path, URL]) -> None:
    password_file, url = rotating
    settings = app_settings(url, None)
    database = Database.from_settings(settings)
    provider = CountingProvider(password_file)
    use_credentials(database.engine, settings, provider)
    try:
        pids = set()
        for _ in range(3):
            async with database.engine.connect() as conn:
                raw = await conn.get_raw_connection()
                pids.add(await raw.driver_connection.fetchval("SELECT pg_backend_pid()"))  # type: ignore[union-attr]
                await conn.invalidate()  # the next one is a new connection
        assert len(pids) == 3
        assert provider.calls == 3
        assert provider.refreshes == 0
    finally:
        await database.close()


async def test_a_wrong_password_everywhere_is_a_503_not_a_crash(
    rotating: tuple[Path, URL],
) -> None:
    password_file, url = rotating
    password_file.write_text("not-the-password\n")
    app = create_app(app_settings(url, password_file))
    async with app.router.lifespan_context(app), api_client(app) as client:
        response = await client.get("/items")
    assert response.status_code == 503


async def test_the_app_role_may_write_rows_but_not_the_schema(rotating: tuple[Path, URL]) -> None:
    _, url = rotating
    conn = await asyncpg.connect(
        user=APP_ROLE,
        password="first-password",
        host=url.query["host"],
        port=url.port,
        database=url.database,
    )
    try:
        await conn.execute("INSERT INTO items (name, price) VALUES ('granted', 1)")
        assert await conn.fetchval("SELECT count(*) FROM items WHERE name = 'granted'") >= 1
        await conn.execute("DELETE FROM items WHERE name = 'granted'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE intruder (id int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE alembic_version SET version_num = 'x'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DROP TABLE items")
    finally:
        await conn.close()


async def test_tables_of_later_migrations_are_granted_and_rds_iam_too(
    rotating: tuple[Path, URL],
) -> None:
    _, url = rotating
    # A table a later migration creates (as the migration user), and RDS's IAM role.
    await admin_execute(
        url,
        "CREATE TABLE later (id int)",
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rds_iam') "
        "THEN CREATE ROLE rds_iam; END IF; END $$",
    )
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DB_APP_USER", APP_ROLE)
            result = await asyncio.to_thread(alembic, url, "upgrade", "head")
        assert result.returncode == 0, result.stderr
        conn = await connect(url)
        try:
            assert await conn.fetchval(
                "SELECT has_table_privilege($1, 'later', 'INSERT')", APP_ROLE
            )
            assert await conn.fetchval("SELECT pg_has_role($1, 'rds_iam', 'MEMBER')", APP_ROLE)
        finally:
            await conn.close()
    finally:
        await admin_execute(url, "DROP TABLE later", f"REVOKE rds_iam FROM {APP_ROLE}")


def test_the_migration_user_is_refused_as_app_role(migrated: URL) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DB_APP_USER", "postgres")
        result = alembic(migrated, "upgrade", "head")
    assert result.returncode != 0
    assert "DB_APP_USER='postgres' is the migration user" in result.stderr


def test_tls_is_verify_full_with_the_given_bundle() -> None:
    context = tls_context(CA_BUNDLE)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.get_ca_certs()  # the bundle's CAs, loaded


async def test_the_engine_connects_with_the_verifying_tls_context(settings: Settings) -> None:
    database = Database.from_settings(settings.model_copy(update={"db_ssl_root_cert": CA_BUNDLE}))
    seen: list[object] = []
    # After the app's own listener, which sets the context and lets SQLAlchemy connect.
    event.listen(
        database.engine.sync_engine,
        "do_connect",
        lambda _dialect, _record, _cargs, cparams: seen.append(cparams.get("ssl")),
    )
    try:
        reachable = await database.is_reachable()
    finally:
        await database.close()
    # The throwaway server listens on a unix socket, where asyncpg uses no TLS, so it connects;
    # a TEST_DATABASE_URL server over TCP without a certificate from that bundle must refuse.
    over_unix_socket = str(settings.sqlalchemy_url.query.get("host", "")).startswith("/")
    assert reachable is over_unix_socket
    context = seen[0]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_tls_settings_refuse_a_missing_bundle_and_iam_without_tls() -> None:
    missing = Path(certifi.where()).with_name("no-such-bundle.pem")
    with pytest.raises(ValidationError, match=r"DB_SSL_ROOT_CERT=.*is not a file"):
        Settings(_env_file=None, postgres_host="db", db_ssl_root_cert=missing)
    with pytest.raises(ValidationError, match="DB_AUTH=rds_iam needs DB_SSL_ROOT_CERT"):
        Settings(_env_file=None, postgres_host="db", db_auth="rds_iam")


def test_a_password_file_spares_the_placeholder_check() -> None:
    settings = Settings(
        _env_file=None,
        postgres_host="db",
        environment="production",
        db_password_file=Path("/run/secrets/db-password"),
    )
    assert isinstance(password_provider(settings), PasswordFile)
