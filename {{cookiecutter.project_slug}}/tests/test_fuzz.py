"""API fuzzing (`make fuzz`; `make test` leaves it out): schemathesis, in-process, against the
app's own OpenAPI on the test database, with every check (schemathesis.toml). Then the
guarantees no generated request may break: the item history matches the writes, and no
database connection is left checked out.
"""
{% if cookiecutter.auth == "jwt" %}
import os
{%- endif %}
from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.config import SchemathesisConfig
from sqlalchemy.ext.asyncio import AsyncConnection

from app.config import Settings
from app.main import create_app
from tests.conftest import {% if cookiecutter.auth == "jwt" %}AUTH_HEADERS, {% endif %}PROJECT_ROOT
from tests.test_item_events import history_problems

pytestmark = pytest.mark.fuzz

{%- if cookiecutter.auth == "jwt" %}
# schemathesis.toml sends this token of both scopes as the bearer scheme's credentials (and
# checks, with ignored_auth, that each secured operation refuses requests without it).
os.environ["FUZZ_BEARER_TOKEN"] = AUTH_HEADERS["Authorization"].removeprefix("Bearer ")
{%- endif %}
CONFIG = SchemathesisConfig.from_path(PROJECT_ROOT / "schemathesis.toml")


@pytest.fixture(scope="session")
def fuzzed_app(settings: Settings) -> Iterator[FastAPI]:
    """The app on the real (committed) test database; schemathesis runs its lifespan."""
    yield create_app(settings)


@pytest.fixture(scope="session")
def api_schema(fuzzed_app: FastAPI) -> schemathesis.schemas.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app, config=CONFIG)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_every_operation_meets_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate()


async def test_fuzzing_left_no_partial_write_and_no_connection(
    fuzzed_app: FastAPI, connection: AsyncConnection
) -> None:
    assert await history_problems(connection) == []
    assert fuzzed_app.state.database.in_use == 0
