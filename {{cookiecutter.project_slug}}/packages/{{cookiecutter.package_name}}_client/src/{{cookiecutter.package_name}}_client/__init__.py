"""Typed client of the {{ cookiecutter.project_name }} API (README.md of this package)."""

from .calls import Retry
from .client import AsyncClient, Client
from .errors import (
    ApiError,
    BadRequest,
    ClientError,
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    ServerError,
    ServiceUnavailable,
    TooManyRequests,
    TransportFailure,
    Unauthorized,
    ValidationFailed,
)
from .models import (
    Error,
    ErrorDetail,
    ErrorResponse,
    ItemCreate,
    ItemEventPage,
    ItemEventRead,
    ItemPage,
    ItemRead,
    ItemUpdate,
)

__all__ = [
    "ApiError",
    "AsyncClient",
    "BadRequest",
    "Client",
    "ClientError",
    "Conflict",
    "Error",
    "ErrorDetail",
    "ErrorResponse",
    "Forbidden",
    "ItemCreate",
    "ItemEventPage",
    "ItemEventRead",
    "ItemPage",
    "ItemRead",
    "ItemUpdate",
    "NotFound",
    "PreconditionFailed",
    "Retry",
    "ServerError",
    "ServiceUnavailable",
    "TooManyRequests",
    "TransportFailure",
    "Unauthorized",
    "ValidationFailed",
]
