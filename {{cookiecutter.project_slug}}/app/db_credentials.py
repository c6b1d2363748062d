"""How the app authenticates to PostgreSQL: a credential read for each new connection, and TLS.

A password read once at start-up dies with the first rotation: every connection opened after it
(the pool replaces its connections every `pool_recycle` seconds, and at once after a restart of
the server) is refused while /health stays green. So the password is never part of the URL:
SQLAlchemy's `do_connect` event asks a provider for it each time it opens a connection, and
when the server refuses it, tells the provider to read it again and retries once.

Providers: `RdsIamToken` (RDS IAM authentication, a token signed locally for each connection:
nothing to rotate) and `PasswordFile` (a mounted secret that whoever rotates the password
rewrites). With neither, the URL's password is used as it is (local development, tests).
"""

import asyncio
import os
import ssl
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings

# SQLSTATEs of a refused login: invalid_password, and invalid_authorization_specification (what
# PostgreSQL answers for a failed PAM/IAM check or a role that may not log in).
AUTH_FAILURES = frozenset({"28P01", "28000"})


class PasswordProvider(Protocol):
    """The password of the next new connection."""

    async def __call__(self) -> str: ...

    def refresh(self) -> None:
        """The last password was refused: read it again before the next connection."""


class PasswordFile:
    """A password kept in a file (a mounted secret). Read on first use, kept in memory, and read
    again when the server refuses it: that is what a rotation looks like from here."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.password: str | None = None

    async def __call__(self) -> str:
        if self.password is None:
            self.password = self.path.read_text().strip()
        return self.password

    def refresh(self) -> None:
        self.password = None


class RdsIamToken:
    """An RDS IAM authentication token per connection: a SigV4 signature made locally (no AWS
    call) with the task role's credentials, valid 15 minutes for opening a connection; the open
    connection outlives it. The role needs `rds-db:connect` on this user (infra/README.md)."""

    def __init__(self, *, host: str, port: int, user: str, region: str | None) -> None:
        import botocore.session  # only this provider needs botocore

        self.host, self.port, self.user = host, port, user
        # ECS sets AWS_REGION and AWS_DEFAULT_REGION; botocore reads only the latter itself.
        region = region or os.environ.get("AWS_REGION")
        self.client = botocore.session.get_session().create_client("rds", region_name=region)

    async def __call__(self) -> str:
        # In a thread: when the role's credentials are due for renewal, botocore fetches new ones
        # from the container's credentials endpoint, a blocking HTTP call.
        token: str = await asyncio.to_thread(
            self.client.generate_db_auth_token, self.host, self.port, self.user
        )
        return token

    def refresh(self) -> None:
        pass  # every token is new


def password_provider(settings: Settings) -> PasswordProvider | None:
    """The provider the settings ask for, or None to use the URL's password as it is."""
    if settings.db_auth == "rds_iam":
        url = settings.sqlalchemy_url
        return RdsIamToken(
            host=url.host or "", port=url.port or 5432, user=url.username or "", region=None
        )
    if settings.db_password_file is not None:
        return PasswordFile(settings.db_password_file)
    return None


def tls_context(root_cert: Path) -> ssl.SSLContext:
    """libpq's sslmode=verify-full: TLS required, the server's certificate chained to
    `root_cert` (the RDS CA bundle) and issued for the host name connected to."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(root_cert))
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def use_credentials(
    engine: AsyncEngine, settings: Settings, provider: PasswordProvider | None = None
) -> None:
    """Make every new connection of `engine` ask `provider` (by default the one the settings
    name) for its password, retry once on a refused login, and verify TLS when configured."""
    provider = provider or password_provider(settings)
    context = tls_context(settings.db_ssl_root_cert) if settings.db_ssl_root_cert else None
    if provider is None and context is None:
        return

    @event.listens_for(engine.sync_engine, "do_connect")
    def connect(dialect: Dialect, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        if context is not None:
            cparams["ssl"] = context
        if provider is None:
            return None  # SQLAlchemy connects as usual, with the TLS context
        # asyncpg calls a callable password for each connection attempt (and awaits it).
        cparams["password"] = provider
        try:
            return dialect.connect(*cargs, **cparams)
        except dialect.loaded_dbapi.Error as error:
            if getattr(error, "sqlstate", None) not in AUTH_FAILURES:
                raise
            provider.refresh()  # rotated since it was read: read it again, once
            return dialect.connect(*cargs, **cparams)
