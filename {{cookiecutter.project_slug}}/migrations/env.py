"""Alembic environment (async): migrations run under a PostgreSQL advisory lock."""

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, pool, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.config import Settings
from app.db_credentials import use_credentials
from app.db_roles import grant_app_role
from app.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata

# Any fixed 64-bit key works; it only has to be the same for every migration run of this service.
MIGRATION_LOCK_KEY = {{ ("migrations:" ~ cookiecutter.project_slug) | lock_key }}


def database_url() -> str:
    """The URL of the Settings (tests may pass one in through `config.attributes`)."""
    url = config.attributes.get("database_url") or Settings().sqlalchemy_url
    return url if isinstance(url, str) else url.render_as_string(hide_password=False)


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    # Two deploys may start `alembic upgrade head` at once; the second waits here, then finds
    # the database already at head. The lock is released when the connection closes.
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    connection.commit()
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
    current = settings()
    if current.db_app_user:  # the role the app connects as: infra/README.md
        password = current.db_app_password
        grant_app_role(
            connection, current.db_app_user, password.get_secret_value() if password else None
        )
        connection.commit()


def settings() -> Settings:
    return Settings(database_url=database_url())


async def run_migrations_online() -> None:
    engine = create_async_engine(database_url(), poolclass=pool.NullPool)
    use_credentials(engine, settings())  # TLS and the password source, as the app has them
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
