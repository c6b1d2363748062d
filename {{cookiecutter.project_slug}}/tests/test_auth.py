"""Bearer tokens against a real issuer (tests/issuer.py: discovery and JWKS over HTTP): scopes per
route, every kind of bad token, key rotation, an unreachable issuer, the local dev key."""

import asyncio
import base64
import hashlib
import hmac
import io
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError

from app import auth as auth_module
from app.config import Settings
from app.database import Database
from app.log import configure_logging
from app.main import create_app
from scripts.token import e2e_token, mint
from tests.conftest import ISSUER, PROJECT_ROOT
from tests.issuer import AUDIENCE, CLIENT_ID, CLIENT_SECRET, Issuer
from tests.test_routing import served

BOTH = ["items:read", "items:write"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    segments = [b64(json.dumps(header).encode()), b64(json.dumps(claims).encode())]
    return ".".join([*segments, b64(signature)])


def valid_claims() -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER.url, "sub": "x", "aud": AUDIENCE, "scope": "items:read", "exp": now + 60}


def hs256_with_the_public_key() -> str:
    """The classic confusion attack: HMAC keyed with the issuer's public key, which is public."""
    kid = ISSUER.kid("RS256")
    public = ISSUER.keys[kid][1].public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head = {"alg": "HS256", "typ": "JWT", "kid": kid}
    body = unsigned(head, valid_claims()).rsplit(".", 1)[0]
    signature = hmac.new(pem, body.encode(), hashlib.sha256).digest()
    return f"{body}.{b64(signature)}"


def bad_tokens() -> dict[str, str]:
    """Tokens that must all be refused with 401 (made lazily: the issuer's keys are needed)."""
    now = int(time.time())
    other = Issuer()
    try:
        foreign = other.token(BOTH, iss=ISSUER.url)  # right claims, a key that is not ISSUER's
    finally:
        other.close()
    good = ISSUER.token(BOTH)
    return {
        "expired": ISSUER.token(BOTH, exp=now - 120),
        "not yet valid": ISSUER.token(BOTH, nbf=now + 120),
        "wrong issuer": ISSUER.token(BOTH, iss="https://evil.example"),
        "wrong audience": ISSUER.token(BOTH, aud="another-service"),
        "no audience and no client_id": ISSUER.token(BOTH, aud=None),
        "audience of objects": ISSUER.token(BOTH, aud=[{"name": AUDIENCE}, 7]),
        "client_id a list": ISSUER.token(BOTH, aud=None, client_id=[AUDIENCE]),
        "no subject": ISSUER.token(BOTH, sub=None),
        "no expiry": ISSUER.token(BOTH, exp=None),
        "alg none": unsigned({"alg": "none", "typ": "JWT"}, valid_claims()),
        "alg none with a kid": unsigned({"alg": "none", "kid": ISSUER.kid("RS")}, valid_claims()),
        "HS256 keyed with the public key": hs256_with_the_public_key(),
        "unknown kid": ISSUER.token(BOTH, headers={"kid": "no-such-key"}),
        "no kid": unsigned({"alg": "RS256"}, valid_claims(), b"x" * 256),
        "ES256 claimed for the RSA key": unsigned(
            {"alg": "ES256", "kid": ISSUER.kid("RS256")}, valid_claims(), b"x" * 64
        ),
        "signed by another key": foreign,
        "tampered claims": good.split(".")[0]
        + "."
        + b64(json.dumps({**valid_claims(), "scope": "items:write"}).encode())
        + "."
        + good.split(".")[2],
        "truncated": good[: len(good) // 2],
        "garbage": "not-a-jwt",
        "three dots of garbage": "a.b.c",
        "oversized": good + "A" * 9000,
    }


BAD = list(bad_tokens())


def assert_401(response: httpx.Response, error: str | None = "invalid_token") -> None:
    assert response.status_code == 401, response.text
    body = response.json()["error"]
    assert body["code"] == "unauthorized"
    assert body["request_id"] == response.headers["x-request-id"]
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="{{ cookiecutter.project_slug }}"')
    if error is None:
        assert "error=" not in challenge
    else:
        assert f'error="{error}"' in challenge


async def test_a_token_with_both_scopes_reads_and_writes(client: httpx.AsyncClient) -> None:
    headers = bearer(ISSUER.token(BOTH, algorithm="ES256"))
    created = await client.post("/items", json={"name": "a", "price": "1.00"}, headers=headers)
    assert created.status_code == 201, created.text
    read = await client.get(f"/items/{created.json()['id']}", headers=headers)
    assert read.status_code == 200


async def test_no_token_is_401_without_an_error_code(client: httpx.AsyncClient) -> None:
    response = await client.get("/items", headers={"Authorization": ""})
    assert_401(response, error="invalid_request")
    del client.headers["Authorization"]
    assert_401(await client.get("/items"), error=None)
    assert_401(await client.delete("/items/1"), error=None)


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "token abc"])
async def test_other_schemes_are_401_invalid_request(client: httpx.AsyncClient, value: str) -> None:
    assert_401(await client.get("/items", headers={"Authorization": value}), "invalid_request")


async def test_each_method_needs_its_scope(client: httpx.AsyncClient) -> None:
    reader, writer = bearer(ISSUER.token(["items:read"])), bearer(ISSUER.token(["items:write"]))
    assert (await client.get("/items", headers=reader)).status_code == 200
    refused = await client.post("/items", json={"name": "a", "price": "1"}, headers=reader)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert "items:write" in refused.json()["error"]["message"]
    assert 'error="insufficient_scope", scope="items:write"' in refused.headers["www-authenticate"]
    created = await client.post("/items", json={"name": "a", "price": "1"}, headers=writer)
    assert created.status_code == 201
    item = f"/items/{created.json()['id']}"
    for method in ("PATCH", "DELETE"):
        body = {"name": "b"} if method == "PATCH" else None
        response = await client.request(method, item, json=body, headers=reader)
        assert response.status_code == 403, method
    for path in (item, "/items", f"{item}/events"):
        response = await client.get(path, headers=writer)
        assert response.status_code == 403, path
        assert "items:read" in response.json()["error"]["message"]
    assert (await client.delete(item, headers=writer)).status_code == 204


@pytest.mark.parametrize("case", BAD)
async def test_bad_tokens_are_401_and_never_logged(
    client: httpx.AsyncClient, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = bad_tokens()[case]
    out = io.BytesIO()
    configure_logging("INFO", stream=out)
    with caplog.at_level(logging.DEBUG):
        for method, path in (("GET", "/items"), ("POST", "/items"), ("GET", "/items/1")):
            body = {"name": "a", "price": "1"} if method == "POST" else None
            response = await client.request(method, path, json=body, headers=bearer(token))
            assert_401(response)
        await asyncio.sleep(0)
    logging.getLogger().handlers[0].flush()
    logged = out.getvalue().decode() + caplog.text
    assert "/items" in logged  # the access log is there
    for part in {token, *token.split(".")} - {"", "a", "b", "c"}:
        assert part not in logged


async def test_a_little_clock_skew_is_tolerated(client: httpx.AsyncClient) -> None:
    now = int(time.time())
    for claims in ({"exp": now - 10}, {"nbf": now + 10}, {"iat": now + 10}):
        response = await client.get("/items", headers=bearer(ISSUER.token(BOTH, **claims)))
        assert response.status_code == 200, claims


async def test_the_subject_is_logged_and_the_token_is_not(client: httpx.AsyncClient) -> None:
    token = ISSUER.token(BOTH, sub="orders-worker")
    out = io.BytesIO()
    configure_logging("INFO", stream=out)
    await client.get("/items", headers=bearer(token))
    await client.get("/health", headers=bearer(token))
    await asyncio.sleep(0)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    access = [line for line in lines if line["logger"] == "app.access"]
    assert [line.get("subject") for line in access] == ["orders-worker", None]
    assert token.split(".")[2] not in out.getvalue().decode()


async def test_cognito_access_tokens_and_okta_scp_claims(settings: Settings, db: Database) -> None:
    cognito = settings.model_copy(
        update={"auth_audience": ["client-abc"], "auth_scope_prefix": "orders-api/"}
    )
    async with served(cognito, db) as client:
        access_token = ISSUER.token(
            ["orders-api/items:read"], aud=None, client_id="client-abc", token_use="access"
        )
        assert (await client.get("/items", headers=bearer(access_token))).status_code == 200
        unprefixed = ISSUER.token(["items:read"], aud=None, client_id="client-abc")
        assert (await client.get("/items", headers=bearer(unprefixed))).status_code == 403
        other_client = ISSUER.token(["orders-api/items:read"], aud=None, client_id="client-xyz")
        assert_401(await client.get("/items", headers=bearer(other_client)))
    async with served(settings, db) as client:
        okta = ISSUER.token([], scope=None, scp=["items:read"], aud=[AUDIENCE, "other"])
        assert (await client.get("/items", headers=bearer(okta))).status_code == 200
        entra = ISSUER.token([], scope=None, scp="items:read items:write")
        assert (await client.get("/items", headers=bearer(entra))).status_code == 200


async def test_a_rotated_key_is_fetched_once_and_made_up_kids_cannot_hammer_the_issuer(
    settings: Settings, db: Database
) -> None:
    app = create_app(settings)
    async with served(settings, db, app) as client:
        auth = app.state.auth
        auth.last_fetch -= auth_module.REFETCH_INTERVAL_SECONDS  # a minute after start-up
        ISSUER.requests.clear()
        new_kid = ISSUER.add_key("ES256")
        try:
            token = ISSUER.token(BOTH, algorithm="ES256", kid=new_kid)
            for _ in range(3):
                assert (await client.get("/items", headers=bearer(token))).status_code == 200
            assert ISSUER.requests.count("/jwks.json") == 1
            flood = [ISSUER.token(BOTH, headers={"kid": f"made-up-{n}"}) for n in range(50)]
            responses = await asyncio.gather(
                *(client.get("/items", headers=bearer(t)) for t in flood)
            )
            assert {r.status_code for r in responses} == {401}
            assert ISSUER.requests.count("/jwks.json") == 1  # within the minute: no refetch
        finally:
            ISSUER.remove_key(new_kid)


async def test_a_deleted_key_stops_verifying_once_the_keys_are_refetched(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth_module, "REFETCH_INTERVAL_SECONDS", 0.0)
    old_kid = ISSUER.add_key("RS256")
    old = ISSUER.token(BOTH, kid=old_kid)
    async with served(settings, db) as client:
        assert (await client.get("/items", headers=bearer(old))).status_code == 200
        ISSUER.remove_key(old_kid)
        new_kid = ISSUER.add_key("RS256")
        try:
            new = ISSUER.token(BOTH, kid=new_kid)
            assert (await client.get("/items", headers=bearer(new))).status_code == 200
            assert_401(await client.get("/items", headers=bearer(old)))
        finally:
            ISSUER.remove_key(new_kid)


async def test_verified_tokens_are_remembered_until_they_expire(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = 0
    decode = jwt.decode

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        nonlocal decoded
        decoded += 1
        return decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    async with served(settings.model_copy(update={"auth_leeway_seconds": 0}), db) as client:
        token = ISSUER.token(BOTH, exp=int(time.time()) + 2)
        for _ in range(5):
            assert (await client.get("/items", headers=bearer(token))).status_code == 200
        assert decoded == 1
        await asyncio.sleep(2.5)
        assert_401(await client.get("/items", headers=bearer(token)))
    monkeypatch.setattr(auth_module, "CACHE_SIZE", 3)
    app = create_app(settings)
    async with served(settings, db, app) as client:
        for n in range(5):
            token = ISSUER.token(BOTH, sub=f"s{n}")
            assert (await client.get("/items", headers=bearer(token))).status_code == 200
        assert len(app.state.auth.verified) == 3


async def test_an_unreachable_issuer_is_503_until_it_answers(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth_module, "RETRY_SECONDS", (0.2,))
    ISSUER.up = False
    try:
        async with served(settings, db) as client:
            assert (await client.get("/health")).status_code == 200
            for _ in range(2):
                response = await client.get("/items", headers=bearer(ISSUER.token(BOTH)))
                assert response.status_code == 503
                assert response.json()["error"]["code"] == "service_unavailable"
                assert response.headers["retry-after"] == "5"
            ISSUER.up = True
            for _ in range(50):
                response = await client.get("/items", headers=bearer(ISSUER.token(BOTH)))
                if response.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert response.status_code == 200
    finally:
        ISSUER.up = True


async def test_no_issuer_configured_is_503(settings: Settings, db: Database) -> None:
    async with served(settings.model_copy(update={"auth_issuer": None}), db) as client:
        response = await client.get("/items", headers=bearer(ISSUER.token(BOTH)))
        assert response.status_code == 503
        assert "AUTH_ISSUER" in response.json()["error"]["message"]


async def test_health_metrics_and_docs_stay_open(client: httpx.AsyncClient) -> None:
    del client.headers["Authorization"]
    for path in ("/", "/health", "/health/ready", "/metrics", "/docs", "/openapi.json"):
        assert (await client.get(path)).status_code == 200, path


async def test_openapi_declares_the_scheme_and_each_operations_scope(app: FastAPI) -> None:
    schema = app.openapi()
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    paths = schema["paths"]
    assert paths["/items"]["get"]["security"] == [{"bearerAuth": ["items:read"]}]
    assert paths["/items"]["post"]["security"] == [{"bearerAuth": ["items:write"]}]
    for method in ("patch", "delete"):
        assert paths["/items/{item_id}"][method]["security"] == [{"bearerAuth": ["items:write"]}]
        assert {"401", "403"} <= set(paths["/items/{item_id}"][method]["responses"])
    assert paths["/items/{item_id}/events"]["get"]["security"] == [{"bearerAuth": ["items:read"]}]
    assert "security" not in paths["/health"]["get"]


async def test_the_local_dev_key_is_trusted_locally_and_refused_in_production(
    settings: Settings, db: Database
) -> None:
    seed = SecretStr("a-local-seed")
    local = settings.model_copy(update={"auth_dev_key": seed, "auth_issuer": None})
    async with served(local, db) as client:
        token = mint("a-local-seed", ["items:read"])
        assert (await client.get("/items", headers=bearer(token))).status_code == 200
        assert_401(await client.get("/items", headers=bearer(mint("another-seed", BOTH))))
        assert_401(await client.get("/items", headers=bearer(ISSUER.token(BOTH))))
    with pytest.raises(ValidationError, match="AUTH_DEV_KEY is a local development key"):
        Settings(_env_file=None, environment="production", auth_dev_key="a-local-seed")


def run_token(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`make token`'s command, in a directory without the project's .env."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")}
    return subprocess.run(
        [sys.executable, "-m", "scripts.token", *args],
        cwd=cwd,
        env={**environment, "PYTHONPATH": str(PROJECT_ROOT), **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_make_token_mints_what_the_dev_app_trusts(tmp_path: Path) -> None:
    made = run_token(tmp_path, "--scopes", "items:read", "--subject", "me", AUTH_DEV_KEY="seed-1")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    key = auth_module.dev_signing_key("seed-1").public_key()
    claims = jwt.decode(token, key, algorithms=["ES256"], audience=AUDIENCE)
    assert claims["sub"] == "me" and claims["scope"] == "items:read"
    assert claims["iss"] == auth_module.DEV_ISSUER
    assert 3500 <= claims["exp"] - time.time() <= 3600
    assert jwt.get_unverified_header(token)["kid"] == auth_module.dev_key_id("seed-1")
    missing = run_token(tmp_path)
    assert missing.returncode == 2 and "AUTH_DEV_KEY is not set" in missing.stderr
    too_long = run_token(tmp_path, "--ttl", "999999", AUTH_DEV_KEY="seed-1")
    assert too_long.returncode == 2 and "--ttl" in too_long.stderr


async def test_e2e_tokens_come_from_the_issuers_token_endpoint(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the e2e workflow gets them on AWS: the client credentials grant (Cognito's shape: no
    `aud`, the client's id, prefixed scopes)."""
    monkeypatch.setenv("AUTH_TOKEN_URL", f"{ISSUER.url}/oauth2/token")
    monkeypatch.setenv("AUTH_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("AUTH_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("AUTH_SCOPE_PREFIX", "orders-api/")
    cognito = settings.model_copy(
        update={"auth_audience": [CLIENT_ID], "auth_scope_prefix": "orders-api/"}
    )
    async with served(cognito, db) as client:
        reader = bearer(await asyncio.to_thread(e2e_token, ["items:read"]))
        assert (await client.get("/items", headers=reader)).status_code == 200
        assert (await client.post("/items", json={}, headers=reader)).status_code == 403
    monkeypatch.setenv("AUTH_CLIENT_SECRET", "wrong")
    with pytest.raises(RuntimeError, match="refused the client credentials: 400"):
        await asyncio.to_thread(e2e_token, ["items:read"])
