"""LeanRoute answers exactly as FastAPI's own handler does, and steps aside when it cannot.

The requests are derived from the app's OpenAPI document, so every route a team adds is
compared too, and none is listed here by hand.
"""

import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, BackgroundTasks, FastAPI
from fastapi.routing import APIRoute

from app import routing
from app.api import health, items
from app.config import Settings
from app.database import Database, get_database
from app.main import create_app
from app.routing import LeanRoute, include
from tests.conftest import {% if cookiecutter.auth == 'jwt' %}AUTH_HEADERS, {% endif %}PROJECT_ROOT, api_client

JSON = {"content-type": "application/json"}
CONTENT_TYPES = ("text/plain", "application/merge-patch+json", "Application/JSON; charset=utf-8")
Case = tuple[str, dict[str, Any]]  # a URL (with {id} for an id the service handed out), options


def openapi() -> dict[str, Any]:
    """The service's OpenAPI document (building it needs no database)."""
    url = "postgresql://openapi@127.0.0.1/openapi"
    settings = Settings(_env_file=None, database_url=url, log_level="WARNING")
    return create_app(settings).openapi()


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def valid(document: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A small value the schema accepts."""
    schema = resolve(document, schema)
    if "default" in schema:
        return schema["default"]
    if "anyOf" in schema:
        return valid(document, schema["anyOf"][0])
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: valid(document, properties[name]) for name in schema.get("required", [])}
    if kind in ("integer", "number"):
        return max(schema.get("minimum", 1), 1)
    if kind == "array":
        return []
    if kind == "boolean":
        return True
    return "x" * max(schema.get("minLength", 1), 1)


def wrong_values(schema: dict[str, Any]) -> list[Any]:
    """Values at and beyond the schema's edges, and of other types."""
    values: list[Any] = [None, [], {}, "text", "a\x00b", ""]
    if "minimum" in schema:
        values.append(schema["minimum"] - 1)
    if "maximum" in schema:
        values.append(schema["maximum"] + 1)
    return [*values, "12.50", "1e3", 1.234, 2**63, -5]


def parameter_cases(parameters: list[dict[str, Any]], path: str) -> list[str]:
    """The path with valid parameters, then each parameter in turn wrong in several ways."""
    valid_path = {p["name"]: "{id}" for p in parameters if p["in"] == "path"}
    cases = [path.format(**valid_path)]
    for parameter in parameters:
        name, schema = parameter["name"], parameter["schema"]
        raw = ["0", "-5", "abc", "1.5", "9223372036854775808", "999999999", ""]
        raw += [str(schema[edge]) for edge in ("minimum", "maximum") if edge in schema]
        if parameter["in"] == "path":
            cases += [path.format(**{**valid_path, name: value}) for value in raw if value]
        elif parameter["in"] == "query":
            base = path.format(**valid_path)
            cases += [f"{base}?{name}={value}" for value in raw]
            cases.append(f"{base}?{name}=2&{name}=3&unknown=x")
    return cases


def body_cases(document: dict[str, Any], operation: dict[str, Any]) -> list[dict[str, Any]]:
    """A valid JSON body, then bodies wrong field by field, as a whole, and as bytes."""
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return [{}]
    schema = resolve(document, content["application/json"]["schema"])
    body = valid(document, schema)
    cases: list[dict[str, Any]] = [{"json": body}, {"json": {**body, "unexpected": 1}}]
    for name, field in schema.get("properties", {}).items():
        cases += [{"json": {**body, name: value}} for value in wrong_values(field)]
        cases.append({"json": {key: v for key, v in body.items() if key != name}})
    raw = httpx.Request("POST", "/", json=body).content
    cases += [{"json": value} for value in ([], "text", None)]
    cases += [{"content": bad, "headers": JSON} for bad in (b'{"a": ', b"\xff\xfe{}", b"")]
    cases.append({"content": raw})
    cases += [{"content": raw, "headers": {"content-type": t}} for t in CONTENT_TYPES]
    return cases


def derived_requests() -> list[Any]:
    """pytest params, one per operation: (method, [(url, options), ...])."""
    document = openapi()
    params = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            urls = parameter_cases(operation.get("parameters", []), path)
            cases = [(url, body) for url in urls for body in body_cases(document, operation)]
            params.append(pytest.param(method.upper(), cases, id=f"{method.upper()} {path}"))
    return params


REQUESTS = derived_requests()


async def handed_out_ids(client: httpx.AsyncClient, document: dict[str, Any]) -> list[int]:
    """Create one of everything the API creates; the ids it answers with."""
    ids = []
    for path, operations in document["paths"].items():
        operation = operations.get("post")
        if operation is None or "{" in path:
            continue
        body = body_cases(document, operation)[0]
        created = (await client.post(path, **body)).json()
        if isinstance(created, dict) and isinstance(created.get("id"), int):
            ids.append(created["id"])
    return ids or [1]


@asynccontextmanager
async def served(
    settings: Settings, db: Database, application: FastAPI | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client on a new app of `settings` (or on `application`, built from them, when the test
    looks into its state) whose requests run on the test's database."""
    application = application or create_app(settings)

    async def rolled_back_database() -> Database:
        return db

    application.dependency_overrides[get_database] = rolled_back_database
    async with (
        application.router.lifespan_context(application),
        api_client(application) as client,
    ):
        yield client


@pytest.fixture
async def stock_client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """The same service with FAST_PATHS=false: FastAPI's and the libraries' public paths."""
    async with served(settings.model_copy(update={"fast_paths": False}), db) as client:
        yield client


@pytest.fixture
def fresh_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the process's check, so the next app checks the (patched) internals again."""
    # Forget the outcome; monkeypatch puts back the process's own afterwards.
    monkeypatch.setattr(routing.CHECK, "done", False)
    monkeypatch.setattr(routing.CHECK, "problem", None)


WRITES = ("PATCH", "PUT", "DELETE")


def comparable(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    """Status, headers and body, without what differs between two requests by design."""
    varying = ("x-request-id", "content-length")
    headers = {k: v for k, v in response.headers.items() if k not in varying}
    try:
        body = response.json()
    except ValueError:
        return response.status_code, headers, response.content
    for record in [body, *body.get("items", [])] if isinstance(body, dict) else []:
        record.pop("id", None)
        record.pop("created_at", None)
        record.get("error", {}).pop("request_id", None)
    return response.status_code, headers, body


async def differences(
    method: str, cases: list[Case], client: httpx.AsyncClient, reference: httpx.AsyncClient
) -> list[str]:
    """Every case `client` answers otherwise than `reference`, or with a 500."""
    found = []
    document = openapi()
    ids = await handed_out_ids(client, document)
    for url, options in cases:
        if method in WRITES and "{id}" in url:
            # A write changes what it targets (a version, a deletion): each server gets a
            # resource of its own, in the same state, so both answers can be the same.
            answer = await client.request(
                method, url.format(id=(await handed_out_ids(client, document))[0]), **options
            )
            expected = await reference.request(
                method, url.format(id=(await handed_out_ids(reference, document))[0]), **options
            )
            url = url.format(id="<fresh>")
        else:
            url = url.format(id=ids[0])
            answer = await client.request(method, url, **options)
            expected = await reference.request(method, url, **options)
        got, want = comparable(answer), comparable(expected)
        if got != want or answer.status_code == 500:
            found.append(f"{method} {url} {options}: {got} != {want}")
    return found


def served_lean(app: FastAPI) -> list[LeanRoute]:
    return [r for r in app.routes if isinstance(r, LeanRoute) and r.app == r.lean_app]


def test_requests_are_derived_from_every_operation() -> None:
    operations = sum(len(operations) for operations in openapi()["paths"].values())
    assert len(REQUESTS) == operations
    assert all(len(param.values[1]) >= 1 for param in REQUESTS)


def test_the_services_routes_are_lean_where_fastapi_allows(app: FastAPI) -> None:
    if not app.state.settings.fast_paths or routing.fast_path_problem() is not None:
        assert served_lean(app) == []
        return
    for router in (health.router, items.router):
        for route in router.routes:
            assert isinstance(route, LeanRoute)
            if route.response_field is None:  # no response model (a 204): FastAPI's handler
                continue
            assert route.lean_app is not None, route.path
    assert {r.path for r in served_lean(app)} >= {r.path for r in items.router.routes}


@pytest.mark.parametrize(("method", "cases"), REQUESTS)
async def test_lean_answers_as_fastapi_does(
    client: httpx.AsyncClient, stock_client: httpx.AsyncClient, method: str, cases: list[Case]
) -> None:
    assert await differences(method, cases, client, stock_client) == []


@contextmanager
def logged(name: str) -> Iterator[list[str]]:
    """The messages `name` logs meanwhile (create_app replaces the root's handlers: caplog's)."""
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


# Tests of the lean path itself, which a FastAPI release that fails the check does not use
# (there, the whole suite passing through FastAPI's handler is the proof).
needs_the_internals = pytest.mark.skipif(
    routing.fast_path_problem() is not None, reason=f"FastAPI: {routing.fast_path_problem()}"
)


@needs_the_internals
@pytest.mark.usefixtures("fresh_check")
async def test_an_internal_that_behaves_otherwise_turns_the_fast_path_off(
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    db: Database,
    stock_client: httpx.AsyncClient,
) -> None:
    # A FastAPI release whose parameter validation no longer reports errors the same way.
    monkeypatch.setattr(routing, "_validate_value_with_model_field", lambda **_: (None, []))

    settings = settings.model_copy(update={"fast_paths": True})  # whatever FAST_PATHS says
    with logged("app.routing") as warnings:
        assert served_lean(create_app(settings)) == []  # the check runs here, once
        async with served(settings, db) as client:
            for method, cases in (param.values for param in REQUESTS):
                assert await differences(method, cases, client, stock_client) == []

    assert len(warnings) == 1, warnings
    assert "routing fast path off" in warnings[0]
    assert "LeanRoute answered" in warnings[0]


def test_a_missing_internal_is_one_warning_not_an_import_error() -> None:
    # A FastAPI release without a helper LeanRoute imports: the service imports, serves
    # through include_router with FastAPI's handler, and says so once.
    script = """
import asyncio, sys, types, httpx, fastapi.dependencies.utils as utils
# FastAPI as a release without the helper would be: its own code keeps working.
hidden = types.ModuleType(utils.__name__)
hidden.__dict__.update({k: v for k, v in vars(utils).items() if k != "_get_param_model"})
sys.modules[utils.__name__] = hidden
from app.config import Settings
from app.main import create_app
from app import routing

async def main():
    app = create_app(Settings(_env_file=None, database_url="postgresql://x@127.0.0.1/x"))
    create_app(Settings(_env_file=None, database_url="postgresql://x@127.0.0.1/x"))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        print((await client.get("/health")).status_code)
{%- if cookiecutter.auth == "jwt" %}
        headers = {"Authorization": sys.argv[1]}
        print((await client.post("/items", json={}, headers=headers)).status_code)
{%- else %}
        print((await client.post("/items", json={})).status_code)
{%- endif %}
    print(routing.MISSING_INTERNAL)

asyncio.run(main())
"""
    env = {**os.environ, "ACCESS_LOG": "false", "FAST_PATHS": "true"}
    result = subprocess.run(
{%- if cookiecutter.auth == "jwt" %}
        [sys.executable, "-c", script, AUTH_HEADERS["Authorization"]],
{%- else %}
        [sys.executable, "-c", script],
{%- endif %}
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout.splitlines()  # the service logs JSON lines to stdout
    warnings = [line for line in output if "routing fast path off" in line]
    assert [line for line in output if line not in warnings][:2] == ["200", "422"]
    assert len(warnings) == 1, result.stdout
    assert "cannot import name" in warnings[0]


def test_fast_paths_off_includes_routers_the_stock_way(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"fast_paths": False}))
    assert served_lean(app) == []
    assert {path for path in app.openapi()["paths"]} == set(openapi()["paths"])


@needs_the_internals
def test_routes_lean_needs_more_than_the_list_keep_fastapis_handler() -> None:
    async def with_background_tasks(tasks: BackgroundTasks) -> dict[str, str]:
        return {}

    def synchronous() -> dict[str, str]:
        return {}

    async def no_response_model():  # type: ignore[no-untyped-def]
        return {}

    async def lean() -> dict[str, str]:
        return {}

    assert LeanRoute("/x", lean).lean_app is not None
    for endpoint in (with_background_tasks, synchronous, no_response_model):
        route = LeanRoute("/x", endpoint)
        assert route.lean_app is None, endpoint.__name__
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


# --- include()'s route order and fixed-path matching ---------------------------------------------


def fast_included(app: FastAPI) -> list[LeanRoute]:
    """The routes include() served on its fast path (lean or not): [] when it included stock."""
    return [r for r in app.routes if isinstance(r, LeanRoute) and r.dependency_overrides_provider]


def test_a_fixed_path_matches_as_apiroute_does(app: FastAPI) -> None:
    routes = fast_included(app)
    if app.state.settings.fast_paths and routing.fast_path_problem() is None:
        assert any(route.fixed_path for route in routes)
    paths = {getattr(r, "path", "/").replace("{item_id}", "1") for r in app.routes}
    paths |= {"", "/health/", "/HEALTH", "/api", "/api/health", "/healthz"}
    for route in routes:
        for path in paths:
            for method in ("GET", "POST", "DELETE"):
                for root_path in ("", "/api"):
                    scope = {"type": "http", "path": path, "root_path": root_path, "method": method}
                    assert route.matches(dict(scope)) == APIRoute.matches(route, dict(scope))


async def test_fastapis_docs_routes_come_after_the_services_and_still_answer(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    paths = [getattr(route, "path", None) for route in app.routes]
    if fast_included(app):
        assert paths.index("/docs") > paths.index("/health")
        assert paths.index("/openapi.json") > paths.index("/items/{item_id}")
    for url in ("/docs", "/openapi.json"):
        assert (await client.get(url)).status_code == 200


@needs_the_internals
async def test_a_route_that_matches_a_docs_path_leaves_the_docs_first() -> None:
    router = APIRouter(route_class=LeanRoute)

    @router.get("/{page}")
    async def page(page: str) -> dict[str, str]:
        return {"page": page}

    app = FastAPI()
    include(app, router)
    assert [getattr(route, "path", None) for route in app.routes][:2] == ["/openapi.json", "/docs"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
        docs, other = await client.get("/docs"), await client.get("/about")
    assert docs.headers["content-type"].startswith("text/html")
    assert other.json() == {"page": "about"}
