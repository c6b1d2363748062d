"""What each endpoint sends and gets back, and when to try again: shared by both clients, which
only differ in how they wait and send."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel

from .errors import error_from
from .models import ItemCreate, ItemEventPage, ItemPage, ItemRead, ItemUpdate

RETRY_STATUSES = frozenset({429, 503})
# Methods a broken connection may repeat: sent twice, they do no more than once.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


R = TypeVar("R")


@dataclass(frozen=True)
class Call(Generic[R]):
    method: str
    path: str
    read: Callable[[bytes], R]  # the success answer's body
    json: Any = None
    params: Mapping[str, int] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def send_args(self) -> dict[str, Any]:
        return {"json": self.json, "params": self.params, "headers": self.headers}

    def parse(self, response: httpx.Response) -> R:
        if response.status_code >= 400:
            raise error_from(response)
        return self.read(response.content)


def no_body(content: bytes) -> None:
    return None


def _body(model: type[BaseModel], data: BaseModel | Mapping[str, Any]) -> Any:
    """Validated here (a bad value raises pydantic's ValidationError before anything is sent),
    then as JSON: only the fields given, so an update leaves the others as they are."""
    checked = data if isinstance(data, model) else model.model_validate(data)
    return checked.model_dump(mode="json", exclude_unset=True)


def _if_match(version: int | None) -> dict[str, str]:
    return {} if version is None else {"If-Match": f'"{version}"'}


def create_item(data: ItemCreate | Mapping[str, Any]) -> Call[ItemRead]:
    return Call("POST", "/items", ItemRead.model_validate_json, json=_body(ItemCreate, data))


def get_item(item_id: int) -> Call[ItemRead]:
    return Call("GET", f"/items/{item_id}", ItemRead.model_validate_json)


def list_items(limit: int, offset: int) -> Call[ItemPage]:
    page = {"limit": limit, "offset": offset}
    return Call("GET", "/items", ItemPage.model_validate_json, params=page)


def update_item(
    item_id: int, changes: ItemUpdate | Mapping[str, Any], if_match: int | None
) -> Call[ItemRead]:
    return Call(
        "PATCH",
        f"/items/{item_id}",
        ItemRead.model_validate_json,
        json=_body(ItemUpdate, changes),
        headers=_if_match(if_match),
    )


def delete_item(item_id: int, if_match: int | None) -> Call[None]:
    return Call("DELETE", f"/items/{item_id}", no_body, headers=_if_match(if_match))


def list_item_events(item_id: int, limit: int, offset: int) -> Call[ItemEventPage]:
    page = {"limit": limit, "offset": offset}
    return Call("GET", f"/items/{item_id}/events", ItemEventPage.model_validate_json, params=page)


@dataclass(frozen=True)
class Retry:
    """attempts: tries in all; backoff: the first wait (doubling) when the answer names none;
    max_wait: the longest wait honoured, a longer Retry-After raises at once."""

    attempts: int = 3
    backoff: float = 0.25
    max_wait: float = 10.0

    def after_answer(self, attempt: int, response: httpx.Response) -> float | None:
        """Seconds to wait before trying again, or None to return (or raise) this answer."""
        if response.status_code not in RETRY_STATUSES or attempt >= self.attempts:
            return None
        wait = retry_after(response.headers.get("Retry-After"))
        if wait is None:
            wait = self.backoff_wait(attempt)
        return wait if wait <= self.max_wait else None

    def after_failure(self, attempt: int, method: str, error: httpx.TransportError) -> float | None:
        """Seconds to wait before trying again after no answer, or None to give up."""
        never_sent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
        if attempt >= self.attempts or not (never_sent or method in IDEMPOTENT):
            return None
        return min(self.backoff_wait(attempt), self.max_wait)

    def backoff_wait(self, attempt: int) -> float:
        return self.backoff * 2.0 ** (attempt - 1)


def retry_after(value: str | None) -> float | None:
    """RFC 9110's Retry-After: delay-seconds or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
