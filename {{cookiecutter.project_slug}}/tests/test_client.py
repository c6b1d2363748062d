"""The client package (packages/{{ cookiecutter.package_name }}_client) against this service, in this
process, on the real database: its models are the served OpenAPI document's, it calls every
/items operation there is, and each call (and each error) does what the API says.

packages/{{ cookiecutter.package_name }}_client/tests has the client's own tests (no service);
the template's CI also publishes it to a real index and uses it over HTTP from a fresh venv.
"""

import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from {{ cookiecutter.package_name }}_client import (
    AsyncClient,
    ItemCreate,
    NotFound,
    PreconditionFailed,
    Retry,
    ServiceUnavailable,
    ValidationFailed,
    calls,
)
from {{ cookiecutter.package_name }}_client.models import REQUEST_MODELS, RESPONSE_MODELS

from app.database import Database, DatabaseUnavailable, get_database
{%- if cookiecutter.auth == "jwt" %}
from tests.conftest import ISSUER
{%- endif %}

ITEM = {"name": "Widget", "description": "A widget", "price": "9.99"}


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(
        "http://test",
        transport=httpx.ASGITransport(app=app),
{%- if cookiecutter.auth == "jwt" %}
        token=lambda: ISSUER.token(["items:read", "items:write"]),
{%- endif %}
        retry=Retry(attempts=3, backoff=0.01),
    ) as client:
        yield client


def without_docs(schema: Any) -> Any:
    """The schema without titles, descriptions and `default: null` (FastAPI leaves that out of
    the document; a field with it is still optional, as `required` says)."""
    if isinstance(schema, dict):
        return {
            key: without_docs(value)
            for key, value in schema.items()
            if key not in ("title", "description") and (key, value) != ("default", None)
        }
    if isinstance(schema, list):
        return [without_docs(v) for v in schema]
    return schema


@pytest.mark.parametrize(
    ("model", "mode"),
    [(m, "validation") for m in REQUEST_MODELS] + [(m, "serialization") for m in RESPONSE_MODELS],
    ids=lambda value: getattr(value, "__name__", value),
)
def test_client_models_are_the_served_schemas(
    app: FastAPI, model: type[BaseModel], mode: Any
) -> None:
    served = app.openapi()["components"]["schemas"]
    mine = model.model_json_schema(mode=mode, ref_template="#/components/schemas/{model}")
    mine.pop("$defs", None)
    assert without_docs(mine) == without_docs(served[model.__name__]), (
        f"packages/.../models.py {model.__name__} differs from app/schemas.py: change it the same "
        "way and bump the client's version (README.md, 'Versioning the client')"
    )


def test_client_calls_every_items_operation(app: FastAPI) -> None:
    served = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/items")
        for method in operations
    }
    built = [
        calls.create_item(ITEM),
        calls.get_item(1),
        calls.list_items(20, 0),
        calls.update_item(1, {"name": "x"}, None),
        calls.delete_item(1, None),
        calls.list_item_events(1, 20, 0),
    ]
    called = {(call.method, re.sub(r"/1(?=/|$)", "/{item_id}", call.path)) for call in built}
    assert called == served


async def test_crud_and_history(api: AsyncClient) -> None:
    created = await api.create_item(ItemCreate.model_validate(ITEM))
    assert (created.name, created.price, created.version) == ("Widget", Decimal("9.99"), 1)
    assert await api.get_item(created.id) == created

    updated = await api.update_item(created.id, {"price": 8}, if_match=created.version)
    assert (updated.price, updated.version, updated.description) == (Decimal("8.00"), 2, "A widget")
    cleared = await api.update_item(created.id, {"description": None})
    assert cleared.description is None

    page = await api.list_items(limit=100)
    assert cleared in page.items and page.limit == 100

    events = await api.list_item_events(created.id)
    assert [event.kind for event in events.events] == ["updated", "updated", "created"]

    await api.delete_item(created.id, if_match=cleared.version)
    with pytest.raises(NotFound):
        await api.get_item(created.id)


async def test_errors_are_typed_with_the_error_shape(api: AsyncClient) -> None:
    with pytest.raises(NotFound) as missing:
        await api.get_item(2**62)
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    assert missing.value.request_id

    created = await api.create_item(ITEM)
    with pytest.raises(PreconditionFailed):
        await api.update_item(created.id, {"name": "Late"}, if_match=created.version + 1)
    with pytest.raises(ValidationFailed) as invalid:
        await api.list_items(limit=1000)  # over the page limit: only the service knows it
    assert invalid.value.details and invalid.value.details[0].loc == ["query", "limit"]


async def test_a_503_is_retried_after_retry_after(app: FastAPI, api: AsyncClient) -> None:
    """The database is unavailable for the first try: the service answers 503 with
    Retry-After: 1, the client waits that long and the second try is served."""
    real = app.dependency_overrides[get_database]
    tries = 0

    async def unavailable_once() -> Database:
        nonlocal tries
        tries += 1
        if tries == 1:
            raise DatabaseUnavailable("test: no connection")
        return await real()

    app.dependency_overrides[get_database] = unavailable_once
    created = await api.create_item(ITEM)
    assert (tries, created.name) == (2, "Widget")

    async def always_unavailable() -> Database:
        raise DatabaseUnavailable("test: no connection")

    app.dependency_overrides[get_database] = always_unavailable
    with pytest.raises(ServiceUnavailable) as gave_up:
        await api.get_item(created.id)
    assert gave_up.value.code == "database_unavailable"
    assert gave_up.value.headers["retry-after"] == "1"
