"""`AsyncClient` and `Client`: the same methods, awaited or not (calls.py builds every request
and reads every answer for both)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator, Mapping
from importlib.metadata import version
from types import TracebackType
from typing import Any, Self

import httpx

from . import calls
from .calls import Call, R, Retry
from .errors import TransportFailure
from .models import ItemCreate, ItemEventPage, ItemPage, ItemRead, ItemUpdate

DISTRIBUTION = "{{ cookiecutter.project_slug }}-client"
USER_AGENT = f"{DISTRIBUTION}/{version(DISTRIBUTION)}"
DEFAULT_TIMEOUT = 5.0
DEFAULT_PAGE_SIZE = 20
DEFAULT_RETRY = Retry()

Token = str | Callable[[], str]


class BearerToken(httpx.Auth):
    """`Authorization: Bearer <token>`; a callable is asked on every request (so it may cache
    and refresh its token)."""

    def __init__(self, token: Token) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.token() if callable(self.token) else self.token
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


def _options(
    base_url: str,
    token: Token | None,
    timeout: float | httpx.Timeout,
    headers: Mapping[str, str] | None,
) -> dict[str, Any]:
    return {
        "base_url": base_url,
        "auth": None if token is None else BearerToken(token),
        "timeout": timeout,
        "headers": {"User-Agent": USER_AGENT, **(headers or {})},
        "follow_redirects": False,
    }


class AsyncClient:
    """The API, awaited. Use as `async with AsyncClient(url) as api:` (or call `aclose()`)."""

    def __init__(
        self,
        base_url: str,
        *,
        token: Token | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: Retry = DEFAULT_RETRY,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.retry = retry
        self._http = httpx.AsyncClient(
            **_options(base_url, token, timeout, headers), transport=transport
        )

    async def create_item(self, data: ItemCreate | Mapping[str, Any]) -> ItemRead:
        return await self._send(calls.create_item(data))

    async def get_item(self, item_id: int) -> ItemRead:
        return await self._send(calls.get_item(item_id))

    async def list_items(self, *, limit: int = DEFAULT_PAGE_SIZE, offset: int = 0) -> ItemPage:
        return await self._send(calls.list_items(limit, offset))

    async def update_item(
        self,
        item_id: int,
        changes: ItemUpdate | Mapping[str, Any],
        *,
        if_match: int | None = None,
    ) -> ItemRead:
        call = calls.update_item(item_id, changes, if_match)
        return await self._send(call)

    async def delete_item(self, item_id: int, *, if_match: int | None = None) -> None:
        await self._send(calls.delete_item(item_id, if_match))

    async def list_item_events(
        self, item_id: int, *, limit: int = DEFAULT_PAGE_SIZE, offset: int = 0
    ) -> ItemEventPage:
        call = calls.list_item_events(item_id, limit, offset)
        return await self._send(call)

    async def _send(self, call: Call[R]) -> R:
        attempt = 1
        while True:
            try:
                response = await self._http.request(call.method, call.path, **call.send_args())
            except httpx.TransportError as error:
                wait = self.retry.after_failure(attempt, call.method, error)
                if wait is None:
                    raise TransportFailure(f"{call.method} {call.path}: {error!r}") from error
            else:
                wait = self.retry.after_answer(attempt, response)
                if wait is None:
                    return call.parse(response)
            await asyncio.sleep(wait)
            attempt += 1

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class Client:
    """The API, blocking. Use as `with Client(url) as api:` (or call `close()`)."""

    def __init__(
        self,
        base_url: str,
        *,
        token: Token | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: Retry = DEFAULT_RETRY,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.retry = retry
        self._http = httpx.Client(
            **_options(base_url, token, timeout, headers), transport=transport
        )

    def create_item(self, data: ItemCreate | Mapping[str, Any]) -> ItemRead:
        return self._send(calls.create_item(data))

    def get_item(self, item_id: int) -> ItemRead:
        return self._send(calls.get_item(item_id))

    def list_items(self, *, limit: int = DEFAULT_PAGE_SIZE, offset: int = 0) -> ItemPage:
        return self._send(calls.list_items(limit, offset))

    def update_item(
        self,
        item_id: int,
        changes: ItemUpdate | Mapping[str, Any],
        *,
        if_match: int | None = None,
    ) -> ItemRead:
        return self._send(calls.update_item(item_id, changes, if_match))

    def delete_item(self, item_id: int, *, if_match: int | None = None) -> None:
        self._send(calls.delete_item(item_id, if_match))

    def list_item_events(
        self, item_id: int, *, limit: int = DEFAULT_PAGE_SIZE, offset: int = 0
    ) -> ItemEventPage:
        return self._send(calls.list_item_events(item_id, limit, offset))

    def _send(self, call: Call[R]) -> R:
        attempt = 1
        while True:
            try:
                response = self._http.request(call.method, call.path, **call.send_args())
            except httpx.TransportError as error:
                wait = self.retry.after_failure(attempt, call.method, error)
                if wait is None:
                    raise TransportFailure(f"{call.method} {call.path}: {error!r}") from error
            else:
                wait = self.retry.after_answer(attempt, response)
                if wait is None:
                    return call.parse(response)
            time.sleep(wait)
            attempt += 1

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
