"""Settings: URL normalisation, assembling the URL from parts, refusing placeholder secrets."""

import pytest
from pydantic import ValidationError

from app.config import Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+asyncpg"])
def test_url_scheme_is_normalised_to_asyncpg(scheme: str) -> None:
    url = settings(database_url=f"{scheme}://u:p@db:5432/app").sqlalchemy_url
    assert url.drivername == "postgresql+asyncpg"
    assert (url.host, url.database) == ("db", "app")


def test_url_is_assembled_from_parts_with_special_characters() -> None:
    url = settings(
        postgres_host="db.internal", postgres_password="p@ss/w:rd?", postgres_db="orders"
    ).sqlalchemy_url
    assert url.password == "p@ss/w:rd?"
    assert (url.host, url.port, url.database) == ("db.internal", 5432, "orders")


def test_a_database_is_required_where_it_is_used() -> None:
    unconfigured = settings()  # fine: importing app.main needs no database
    with pytest.raises(ValueError, match="DATABASE_URL"):
        _ = unconfigured.sqlalchemy_url


def test_placeholder_check_needs_no_database() -> None:
    assert not settings(environment="production").database_configured


@pytest.mark.parametrize("password", ["change-me", "postgres", ""])
def test_placeholder_password_is_refused_in_production(password: str) -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        settings(environment="production", postgres_host="db", postgres_password=password)


def test_real_password_is_accepted_in_production() -> None:
    s = settings(environment="production", postgres_host="db", postgres_password="x7Gq-9s")
    assert s.sqlalchemy_url.password == "x7Gq-9s"


def test_placeholder_is_fine_in_development() -> None:
    assert settings(postgres_host="db", postgres_password="change-me").environment == "development"


def test_empty_environment_values_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db/app")
    monkeypatch.setenv("LOG_LEVEL", "")
    assert settings().log_level == "INFO"
