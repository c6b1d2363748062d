"""Service configuration: one typed Settings class read from the environment (and .env)."""

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (
{%- if cookiecutter.feature_flags == "unleash" or cookiecutter.auth == "jwt" %}
    AnyHttpUrl,
{%- endif %}
    Field,
    PostgresDsn,
{%- if cookiecutter.cache == "redis" %}
    RedisDsn,
{%- endif %}
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "postgres", "password", "secret"})


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    STAGING = "staging"
    PRODUCTION = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", frozen=True
    )

    app_name: str = "{{ cookiecutter.project_slug }}"
    environment: Environment = Environment.DEVELOPMENT
    version: str = "0.1.0"
    git_sha: str = "unknown"
    log_level: str = "INFO"
    access_log: bool = True
    # Request bodies above this are refused with 413 before they are read whole.
    max_request_body_bytes: Annotated[int, Field(ge=1)] = 1_048_576
    # Browser origins allowed to call the API (CORS); empty means no cross-origin access.
    cors_origins: list[str] = []

    # Either a full URL, or the parts ECS injects (the password as a Secrets Manager secret).
    database_url: PostgresDsn | None = None
    postgres_host: str | None = None
    postgres_port: int = 5432
    postgres_user: str = "postgres"
    postgres_password: SecretStr = SecretStr("")
    postgres_db: str = "{{ cookiecutter.package_name }}"

    # Pool: a fixed size (overflow connections are opened and closed per request under load,
    # which costs more than waiting for a pooled one), and bounded waits so an outage answers
    # 503 quickly instead of piling up requests.
    db_pool_size: Annotated[int, Field(ge=1)] = 10
    db_max_overflow: Annotated[int, Field(ge=0)] = 0
    db_pool_timeout: Annotated[float, Field(gt=0)] = 5.0
    db_connect_timeout: Annotated[float, Field(gt=0)] = 3.0
    db_statement_timeout_ms: Annotated[int, Field(ge=0)] = 10_000

    # Fast paths over library internals (data layer, routing, metrics: README "Fast paths").
    # false runs every one of them on its library's public path instead.
    fast_paths: bool = True

    # How each new connection authenticates (app/db_credentials.py): "password" (the URL's, or
    # DB_PASSWORD_FILE's, read again when refused) or "rds_iam" (a token per connection).
    db_auth: Literal["password", "rds_iam"] = "password"
    db_password_file: Path | None = None
    # CA bundle to verify the server's certificate and host name with (TLS required when set).
    db_ssl_root_cert: Path | None = None
    # Migrations only: the login role the app connects as, which they create and grant the
    # tables to (app/db_roles.py), and its password if it logs in with one; unset, they grant
    # nothing.
    db_app_user: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] | None = None
    db_app_password: SecretStr | None = None
{%- if cookiecutter.auth == "jwt" %}

    # Bearer tokens (app/auth.py). AUTH_ISSUER is the `iss` every token must carry; its keys are
    # found by OIDC discovery at <issuer>/.well-known/openid-configuration, or at AUTH_JWKS_URL.
    auth_issuer: str | None = None
    auth_jwks_url: AnyHttpUrl | None = None
    # Accepted `aud` values (Cognito access tokens: accepted `client_id`s), a JSON list.
    auth_audience: list[str] = ["{{ cookiecutter.project_slug }}"]
    # Prepended to the scopes this service checks (Cognito: "<resource server identifier>/").
    auth_scope_prefix: str = ""
    auth_algorithms: list[Literal["RS256", "ES256"]] = ["RS256", "ES256"]
    auth_leeway_seconds: Annotated[int, Field(ge=0, le=300)] = 30
    # Local work only: the seed of the key `make token` signs with, trusted instead of an
    # issuer's keys. Refused in staging and production.
    auth_dev_key: SecretStr | None = None
{%- endif %}
{%- if cookiecutter.cache == "redis" %}

    # The item cache (app/cache.py). Without REDIS_URL (redis://, or rediss:// for TLS), or
    # with CACHE_TTL_SECONDS=0, it is off and every read goes to the database.
    redis_url: RedisDsn | None = None
    redis_username: str | None = None
    redis_password: SecretStr | None = None
    redis_max_connections: Annotated[int, Field(ge=1)] = 32
    # One cache operation (a pooled connection, connecting, the command) takes at most
    # REDIS_TIMEOUT seconds; then the request goes on without the cache.
    redis_timeout: Annotated[float, Field(gt=0)] = 0.25
    redis_connect_timeout: Annotated[float, Field(gt=0)] = 0.25
    cache_ttl_seconds: Annotated[int, Field(ge=0)] = 300
    cache_key_prefix: str = "{{ cookiecutter.project_slug }}:item:"
    # After this many failures in a row, leave Redis alone for this many seconds.
    cache_breaker_failures: Annotated[int, Field(ge=1)] = 3
    cache_breaker_seconds: Annotated[float, Field(gt=0)] = 5.0
{%- endif %}

{%- if cookiecutter.feature_flags == "unleash" %}

    # Feature flags (app/flags.py). Without UNLEASH_URL (e.g. http://unleash:4242/api) every
    # flag has its default. The client token is sent as the Authorization header.
    unleash_url: AnyHttpUrl | None = None
    unleash_api_token: SecretStr | None = None
    # Unleash's environment for the SDK's context (the token decides which toggles it reads).
    unleash_environment: str = "development"
    unleash_refresh_seconds: Annotated[int, Field(ge=1)] = 15
    unleash_timeout_seconds: Annotated[int, Field(ge=1)] = 3
    # The SDK's backup of the last toggles it fetched: used when a worker starts while Unleash
    # is unreachable. Writable in the container (the root file system is read-only).
    unleash_backup_dir: Path = Path("/tmp/unleash")
{%- endif %}

    @field_validator("database_url", mode="before")
    @classmethod
    def _use_asyncpg(cls, value: object) -> object:
        """Accept postgres:// and postgresql:// URLs; the service always talks asyncpg."""
        if isinstance(value, str):
            for scheme in ("postgres://", "postgresql://", "postgresql+psycopg://"):
                if value.startswith(scheme):
                    return "postgresql+asyncpg://" + value.removeprefix(scheme)
        return value

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Self:
        production = self.environment in (Environment.STAGING, Environment.PRODUCTION)
        # No database is fine here: importing app.main builds the app without one. It is
        # required where it is used (sqlalchemy_url: the lifespan, Alembic).
        if self.db_ssl_root_cert is not None and not self.db_ssl_root_cert.is_file():
            raise ValueError(f"DB_SSL_ROOT_CERT={self.db_ssl_root_cert} is not a file")
        if self.db_auth == "rds_iam" and self.db_ssl_root_cert is None:
            raise ValueError(
                "DB_AUTH=rds_iam needs DB_SSL_ROOT_CERT: RDS takes IAM tokens over TLS only"
            )
{%- if cookiecutter.auth == "jwt" %}
        if self.auth_dev_key is not None and production:
            raise ValueError(
                f"AUTH_DEV_KEY is a local development key; refusing to run in {self.environment}"
            )
{%- endif %}
        uses_url_password = self.db_auth == "password" and self.db_password_file is None
        if uses_url_password and production and self.database_configured:
            password = self.sqlalchemy_url.password or ""
            if password.lower() in PLACEHOLDER_SECRETS:
                raise ValueError(
                    f"the database password is a placeholder; refusing to run in {self.environment}"
                )
        return self

    @property
    def database_configured(self) -> bool:
        return self.database_url is not None or self.postgres_host is not None

    @property
    def sqlalchemy_url(self) -> URL:
        if not self.database_configured:
            raise ValueError("set DATABASE_URL, or POSTGRES_HOST with the other POSTGRES_* parts")
        if self.database_url is not None:
            return make_url(str(self.database_url))
        return URL.create(
            "postgresql+asyncpg",
            username=self.postgres_user,
            password=self.postgres_password.get_secret_value() or None,
            host=self.postgres_host,
            port=self.postgres_port,
            database=self.postgres_db,
        )


@lru_cache
def get_settings() -> Settings:
    return Settings()
