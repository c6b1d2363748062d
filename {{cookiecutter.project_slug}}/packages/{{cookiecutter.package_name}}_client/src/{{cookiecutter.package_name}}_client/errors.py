"""Typed errors: one class per status the service answers, each carrying its error shape."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from pydantic import ValidationError

from .models import ErrorDetail, ErrorResponse


class ClientError(Exception):
    """Anything this client raises about a call."""


class TransportFailure(ClientError):
    """No answer: the connection failed or timed out (after the retries it allows)."""


class ApiError(ClientError):
    """The service answered with an error: `status`, and its `{"error": {...}}` body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        request_id: str | None = None,
        details: list[ErrorDetail] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.details = details or []
        self.headers = dict(headers or {})


class BadRequest(ApiError):
    """400: the request could not be read (e.g. not JSON)."""


class Unauthorized(ApiError):
    """401: no valid bearer token."""


class Forbidden(ApiError):
    """403: the token lacks the scope the route needs."""


class NotFound(ApiError):
    """404: no such item (or route)."""


class Conflict(ApiError):
    """409: the request conflicts with stored data or a concurrent change."""


class PreconditionFailed(ApiError):
    """412: If-Match named a version the item no longer has."""


class ValidationFailed(ApiError):
    """422: the input broke a rule; `details` says which field and which rule."""


class TooManyRequests(ApiError):
    """429: slow down (retried, honouring Retry-After)."""


class ServiceUnavailable(ApiError):
    """503: the service or its database is unavailable (retried, honouring Retry-After)."""


class ServerError(ApiError):
    """Any other 5xx."""


BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    422: ValidationFailed,
    429: TooManyRequests,
    503: ServiceUnavailable,
}


def error_from(response: httpx.Response) -> ApiError:
    """The typed error of an error answer; a body not in the service's shape (a load balancer's
    own page, say) still gives one, coded `http_<status>` with the start of that body."""
    kind = BY_STATUS.get(response.status_code)
    if kind is None:
        kind = ServerError if response.status_code >= 500 else ApiError
    try:
        error = ErrorResponse.model_validate_json(response.content).error
    except ValidationError:
        text = response.text.strip()[:200] or response.reason_phrase
        return kind(
            response.status_code, f"http_{response.status_code}", text, headers=response.headers
        )
    return kind(
        response.status_code,
        error.code,
        error.message,
        request_id=error.request_id,
        details=error.details,
        headers=response.headers,
    )
