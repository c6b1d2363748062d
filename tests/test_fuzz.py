"""Hostile input against the served app (real uvicorn, real sockets): schemathesis over the
OpenAPI with positive and negative data, then the cases a generator does not produce: bodies
too large (declared and chunked), deep and huge JSON, non-UTF-8 bytes, header floods, extreme
ids, SQL-ish text. Bad input is 4xx, never 5xx, and the process survives all of it.
"""

import json
from pathlib import Path

import httpx
import pytest
from reliability_support.fixtures import database, make_app, postgres, project, python  # noqa: F401
from reliability_support.fuzz import raw_exchange, run_schemathesis

pytestmark = pytest.mark.slow

MIN_FUZZ_REQUESTS = 1000
LIMIT = 1_048_576  # MAX_REQUEST_BODY_BYTES's default


@pytest.fixture(scope="module")
def app(python, project, postgres, tmp_path_factory):  # noqa: F811
    from reliability_support.app import prepare_database, serve

    url = prepare_database(python, project, postgres, "fuzz")
    log = tmp_path_factory.mktemp("fuzz") / "app.log"
    with serve(python, project, url, log) as served:
        yield served
        assert served.alive(), "the app died under hostile input"


def post_head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def error_code(body: bytes) -> str:
    return json.loads(body)["error"]["code"]


def test_schemathesis_finds_no_5xx_and_no_schema_violation(app, project, tmp_path: Path):  # noqa: F811
    result = run_schemathesis(app.url, tmp_path, config_file=project / "schemathesis.toml")
    assert result.requests >= MIN_FUZZ_REQUESTS, result.statuses
    assert result.server_errors == 0, result.output[-6000:]
    assert result.exit_code == 0, result.output[-6000:]


def test_declared_oversized_body_is_refused_before_it_is_sent(app):
    """Content-Length: 100 MiB, 64 KiB sent: the 413 arrives without the rest."""
    head = post_head("/items", {"Content-Type": "application/json", "Content-Length": "104857600"})
    answer = raw_exchange(app.port, head, [b"[" * 65536])
    assert answer.status == 413, answer.head
    assert error_code(answer.body) == "payload_too_large"


def test_chunked_oversized_body_is_cut_off_at_the_limit(app):
    """Chunked, 16 MiB offered and never terminated: the 413 comes before the body is whole
    (what was sent includes the kernel's socket buffers, several MiB on loopback)."""
    head = post_head("/items", {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"  # 64 KiB per chunk
    answer = raw_exchange(app.port, head, [chunk] * 256)
    assert answer.status == 413, answer.head
    assert answer.bytes_sent < 256 * 0x10000, answer.bytes_sent


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(b"[" * 100_000, 400, id="100k-unclosed-brackets"),
        # Past the JSON parser's nesting limit: "cannot parse", 400.
        pytest.param(b"[" * 100_000 + b"]" * 100_000, 400, id="100k-nested-arrays"),
        pytest.param(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, 400, id="50k-nested-objects"),
        pytest.param(b"[" + b"1," * 300_000 + b"1]", 422, id="huge-array"),
        pytest.param(b'{"name": "\xff\xfe", "price": 1}', 400, id="non-utf8"),
        pytest.param(b"\xc3\x28\xa0\xa1", 400, id="invalid-utf8-bytes"),
        pytest.param(b'{"name": "x", "price": 1e400}', 422, id="infinite-price"),
        pytest.param(b'{"name": "x", "price": "NaN"}', 422, id="nan-price"),
        pytest.param(b'{"name": "\\u0000", "price": 1}', 422, id="nul-in-name"),
    ],
)
def test_hostile_json_is_a_4xx(app, body: bytes, expected: int):
    response = httpx.post(
        f"{app.url}/items", content=body, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert response.status_code == expected, response.text[:500]
    assert "error" in response.json()


@pytest.mark.parametrize(
    ("count", "size"), [(1, 70_000), (2_000, 10), (200, 8_000)], ids=["one-huge", "many", "big"]
)
def test_header_flood_is_not_a_crash(app, count: int, size: int):
    """uvicorn's httptools parser takes even 1.6 MB of headers (h11 would refuse them; in AWS
    the ALB refuses headers over 64 KiB): what must hold is no 5xx and a live process."""
    headers = "".join(f"X-Flood-{n}: {'a' * size}\r\n" for n in range(count))
    head = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode()
    answer = raw_exchange(app.port, head)
    assert answer.status is None or answer.status < 500, answer.head[:300]
    assert httpx.get(f"{app.url}/health", timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("item_id", "expected"),
    [
        ("-1", 422),
        ("0", 422),
        ("9223372036854775807", 404),
        ("9223372036854775808", 422),
        ("99999999999999999999999999999999", 422),
        ("1e3", 422),
        ("1%00", 422),
        ("1;DROP TABLE items", 422),
    ],
)
def test_extreme_ids_are_4xx(app, item_id: str, expected: int):
    response = httpx.get(f"{app.url}/items/{item_id}", timeout=10)
    assert response.status_code == expected, response.text


@pytest.mark.parametrize(
    "text",
    [
        "'; DROP TABLE items; --",
        "Robert'); DELETE FROM items WHERE ('1'='1",
        "1 OR 1=1",
        "$1 $$ E'\\\\x00' \\",
        "<script>alert(1)</script>",
        "Ünïcödé ☃ عربى 🙂",
    ],
)
def test_sql_ish_text_is_stored_and_returned_verbatim(app, text: str):
    created = httpx.post(f"{app.url}/items", json={"name": text, "description": text, "price": 1})
    assert created.status_code == 201, created.text
    fetched = httpx.get(f"{app.url}/items/{created.json()['id']}").json()
    assert fetched["name"] == text and fetched["description"] == text
    assert httpx.get(f"{app.url}/items?limit=1").status_code == 200  # the table is still there
