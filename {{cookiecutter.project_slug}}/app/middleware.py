"""Pure-ASGI middleware: request id, security headers, access log, and the request body limit."""

import logging
import os
import re
import time

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_response, internal_error
from app.log import log_access, request_id_var
from app.metrics import RequestMetrics

logger = logging.getLogger(__name__)

# A caller-supplied id is echoed into logs and headers, so only a safe shape is accepted.
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")

SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
)


def incoming_request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if REQUEST_ID_RE.fullmatch(candidate):
                return candidate
            break
    return os.urandom(16).hex()  # as random as uuid4().hex, without building a UUID


class RequestContextMiddleware:
    """The request id, the security headers, the access log and (fast path) the HTTP metrics."""

    def __init__(
        self, app: ASGIApp, *, access_log: bool = True, metrics: RequestMetrics | None = None
    ) -> None:
        self.app = app
        self.access_log = access_log
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = incoming_request_id(scope)
        token = request_id_var.set(request_id)
        in_progress = self.metrics.started(scope) if self.metrics is not None else None
        started = time.perf_counter()
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", request_id.encode()))
                headers.extend(SECURITY_HEADERS)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            logger.exception("unhandled error")
            if status:  # the response has begun: nothing sensible can be sent any more
                raise
            await internal_error()(scope, receive, send_with_headers)
        finally:
            seconds = time.perf_counter() - started
            if in_progress is not None:
                self.metrics.finished(scope, in_progress, status, seconds)  # type: ignore[union-attr]
            if self.access_log:
{%- if cookiecutter.auth == "jwt" %}
                user = scope.get("user")  # app/auth.py's Principal, once the token verified
                subject = getattr(user, "subject", None)
                log_access(request_id, scope["method"], scope["path"], status, seconds, subject)
{%- else %}
                log_access(request_id, scope["method"], scope["path"], status, seconds)
{%- endif %}
            request_id_var.reset(token)


class BodySizeLimitMiddleware:
    """Refuses request bodies over `max_bytes` with 413 before they are read whole.

    A declared Content-Length over the limit is answered at once, without reading the body; a
    chunked body is counted as it arrives and cut off as soon as it passes the limit.
    """

    BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in self.BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None:
            if int(declared) > self.max_bytes:  # the server has already checked it is a number
                await self.too_large()(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return

        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self.message)
            return message

        await self.app(scope, receive_within_limit, send)

    @property
    def message(self) -> str:
        return f"Request body larger than {self.max_bytes} bytes."

    def too_large(self) -> ASGIApp:
        return error_response(413, self.message)
