"""Service info, liveness and readiness, with the database up and down."""

from collections.abc import AsyncIterator

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.conftest import api_client

# Port 1 on loopback: nothing listens there, so every connection attempt is refused at once.
UNREACHABLE_DATABASE = "postgresql://postgres:pw@127.0.0.1:1/none"


@pytest.fixture
async def client_without_database() -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        _env_file=None,
        database_url=UNREACHABLE_DATABASE,
        environment="test",
        log_level="WARNING",
        db_connect_timeout=1,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app), api_client(app) as client:
        yield client


async def test_root_names_the_service(client: httpx.AsyncClient) -> None:
    body = (await client.get("/")).json()
    assert body == {"name": "{{ cookiecutter.project_slug }}", "version": "0.1.0", "docs": "/docs"}


async def test_liveness(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readiness_with_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_docs_and_openapi_are_served(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    schema = (await client.get("/openapi.json")).json()
    assert {"/", "/health", "/health/ready", "/items", "/items/{item_id}"} <= set(schema["paths"])


async def test_liveness_does_not_need_the_database(
    client_without_database: httpx.AsyncClient,
) -> None:
    assert (await client_without_database.get("/health")).status_code == 200


async def test_readiness_is_503_without_database(
    client_without_database: httpx.AsyncClient,
) -> None:
    response = await client_without_database.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/items", None),
        ("GET", "/items/1", None),
        ("POST", "/items", {"name": "x", "price": 1}),
    ],
)
async def test_data_endpoints_are_503_json_without_database(
    client_without_database: httpx.AsyncClient, method: str, path: str, body: dict | None
) -> None:
    response = await client_without_database.request(method, path, json=body)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    error = response.json()["error"]
    assert error["code"] == "database_unavailable"
    assert error["request_id"] == response.headers["x-request-id"]
