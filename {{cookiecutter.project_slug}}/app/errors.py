"""Exception handlers: every error leaves the service as the one ErrorResponse JSON shape."""

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match

from app.database import RETRYABLE_SQLSTATES, DatabaseUnavailable, sqlstate
from app.log import request_id_var
from app.metrics import DB_CONNECTION_FAILURES
from app.schemas import Error, ErrorDetail, ErrorResponse

logger = logging.getLogger(__name__)

# Stable machine-readable codes (http.HTTPStatus phrases change between Python versions).
ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_server_error",
    503: "service_unavailable",
}


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    details: list[ErrorDetail] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(
        error=Error(
            code=code or ERROR_CODES.get(status, f"http_{status}"),
            message=message,
            request_id=request_id_var.get(),
            details=details,
        )
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(HTTPException, exc)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names only the first route's methods; list every route on this path.
        headers["Allow"] = ", ".join(allowed_methods(request))
    return error_response(exc.status_code, str(exc.detail), headers=headers)


def allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in leaf_routes(request.app.routes):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


def leaf_routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    for route in routes:
        router = getattr(route, "original_router", route)  # FastAPI wraps included routers
        children = getattr(router, "routes", None)
        if children is None:
            yield route
        else:
            yield from leaf_routes(children)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(RequestValidationError, exc)
    details = [
        ErrorDetail(loc=list(err["loc"]), msg=err["msg"], type=err["type"]) for err in exc.errors()
    ]
    if any(detail.type == "json_invalid" for detail in details):
        return error_response(400, "Request body is not valid JSON.", details=details)
    return error_response(422, "Request validation failed.", details=details)


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    DB_CONNECTION_FAILURES.inc()
    logger.warning("database unavailable: %s", exc.__class__.__name__)
    return error_response(
        503,
        "The database is unavailable; retry later.",
        code="database_unavailable",
        headers={"Retry-After": "1"},
    )


async def database_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(DBAPIError, exc)
    if isinstance(exc, IntegrityError):
        return error_response(409, "The request conflicts with stored data.")
    if sqlstate(exc) in RETRYABLE_SQLSTATES:  # retry_transaction() gave up, or was not used
        return error_response(
            409,
            "The request collided with a concurrent change; retry it.",
            code="concurrent_change",
            headers={"Retry-After": "1"},
        )
    if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
        return await database_unavailable(request, exc)
    logger.error("database error", exc_info=exc)
    return internal_error()


def internal_error() -> JSONResponse:
    return error_response(500, "Internal server error.")


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(DatabaseUnavailable, database_unavailable)
    app.add_exception_handler(PoolTimeoutError, database_unavailable)
    app.add_exception_handler(TimeoutError, database_unavailable)  # asyncpg's command_timeout
    app.add_exception_handler(DBAPIError, database_error)
    # Anything else is caught by RequestContextMiddleware, which still knows the request id.
