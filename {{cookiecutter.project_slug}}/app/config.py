"""Service configuration: one typed Settings class read from the environment (and .env)."""

from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Self

from pydantic import Field, PostgresDsn, SecretStr, field_validator, model_validator
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
        # No database is fine here: importing app.main builds the app without one. It is
        # required where it is used (sqlalchemy_url: the lifespan, Alembic).
        if self.environment in (Environment.STAGING, Environment.PRODUCTION) and (
            self.database_configured
        ):
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
