"""The client on its own, over httpx's MockTransport: requests as the API documents them, every
error status as its typed exception, retries and their waits, timeouts, tokens. The service's
tests/test_client.py runs it against the real app."""

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

import httpx
import pydantic
import pytest

from {{ cookiecutter.package_name }}_client import (
    ApiError,
    AsyncClient,
    BadRequest,
    Client,
    Conflict,
    Forbidden,
    ItemUpdate,
    NotFound,
    PreconditionFailed,
    Retry,
    ServerError,
    ServiceUnavailable,
    TransportFailure,
    Unauthorized,
    ValidationFailed,
)
from {{ cookiecutter.package_name }}_client.calls import retry_after

ITEM = {
    "id": 7,
    "name": "Widget",
    "description": None,
    "price": "9.99",
    "created_at": "2026-01-02T03:04:05Z",
    "version": 3,
}
Handler = Callable[[httpx.Request], httpx.Response]


def error(status: int, code: str, retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after else {}
    body = {"error": {"code": code, "message": f"{code} happened", "request_id": "r-1"}}
    return httpx.Response(status, json=body, headers=headers)


class Recorder:
    """Answers from a script, one per request, and keeps the requests."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """The client's sleeps, recorded instead of slept."""
    slept: list[float] = []

    async def fake_async_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(time, "sleep", slept.append)
    monkeypatch.setattr(asyncio, "sleep", fake_async_sleep)
    yield slept


def sync_client(handler: Handler, **options: object) -> Client:
    return Client("http://api", transport=httpx.MockTransport(handler), **options)  # type: ignore[arg-type]


def test_requests_are_the_documented_ones() -> None:
    recorder = Recorder(
        httpx.Response(201, json=ITEM),
        httpx.Response(200, json={**ITEM, "version": 4}),
        httpx.Response(204),
        httpx.Response(200, json={"items": [ITEM], "limit": 5, "offset": 10}),
    )
    with sync_client(recorder, token="t0k", headers={"X-Team": "billing"}) as api:
        created = api.create_item({"name": "Widget", "price": Decimal("9.99")})
        api.update_item(7, ItemUpdate(description=None), if_match=3)
        assert api.delete_item(7) is None
        page = api.list_items(limit=5, offset=10)
    assert created.price == Decimal("9.99") and page.items[0].id == 7
    create, update, delete, listing = recorder.requests
    assert (create.method, create.url.path) == ("POST", "/items")
    assert json.loads(create.content) == {"name": "Widget", "price": "9.99"}
    assert json.loads(update.content) == {"description": None}  # only what was given
    assert update.headers["If-Match"] == '"3"' and "If-Match" not in delete.headers
    assert dict(listing.url.params) == {"limit": "5", "offset": "10"}
    assert create.headers["Authorization"] == "Bearer t0k"
    assert create.headers["X-Team"] == "billing"
    assert create.headers["User-Agent"].startswith("{{ cookiecutter.project_slug }}-client/")


def test_a_token_callable_is_asked_on_every_request() -> None:
    tokens = iter(["first", "second"])
    recorder = Recorder(httpx.Response(200, json=ITEM), httpx.Response(200, json=ITEM))
    with sync_client(recorder, token=lambda: next(tokens)) as api:
        api.get_item(7)
        api.get_item(7)
    assert [r.headers["Authorization"] for r in recorder.requests] == [
        "Bearer first",
        "Bearer second",
    ]


def test_invalid_input_is_refused_before_sending() -> None:
    recorder = Recorder()
    with sync_client(recorder) as api:
        for bad in ({"name": "", "price": "1"}, {"name": "x", "price": "1.234"}, {"name": "x"}):
            with pytest.raises(pydantic.ValidationError):
                api.create_item(bad)
        with pytest.raises(pydantic.ValidationError):
            api.update_item(7, {})
        with pytest.raises(pydantic.ValidationError):
            api.update_item(7, {"price": None})
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "bad_request", BadRequest),
        (401, "unauthorized", Unauthorized),
        (403, "forbidden", Forbidden),
        (404, "not_found", NotFound),
        (409, "conflict", Conflict),
        (412, "precondition_failed", PreconditionFailed),
        (422, "validation_error", ValidationFailed),
        (500, "internal_server_error", ServerError),
        (418, "http_418", ApiError),
    ],
)
def test_each_error_status_is_its_typed_exception(status: int, code: str, kind: type) -> None:
    with sync_client(Recorder(error(status, code))) as api, pytest.raises(kind) as raised:
        api.get_item(7)
    assert type(raised.value) is kind
    assert (raised.value.status, raised.value.code) == (status, code)
    assert (raised.value.message, raised.value.request_id) == (f"{code} happened", "r-1")


def test_an_answer_not_in_the_error_shape_still_raises_typed() -> None:
    page = httpx.Response(502, text="<html>502 Bad Gateway</html>")
    with sync_client(Recorder(page)) as api, pytest.raises(ServerError) as raised:
        api.get_item(7)
    assert (raised.value.code, raised.value.message) == ("http_502", "<html>502 Bad Gateway</html>")


def test_validation_details_are_kept() -> None:
    body = {
        "error": {
            "code": "validation_error",
            "message": "Request validation failed.",
            "details": [{"loc": ["query", "limit"], "msg": "too big", "type": "less_than_equal"}],
        }
    }
    with (
        sync_client(Recorder(httpx.Response(422, json=body))) as api,
        pytest.raises(ValidationFailed) as raised,
    ):
        api.list_items(limit=1000)
    assert raised.value.details[0].loc == ["query", "limit"]


def test_503_and_429_are_retried_after_their_retry_after(waits: list[float]) -> None:
    recorder = Recorder(
        error(503, "database_unavailable", "2"),
        error(429, "too_many_requests", "1"),
        httpx.Response(201, json=ITEM),
    )
    with sync_client(recorder) as api:
        assert api.create_item({"name": "Widget", "price": 1}).id == 7
    assert waits == [2.0, 1.0] and len(recorder.requests) == 3


def test_without_retry_after_the_backoff_doubles(waits: list[float]) -> None:
    recorder = Recorder(
        error(503, "x"), error(503, "x"), error(503, "x"), httpx.Response(200, json=ITEM)
    )
    with sync_client(recorder, retry=Retry(attempts=4, backoff=0.5)) as api:
        api.get_item(7)
    assert waits == [0.5, 1.0, 2.0]


def test_the_last_503_is_raised_when_the_attempts_run_out(waits: list[float]) -> None:
    recorder = Recorder(*(error(503, "database_unavailable", "1") for _ in range(3)))
    with sync_client(recorder) as api, pytest.raises(ServiceUnavailable) as raised:
        api.get_item(7)
    assert len(recorder.requests) == 3 and waits == [1.0, 1.0]
    assert raised.value.headers["retry-after"] == "1"


def test_a_retry_after_beyond_max_wait_is_not_waited_for(waits: list[float]) -> None:
    recorder = Recorder(error(503, "maintenance", "3600"))
    with sync_client(recorder, retry=Retry(max_wait=10)) as api, pytest.raises(ServiceUnavailable):
        api.get_item(7)
    assert waits == [] and len(recorder.requests) == 1


def test_other_errors_are_not_retried(waits: list[float]) -> None:
    recorder = Recorder(error(500, "internal_server_error"))
    with sync_client(recorder) as api, pytest.raises(ServerError):
        api.get_item(7)
    assert waits == [] and len(recorder.requests) == 1


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("5") == 5.0
    assert retry_after(None) is None and retry_after("soon") is None
    in_30_s = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 27 <= (retry_after(in_30_s) or 0) <= 30
    long_ago = format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)
    assert retry_after(long_ago) == 0.0


def test_a_connection_never_opened_is_retried_for_any_method(waits: list[float]) -> None:
    refused = httpx.ConnectError("refused")
    recorder = Recorder(refused, httpx.Response(201, json=ITEM))
    with sync_client(recorder) as api:
        assert api.create_item({"name": "Widget", "price": 1}).id == 7
    assert waits == [0.25]


def test_a_broken_post_is_not_repeated_but_a_get_is(waits: list[float]) -> None:
    timeout = httpx.ReadTimeout("slow")
    with sync_client(Recorder(timeout)) as api, pytest.raises(TransportFailure):
        api.create_item({"name": "Widget", "price": 1})  # it may have been created
    with sync_client(Recorder(timeout, httpx.Response(200, json=ITEM))) as api:
        assert api.get_item(7).id == 7
    assert waits == [0.25]


def test_timeouts_apply_to_every_phase() -> None:
    seen: list[dict[str, float | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, json=ITEM)

    with sync_client(handler, timeout=1.5) as api:
        api.get_item(7)
    assert seen == [{"connect": 1.5, "read": 1.5, "write": 1.5, "pool": 1.5}]


async def test_the_async_client_does_the_same(waits: list[float]) -> None:
    recorder = Recorder(error(503, "database_unavailable", "1"), httpx.Response(200, json=ITEM))
    events = {"events": [], "limit": 20, "offset": 0}
    recorder.answers += [httpx.Response(200, json=events), error(404, "not_found")]
    transport = httpx.MockTransport(recorder)
    async with AsyncClient("http://api", transport=transport, token="a") as api:
        assert (await api.get_item(7)).version == 3
        assert (await api.list_item_events(7)).events == []
        with pytest.raises(NotFound):
            await api.delete_item(7, if_match=3)
    assert waits == [1.0]
    assert [r.url.path for r in recorder.requests] == [
        "/items/7",
        "/items/7",
        "/items/7/events",
        "/items/7",
    ]
    assert recorder.requests[-1].headers["If-Match"] == '"3"'
