"""LeanRoute: FastAPI routes answered by one lean coroutine instead of FastAPI's request handler.

FastAPI's handler is written for every feature it has (two exit stacks, a Response object, a
general dependency solver, streaming, forms, telemetry) and costs about 100 us per request, more
than the endpoint and its SQL together (bench/README.md). A LeanRoute keeps everything declared
(OpenAPI, and validation by FastAPI's own functions with its error shapes: parameters, the JSON
body, the response model) and serves the request in one coroutine when the endpoint uses only:

* path, query, header and cookie parameters, one JSON (not form) body, the `Request`;
* dependencies that are `async def` functions of nothing or of the `Request` alone;
* a response model (a returned `Response` is sent as it is).

Any other route, or a dependency override that is not such a function, keeps FastAPI's handler:
a new endpoint works either way, and only gets faster when it stays within the list.

The lean path calls private FastAPI helpers, which may change in any release. So `include()`
first checks, once per process, that they are there and answer a few probe requests exactly as
FastAPI's handler does; if not (or with `FAST_PATHS=false`) it logs one warning and includes the
routers with FastAPI's own `include_router`, where FastAPI's handler serves every request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from importlib.metadata import version
from inspect import iscoroutinefunction
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError, ResponseValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from pydantic_core import PydanticUndefined as Undefined
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.fast_paths import StartupCheck, run_async

# FastAPI's internals the lean path calls. Imported defensively: a release that moves one
# must not break the import of the service, only turn the fast path off (fast_path_problem).
try:
    from fastapi._compat import ModelField, field_annotation_is_sequence
    from fastapi.datastructures import DefaultPlaceholder
    from fastapi.dependencies.models import Dependant
    from fastapi.dependencies.utils import (
        _get_param_model,
        _validate_value_with_model_field,
        get_dependant,
        request_body_to_args,
        request_params_to_args,
    )
    from fastapi.params import Form
    from fastapi.utils import is_body_allowed_for_status_code

    MISSING_INTERNAL: str | None = None
except ImportError as error:  # the message names the helper and the module
    MISSING_INTERNAL = str(error)

logger = logging.getLogger(__name__)

# A dependency LeanRoute calls itself: the function, and the name of its Request parameter.
AsyncCall = Callable[..., Awaitable[Any]]
Dependency = tuple[AsyncCall, str | None]


def plain_dependency(dependant: Dependant) -> bool:
    """An `async def` dependency of nothing or of the Request, with none of its own."""
    return (
        iscoroutinefunction(dependant.call)
        and dependant.concurrency is None
        and not dependant.dependencies
        and not (
            dependant.path_params
            or dependant.query_params
            or dependant.header_params
            or dependant.cookie_params
            or dependant.body_params
        )
        and not special_parameters(dependant)
    )


def special_parameters(dependant: Dependant) -> bool:
    return any(
        (
            dependant.websocket_param_name,
            dependant.http_connection_param_name,
            dependant.response_param_name,
            dependant.background_tasks_param_name,
            dependant.security_scopes_param_name,
            dependant.own_oauth_scopes,
        )
    )


class Params:
    """Reads one kind of parameter (path, query, ...) the way FastAPI does.

    FastAPI inspects each parameter's annotation again on every request; for plain scalar
    parameters (by far the most common) that is done here once, and each value goes straight to
    FastAPI's own validation. Lists, parameter models and aliases take FastAPI's general path.
    """

    def __init__(self, fields: list[ModelField], *, general: bool = False) -> None:
        self.fields = fields
        self.scalars: list[tuple[ModelField, str, tuple[str, str]]] | None = None
        if not general and all(scalar(field) for field in fields):
            self.scalars = [
                (field, field.alias, (field.field_info.in_.value, field.alias))  # type: ignore[attr-defined]
                for field in fields
            ]

    def read(self, received: Mapping[str, Any], values: dict[str, Any], errors: list[Any]) -> None:
        if self.scalars is None:
            found, invalid = request_params_to_args(self.fields, received)
            values.update(found)
            errors.extend(invalid)
            return
        for field, alias, loc in self.scalars:
            value = received.get(alias)
            value, invalid = _validate_value_with_model_field(
                field=field, value=Undefined if value is None else value, values=values, loc=loc
            )
            if invalid:
                errors.extend(invalid)
            else:
                values[field.name] = value


def scalar(field: ModelField) -> bool:
    return (
        field.field_info.validation_alias is None
        and _get_param_model(field) is None
        and not field_annotation_is_sequence(field.field_info.annotation)
    )


def include(app: FastAPI, *routers: APIRouter, fast_paths: bool = True) -> None:
    """Serve the routers' routes directly on `app`, as `app.include_router` would.

    `include_router` puts a lazily matched layer in front of each router, which costs about
    10 us a request (bench/README.md). Each route is instead built again for `app`, with it as
    the provider of dependency overrides, so `app.dependency_overrides` apply as they should.
    Without `fast_paths`, or when the installed FastAPI fails the check, this is
    `app.include_router` itself: FastAPI's public path, and its handler, serve every request.
    """
    for router in routers:
        for route in router.routes:
            if not isinstance(route, LeanRoute):
                raise TypeError(f"{route!r}: declare its router with route_class=LeanRoute")
    if not fast_paths or fast_path_problem() is not None:
        for router in routers:
            app.include_router(router)
        return
    served: list[BaseRoute] = []
    for router in routers:
        for route in router.routes:
            lean = cast(LeanRoute, route).for_app(app)
            if lean.lean_app is not None:
                lean.app = lean.lean_app
            if not lean.param_convertors:  # a fixed path, matched as it is written
                lean.fixed_path = lean.path
            served.append(lean)
    # The app's own routes (FastAPI's /openapi.json and /docs) come first, so the router tries
    # them on every request; after the service's routes they still answer their requests
    # unless a route of the service matches one of them, which keeps them first.
    earlier = list(app.router.routes)
    if all(unshadowed(route, served) for route in earlier):
        app.router.routes[:] = [*served, *earlier]
    else:
        app.router.routes[:] = [*earlier, *served]


def unshadowed(route: BaseRoute, routes: list[BaseRoute]) -> bool:
    """Is `route` a fixed-path route whose requests none of `routes` matches?"""
    path, methods = getattr(route, "path", None), getattr(route, "methods", None)
    if not isinstance(route, Route) or route.param_convertors or not path or not methods:
        return False
    scopes = [{"type": "http", "path": path, "root_path": "", "method": m} for m in methods]
    return all(other.matches(scope)[0] is Match.NONE for other in routes for scope in scopes)


class LeanRoute(APIRoute):
    """An APIRoute that can also answer with `handle_lean`; `include()` decides which serves."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        super().__init__(path, endpoint, **options)
        self.options = options
        self.fastapi_app = self.app
        # The lean handler, when this route can have one; FastAPI's handler serves until
        # include() has checked the internals it relies on.
        self.lean_app: ASGIApp | None = None
        self.unprepared: str | None = MISSING_INTERNAL
        if MISSING_INTERNAL is None:
            try:
                if self.lean():
                    self.prepare()
                    self.lean_app = self.handle_lean
            except Exception as error:  # an internal changed shape: keep FastAPI's handler
                self.unprepared = f"{type(error).__name__}: {error}"

    def prepare(self) -> None:
        self.overrides: dict[Callable[..., Any], Dependency | None] = {}
        self.path_params = Params(self.dependant.path_params)
        self.query_params = Params(self.dependant.query_params)
        # Header names are matched with FastAPI's underscore conversion: its general path.
        self.header_params = Params(self.dependant.header_params, general=True)
        self.cookie_params = Params(self.dependant.cookie_params)

    # Set by include() on a route of a fixed path (no parameters) served directly on the app.
    fixed_path: str | None = None

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """APIRoute's match; a fixed path that differs from the request's is no match at once.

        The router tries every route in order until one matches, and APIRoute's `matches`
        costs about as much as a regular expression and two dictionary lookups per route.
        """
        fixed = self.fixed_path
        if fixed is not None and scope["path"] != fixed and not scope.get("root_path"):
            return Match.NONE, {}
        return super().matches(scope)

    def for_app(self, app: FastAPI) -> LeanRoute:
        options = {**self.options, "dependency_overrides_provider": app}
        return type(self)(self.path, self.endpoint, **options)

    def lean(self) -> bool:
        dependant = self.dependant
        # Features a FastAPI release may not have yet count as unused.
        return (
            iscoroutinefunction(dependant.call)
            and self.response_field is not None
            and isinstance(self.response_class, DefaultPlaceholder)
            and getattr(self, "max_body_size", None) is None
            and getattr(self, "stream_item_field", None) is None
            and not getattr(self, "is_json_stream", False)
            and not (self.body_field and isinstance(self.body_field.field_info, Form))
            and not special_parameters(dependant)
            and all(plain_dependency(dep) for dep in dependant.dependencies)
        )

    def dependency(self, dependant: Dependant) -> Dependency | None:
        """What to call for `dependant` (its override, if any), or None if FastAPI must solve it."""
        call = cast(AsyncCall, dependant.call)  # lean(): a coroutine function
        overrides = getattr(self.dependency_overrides_provider, "dependency_overrides", {})
        replacement: AsyncCall = overrides.get(call, call)
        if replacement is call:
            return replacement, dependant.request_param_name
        if replacement not in self.overrides:
            replaced = get_dependant(path=self.path_format, call=replacement)
            plain = plain_dependency(replaced)
            self.overrides[replacement] = (
                (replacement, replaced.request_param_name) if plain else None
            )
        return self.overrides[replacement]

    async def handle_lean(self, scope: Scope, receive: Receive, send: Send) -> None:
        dependant = self.dependant
        dependencies = [self.dependency(dep) for dep in dependant.dependencies]
        if None in dependencies:
            await self.fastapi_app(scope, receive, send)
            return

        request = Request(scope, receive, send)
        body = await self.json_body(request) if self.body_field else Undefined

        # In FastAPI's order: dependencies, parameters, then the body.
        values: dict[str, Any] = {}
        solved: dict[Callable[..., Any], Any] = {}
        for dep, (call, request_param) in zip(dependant.dependencies, dependencies, strict=True):  # type: ignore[misc]
            if dep.use_cache and call in solved:
                value = solved[call]
            else:
                value = await (call(**{request_param: request}) if request_param else call())
                solved[call] = value
            if dep.name is not None:
                values[dep.name] = value
        errors: list[Any] = []
        if dependant.path_params:
            self.path_params.read(scope["path_params"], values, errors)
        if dependant.query_params:
            self.query_params.read(request.query_params, values, errors)
        if dependant.header_params:
            self.header_params.read(request.headers, values, errors)
        if dependant.cookie_params:
            self.cookie_params.read(request.cookies, values, errors)
        if dependant.body_params:
            body_values, body_errors = await request_body_to_args(
                dependant.body_params, body, self._embed_body_fields
            )
            values.update(body_values)
            errors.extend(body_errors)
        if errors:
            raise RequestValidationError(errors, body=None if body is Undefined else body)
        if dependant.request_param_name:
            values[dependant.request_param_name] = request

        result = await dependant.call(**values)  # type: ignore[misc]
        if isinstance(result, Response):
            await result(scope, receive, send)
            return
        await self.send_model(result, send)

    async def json_body(self, request: Request) -> Any:
        """The body as FastAPI reads it: parsed if the content type says JSON, else raw bytes."""
        try:
            raw = await request.body()
            if not raw:
                return Undefined
            content_type = request.headers.get("content-type")
            if not content_type:
                # FastAPI's default (strict) only parses bodies that say they are JSON.
                return raw if self.strict_content_type else json.loads(raw)
            media_type = content_type.partition(";")[0].strip().lower()
            maintype, _, subtype = media_type.partition("/")
            if maintype == "application" and (subtype == "json" or subtype.endswith("+json")):
                return json.loads(raw)
            return raw
        except json.JSONDecodeError as error:
            raise RequestValidationError(
                [
                    {
                        "type": "json_invalid",
                        "loc": ("body", error.pos),
                        "msg": "JSON decode error",
                        "input": {},
                        "ctx": {"error": error.msg},
                    }
                ],
                body=error.doc,
            ) from error
        except HTTPException:
            raise
        except Exception as error:
            raise HTTPException(400, "There was an error parsing the body") from error

    async def send_model(self, result: Any, send: Send) -> None:
        """Validate `result` against the response model and send it as JSON (one pydantic pass)."""
        field = cast(ModelField, self.response_field)  # lean() requires one
        value, errors = field.validate(result, {}, loc=("response",))
        if errors:
            raise ResponseValidationError(errors, body=result)
        status = self.status_code or 200
        content = b""
        if is_body_allowed_for_status_code(status):
            content = field.serialize_json(
                value,
                include=self.response_model_include,
                exclude=self.response_model_exclude,
                by_alias=self.response_model_by_alias,
                exclude_unset=self.response_model_exclude_unset,
                exclude_defaults=self.response_model_exclude_defaults,
                exclude_none=self.response_model_exclude_none,
            )
        headers = [
            (b"content-length", str(len(content)).encode()),
            (b"content-type", b"application/json"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


# --- the start-up check: the internals answer a few requests as FastAPI's handler does ----------

CHECK = StartupCheck(
    logger,
    f"routing fast path off, FastAPI {version('fastapi')}'s own handler serves every route: %s",
)


def fast_path_problem() -> str | None:
    """Why LeanRoute cannot serve on the installed FastAPI (None: it can); checked once."""
    return CHECK.problem_of(lambda: MISSING_INTERNAL or run_async(compare_probes))


class ProbeItem(BaseModel):
    name: str = Field(min_length=1)
    size: int = Field(ge=1)


async def probe_path(request: Request) -> str:
    return request.url.path


async def probe_endpoint(
    number: Annotated[int, Path(ge=1)],
    item: ProbeItem,
    path: Annotated[str, Depends(probe_path)],
    limit: Annotated[int, Query(ge=1)] = 5,
    x_tag: Annotated[str, Header()] = "",
) -> dict[str, object]:
    # size < 1 when number <= limit: the response model refuses it, as a bug would.
    return {"name": item.name + path + x_tag, "size": number - limit}


JSON = [(b"content-type", b"application/json")]
PROBES: list[tuple[str, bytes, list[tuple[bytes, bytes]], bytes]] = [
    ("/probe/7", b"limit=2", [*JSON, (b"x-tag", b"t")], b'{"name": "a", "size": 1}'),
    ("/probe/abc", b"limit=x", JSON, b'{"name": "", "size": "x"}'),
    ("/probe/0", b"", JSON, b"[]"),
    ("/probe/7", b"limit=2&limit=3", JSON, b""),
    ("/probe/7", b"", JSON, b'{"name": '),
    ("/probe/7", b"", [(b"content-type", b"text/plain")], b'{"name": "a", "size": 1}'),
    ("/probe/2", b"", JSON, b'{"name": "a", "size": 1}'),
]  # fmt: skip


async def compare_probes() -> str | None:
    app = FastAPI()
    route = LeanRoute("/probe/{number}", probe_endpoint, methods=["POST"], status_code=201)
    route.dependency_overrides_provider = app
    app.router.routes.append(route)
    if route.lean_app is None:
        why = route.unprepared or "LeanRoute.lean() refuses it"
        return f"LeanRoute cannot serve its probe route: {why}"
    for path, query, headers, body in PROBES:
        answers = []
        for handler in (route.lean_app, route.fastapi_app):
            route.app = handler
            answers.append(await probe_answer(app, path, query, headers, body))
        lean, stock = answers
        if lean != stock:
            return f"POST {path}?{query.decode()}: LeanRoute answered {lean}, FastAPI {stock}"
    return None


async def probe_answer(
    app: ASGIApp, path: str, query: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[object, ...]:
    """Status, headers and body sent for one request, or the exception the app let through."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("probe", 80),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    try:
        await app(scope, receive, send)
    except Exception as error:
        return ("raised", type(error).__name__, str(error))
    start = next((m for m in sent if m["type"] == "http.response.start"), {})
    return (
        start.get("status"),
        sorted(start.get("headers", [])),
        b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"),
    )
