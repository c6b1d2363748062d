"""LeanRoute answers exactly as FastAPI's own handler does, and steps aside when it cannot."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, BackgroundTasks, FastAPI

from app.database import Database, get_database
from app.routing import LeanRoute, include
from tests.test_items import ITEM

JSON = {"content-type": "application/json"}
RAW_ITEM = b'{"name": "x", "price": 1}'

REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/", {}),
    ("GET", "/health", {}),
    ("GET", "/health/ready", {}),
    ("GET", "/items/{id}", {}),
    ("GET", "/items/0", {}),
    ("GET", "/items/-5", {}),
    ("GET", "/items/abc", {}),
    ("GET", "/items/1.5", {}),
    ("GET", "/items/9223372036854775808", {}),
    ("GET", "/items/999999999", {}),
    ("GET", "/items?limit=2", {}),
    ("GET", "/items?limit=2&offset=1&unknown=x", {}),
    ("GET", "/items?limit=2&limit=3", {}),
    ("GET", "/items?limit=0", {}),
    ("GET", "/items?limit=abc&offset=-1", {}),
    ("GET", "/items?limit=101&offset=1000001", {}),
    ("GET", "/items?limit=", {}),
    ("POST", "/items", {"json": ITEM}),
    ("POST", "/items", {"json": {**ITEM, "price": "12.50", "description": None}}),
    ("POST", "/items", {"json": {"name": ""}}),
    ("POST", "/items", {"json": {**ITEM, "extra": 1}}),
    ("POST", "/items", {"json": {**ITEM, "price": "1e3"}}),
    ("POST", "/items", {"json": {**ITEM, "price": 1.234}}),
    ("POST", "/items", {"json": {**ITEM, "name": "a\x00b"}}),
    ("POST", "/items", {"json": []}),
    ("POST", "/items", {"json": "text"}),
    ("POST", "/items", {"content": b'{"name": ', "headers": JSON}),
    ("POST", "/items", {"content": b"\xff\xfe{}", "headers": JSON}),
    ("POST", "/items", {"content": b"", "headers": JSON}),
    ("POST", "/items", {"content": RAW_ITEM}),
    *(
        ("POST", "/items", {"content": RAW_ITEM, "headers": {"content-type": t}})
        for t in (
            "text/plain",
            "application/merge-patch+json",
            "Application/JSON; charset=utf-8",
            "application",
        )
    ),
]  # fmt: skip


def lean_routes(app: FastAPI) -> list[LeanRoute]:
    return [route for route in app.routes if isinstance(route, LeanRoute)]


@contextmanager
def fastapi_handlers(app: FastAPI) -> Iterator[None]:
    """Serve every LeanRoute with the handler FastAPI built for it, for the duration."""
    routes = lean_routes(app)
    lean = [route.app for route in routes]
    for route in routes:
        route.app = route.fastapi_app
    try:
        yield
    finally:
        for route, handler in zip(routes, lean, strict=True):
            route.app = handler


def comparable(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    """Status, headers and body, without what differs between two requests by design."""
    varying = ("x-request-id", "content-length")
    headers = {k: v for k, v in response.headers.items() if k not in varying}
    body = response.json()
    for record in [body, *body.get("items", [])] if isinstance(body, dict) else []:
        record.pop("id", None)
        record.pop("created_at", None)
        record.get("error", {}).pop("request_id", None)
    return response.status_code, headers, body


def test_the_services_routes_are_all_lean(app: FastAPI) -> None:
    routes = lean_routes(app)
    assert {route.path for route in routes} == {
        "/", "/health", "/health/ready", "/items", "/items/{item_id}", "/items/{item_id}/events"
    }  # fmt: skip
    # DELETE answers 204 with no body, so it has no response model: FastAPI's handler serves it.
    handled_by_fastapi = [
        (route.methods, route.path) for route in routes if route.app != route.handle_lean
    ]
    assert handled_by_fastapi == [({"DELETE"}, "/items/{item_id}")]


@pytest.mark.parametrize(("method", "url", "options"), REQUESTS)
async def test_lean_answers_as_fastapi_does(
    app: FastAPI, client: httpx.AsyncClient, method: str, url: str, options: dict[str, Any]
) -> None:
    created = await client.post("/items", json=ITEM)
    url = url.format(id=created.json()["id"])

    lean = await client.request(method, url, **options)
    with fastapi_handlers(app):
        stock = await client.request(method, url, **options)

    assert comparable(lean) == comparable(stock)
    assert lean.status_code != 500


def test_routes_lean_needs_more_than_the_list_keep_fastapis_handler() -> None:
    async def with_background_tasks(tasks: BackgroundTasks) -> dict[str, str]:
        return {}

    def synchronous() -> dict[str, str]:
        return {}

    async def no_response_model():  # type: ignore[no-untyped-def]
        return {}

    async def lean() -> dict[str, str]:
        return {}

    route = LeanRoute("/x", lean)
    assert route.app == route.handle_lean
    for endpoint in (with_background_tasks, synchronous, no_response_model):
        route = LeanRoute("/x", endpoint)
        assert route.app is route.fastapi_app, endpoint.__name__


@pytest.mark.parametrize("asynchronous", [True, False], ids=["lean", "fastapi"])
async def test_dependency_overrides_apply(
    app: FastAPI, client: httpx.AsyncClient, db: Database, asynchronous: bool
) -> None:
    # An async override of the Request (or of nothing) is called by LeanRoute; a synchronous
    # one must run in FastAPI's thread pool, so FastAPI's handler serves the request.
    calls = []

    async def async_override() -> Database:
        calls.append("async")
        return db

    def sync_override() -> Database:
        calls.append("sync")
        return db

    app.dependency_overrides[get_database] = async_override if asynchronous else sync_override
    response = await client.get("/health/ready")

    assert response.status_code == 200, response.text
    assert calls == ["async" if asynchronous else "sync"]


def test_include_refuses_a_router_of_plain_routes() -> None:
    router = APIRouter()

    @router.get("/plain")
    async def plain() -> dict[str, str]:
        return {}

    with pytest.raises(TypeError, match="route_class=LeanRoute"):
        include(FastAPI(), router)
