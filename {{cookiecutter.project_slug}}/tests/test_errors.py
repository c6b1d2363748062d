"""One error shape everywhere, request ids and security headers."""

import asyncio
import io
import json
import logging
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError, IntegrityError

from app.config import Settings
from app.database import SELECT_ONE, Database, DatabaseUnavailable, create_engine
from app.log import JsonFormatter, configure_logging, request_id_var, timestamp
from app.main import create_app
from tests.conftest import api_client


def add_failing_route(app: FastAPI, path: str, exc: Exception) -> None:
    async def fail() -> None:
        raise exc

    app.add_api_route(path, fail)


async def test_unknown_route_is_404_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/route")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_wrong_method_is_405_json(client: httpx.AsyncClient) -> None:
    response = await client.delete("/items")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


async def test_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/999999", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json()["error"]["request_id"] == "abc-123"


@pytest.mark.parametrize("header", ["", "has space", "x" * 129, "new\tline"])
async def test_unsafe_request_id_is_replaced(client: httpx.AsyncClient, header: str) -> None:
    response = await client.get("/health", headers={"X-Request-ID": header})
    assert response.headers["x-request-id"] != header
    assert len(response.headers["x-request-id"]) == 32


async def test_request_id_is_generated(client: httpx.AsyncClient) -> None:
    first = (await client.get("/health")).headers["x-request-id"]
    second = (await client.get("/health")).headers["x-request-id"]
    assert first != second


async def test_security_headers(client: httpx.AsyncClient) -> None:
    headers = (await client.get("/health")).headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"


async def test_unhandled_error_is_500_json_with_request_id(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    add_failing_route(app, "/boom", RuntimeError("boom"))
    response = await client.get("/boom", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-500"
    assert response.json() == {
        "error": {
            "code": "internal_server_error",
            "message": "Internal server error.",
            "request_id": "req-500",
        }
    }


async def test_integrity_error_is_409(app: FastAPI, client: httpx.AsyncClient) -> None:
    add_failing_route(app, "/conflict", IntegrityError("INSERT", {}, Exception("duplicate")))
    response = await client.get("/conflict")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"


async def test_other_database_error_is_500(app: FastAPI, client: httpx.AsyncClient) -> None:
    add_failing_route(app, "/dberror", DBAPIError("SELECT", {}, Exception("bug")))
    response = await client.get("/dberror")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_server_error"


async def test_access_log_is_json_with_request_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    out = io.BytesIO()
    configure_logging("WARNING", stream=out)
    with caplog.at_level(logging.INFO, logger="app.access"):
        await client.get("/items/424242", headers={"X-Request-ID": "log-me"})
        await asyncio.sleep(0)  # lines leave once per event-loop turn
    line = json.loads(out.getvalue().splitlines()[-1])
    assert line["logger"] == "app.access"
    assert line["level"] == "INFO"
    assert line["path"] == "/items/424242"
    assert line["status"] == 404
    assert line["method"] == "GET"
    assert line["request_id"] == "log-me"
    assert line["duration_ms"] >= 0


async def test_access_log_is_off_when_its_logger_is(client: httpx.AsyncClient) -> None:
    out = io.BytesIO()
    configure_logging("WARNING", stream=out)
    await client.get("/health")
    logging.getLogger().handlers[0].flush()
    assert out.getvalue() == b""


def test_uvicorn_access_log_is_off_so_uvicorn_builds_no_line() -> None:
    configure_logging("INFO", stream=io.BytesIO())
    assert not logging.getLogger("uvicorn.access").hasHandlers()
    assert logging.getLogger("uvicorn.error").hasHandlers()


def test_timestamps_are_utc_to_the_millisecond() -> None:
    assert timestamp(1_764_201_234.5671) == "2025-11-26T23:53:54.567+00:00"
    assert timestamp(1_764_201_234.5679) == "2025-11-26T23:53:54.567+00:00"
    assert timestamp(1_764_201_234.5681) == "2025-11-26T23:53:54.568+00:00"
    now = time.time()
    assert timestamp(now)[:19] == datetime.fromtimestamp(now, UTC).isoformat()[:19]


def test_lines_written_outside_an_event_loop_are_written_at_once() -> None:
    out = io.BytesIO()
    configure_logging("INFO", stream=out)
    logging.getLogger("app.test").warning("now", extra={"n": 1})
    line = json.loads(out.getvalue())
    assert (line["message"], line["n"], line["level"]) == ("now", 1, "WARNING")


def test_json_formatter_includes_request_id_and_exception() -> None:
    token = request_id_var.set("rid-1")
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.LogRecord(
            "t", logging.ERROR, __file__, 1, "failed %s", ("x",), sys.exc_info()
        )
        line = JsonFormatter().format(record)
    finally:
        request_id_var.reset(token)
    assert '"request_id":"rid-1"' in line
    assert '"message":"failed x"' in line
    assert "ValueError: bad" in line


async def test_declared_oversized_body_is_413_without_reading_it(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    size = settings.max_request_body_bytes + 1
    response = await client.post(
        "/items", content=b"x" * size, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert response.headers["x-request-id"]


async def test_streamed_oversized_body_is_cut_off_with_413(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    chunks_sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        for _ in range(100):
            chunks_sent += 1
            yield b" " * (settings.max_request_body_bytes // 10)

    response = await client.post("/items", content=body())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert chunks_sent < 100, "the whole body was read before refusing it"


async def test_body_within_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post("/items", json={"name": "small", "price": 1})
    assert response.status_code == 201


async def test_cross_origin_requests_are_not_allowed_by_default(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers


async def test_configured_origins_may_call_the_api(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"cors_origins": ["https://app.example"]}))
    async with api_client(app) as client:
        allowed = await client.get("/health", headers={"Origin": "https://app.example"})
        other = await client.get("/health", headers={"Origin": "https://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in other.headers


async def test_method_not_allowed_lists_every_method_of_the_path(
    client: httpx.AsyncClient,
) -> None:
    response = await client.delete("/items")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


async def test_query_timeout_is_503(app: FastAPI, client: httpx.AsyncClient) -> None:
    add_failing_route(app, "/slow", TimeoutError())
    response = await client.get("/slow")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"


async def test_server_refusing_connections_while_starting_is_503(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(settings)
    starting = engine.dialect.loaded_dbapi.InterfaceError("the database system is starting up")

    def refuse() -> None:
        raise starting

    monkeypatch.setattr(engine.sync_engine, "raw_connection", refuse)
    with pytest.raises(DatabaseUnavailable, match="starting up"):
        await Database(engine, connections=1, wait=1).fetch(SELECT_ONE)
    await engine.dispose()
