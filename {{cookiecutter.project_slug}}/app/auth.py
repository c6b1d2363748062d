"""Bearer-token authentication: JWTs from an OIDC issuer, verified with PyJWT, scopes per route.

A protected router declares `dependencies=[Depends(ITEMS)]`: GETs need the read scope, every
other method the write scope. Tokens are verified against the issuer's JWKS (RS256 or ES256
only: `none`, HS* and anything not in AUTH_ALGORITHMS are refused), `iss`, the audience (`aud`,
or `client_id` for Cognito's access tokens, which carry no `aud`) and `exp`/`nbf` with a small
leeway. Answers (README "Authentication"):

* no token, or one that does not verify: 401 with `WWW-Authenticate: Bearer ...` (RFC 6750);
* a valid token without the route's scope: 403 naming the missing scope;
* no keys known yet (the issuer was unreachable at start-up): 503, until they are.

Keys are fetched at start-up (OIDC discovery, or AUTH_JWKS_URL) and kept; a token signed with
an unknown key id fetches them again, at most once a minute, so the issuer's key rotation needs
no restart and a flood of made-up key ids cannot hammer it. Verified tokens are remembered
(bounded, until they expire, forgotten when the keys change): a client sends the same token
for its every request, and checking a signature costs more than the rest of a cached read.

Local work has no identity provider: AUTH_DEV_KEY (generated into .env) derives an ES256 key
`make token` signs with and the app trusts instead of an issuer's. Production refuses it
(app/config.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI, HTTPException, Request
from fastapi.routing import APIRoute

from app.config import Settings

logger = logging.getLogger(__name__)

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SECURITY_SCHEME = "bearerAuth"
# Unknown key ids fetch the keys again at most this often; failed fetches are retried sooner.
REFETCH_INTERVAL_SECONDS = 60.0
RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)
FETCH_TIMEOUT_SECONDS = 5.0
MAX_TOKEN_BYTES = 8192
CACHE_SIZE = 4096  # about 4 MB of typical 1 KB tokens; 32 MB at most (MAX_TOKEN_BYTES each)
DEV_ISSUER = "urn:{{ cookiecutter.project_slug }}:local-dev"
# The order of P-256, the curve of ES256 (FIPS 186-4, D.1.2.3).
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@dataclass(frozen=True, slots=True)
class Principal:
    """Who called: the token's subject, its scopes (AUTH_SCOPE_PREFIX removed) and claims."""

    subject: str
    scopes: frozenset[str]
    claims: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Key:
    kid: str
    algorithm: str
    key: Any  # a cryptography public key


def unauthorized(description: str, error: str | None = "invalid_token") -> HTTPException:
    """401 with the RFC 6750 challenge; no `error` when the request carried no token."""
    challenge = 'Bearer realm="{{ cookiecutter.project_slug }}"'
    if error is not None:
        challenge += f', error="{error}", error_description="{description}"'
    return HTTPException(401, description, headers={"WWW-Authenticate": challenge})


def dev_signing_key(seed: str) -> ec.EllipticCurvePrivateKey:
    """The ES256 key of AUTH_DEV_KEY (any string; the generator writes 32 random bytes)."""
    digest = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big")
    return ec.derive_private_key(digest % (P256_ORDER - 1) + 1, ec.SECP256R1())


def dev_key_id(seed: str) -> str:
    return "dev-" + hashlib.sha256(b"kid:" + seed.encode()).hexdigest()[:16]


def keys_of(jwks: Mapping[str, Any], algorithms: Sequence[str]) -> dict[str, Key]:
    """The signing keys of a JWKS document usable with `algorithms`; others are skipped."""
    keys: dict[str, Key] = {}
    for entry in jwks.get("keys", ()):
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or "kid" not in entry:
            continue
        try:
            jwk = jwt.PyJWK(entry)
        except (jwt.PyJWTError, ValueError, TypeError):
            continue  # a key type or curve this service does not take
        if jwk.algorithm_name in algorithms:
            keys[str(entry["kid"])] = Key(str(entry["kid"]), jwk.algorithm_name, jwk.key)
    return keys


class Authenticator:
    """Verifies bearer tokens for one app (app.state.auth), with the issuer's keys."""

    def __init__(
        self, settings: Settings, fetch: Callable[[str], Awaitable[Any]] | None = None
    ) -> None:
        self.algorithms = list(settings.auth_algorithms)
        self.audience = frozenset(settings.auth_audience)
        self.leeway = settings.auth_leeway_seconds
        self.prefix = settings.auth_scope_prefix
        self.jwks_url = str(settings.auth_jwks_url) if settings.auth_jwks_url else None
        self.keys: dict[str, Key] | None = None  # None: not known yet
        self.verified: dict[str, tuple[float, Principal]] = {}
        self.last_fetch = float("-inf")
        self.refetching: asyncio.Future[None] | None = None
        self.retrying: asyncio.Task[None] | None = None
        self.fetch = fetch or self.fetch_json
        self.http: httpx.AsyncClient | None = None
        self.problem: str | None = None  # why no keys are known, for the 503's message
        dev_key = settings.auth_dev_key
        if dev_key is not None:
            seed = dev_key.get_secret_value()
            public = dev_signing_key(seed).public_key()
            self.issuer = settings.auth_issuer or DEV_ISSUER
            self.keys = {dev_key_id(seed): Key(dev_key_id(seed), "ES256", public)}
            self.algorithms = ["ES256"]
        elif settings.auth_issuer:
            self.issuer = settings.auth_issuer
        else:
            self.issuer = ""
            self.problem = "AUTH_ISSUER is not set"

    async def start(self) -> None:
        """Fetch the keys once; when that fails, the service starts anyway and keeps trying."""
        if self.keys is not None or not self.issuer:
            if self.problem:
                logger.error("authentication not configured: %s; /items answers 503", self.problem)
            return
        self.http = httpx.AsyncClient(timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=False)
        if not await self.refresh():
            self.retrying = asyncio.create_task(self.retry(), name="auth-keys")

    async def stop(self) -> None:
        if self.retrying is not None:
            self.retrying.cancel()
        if self.http is not None:
            await self.http.aclose()

    async def retry(self) -> None:
        attempt = 0
        while self.keys is None:
            await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
            attempt += 1
            await self.refresh()

    async def fetch_json(self, url: str) -> Any:
        assert self.http is not None
        response = await self.http.get(url)
        response.raise_for_status()
        return response.json()

    async def refresh(self) -> bool:
        """Fetch the issuer's keys; False (and the old keys kept) when that fails."""
        self.last_fetch = time.monotonic()
        try:
            url = self.jwks_url
            if url is None:
                discovery = await self.fetch(
                    self.issuer.rstrip("/") + "/.well-known/openid-configuration"
                )
                if discovery.get("issuer") != self.issuer:
                    raise ValueError(f"discovery names issuer {discovery.get('issuer')!r}")
                url = str(discovery["jwks_uri"])
            keys = keys_of(await self.fetch(url), self.algorithms)
        except Exception as error:  # unreachable, an HTTP error, not JSON, not a key set
            self.problem = f"the issuer's keys could not be fetched ({type(error).__name__})"
            logger.warning("auth: %s: %s", self.problem, error)
            return False
        if keys != self.keys:
            if self.keys is not None:
                logger.info("auth: the issuer's keys changed: %s", sorted(keys))
            self.verified.clear()  # nothing verified with a removed key stays accepted
        self.keys = keys
        self.problem = None
        return True

    async def refetch_for_unknown_key(self) -> None:
        """One fetch at a time, at most once per REFETCH_INTERVAL_SECONDS; others wait for it."""
        if self.refetching is not None:
            await asyncio.shield(self.refetching)
            return
        if time.monotonic() - self.last_fetch < REFETCH_INTERVAL_SECONDS:
            return
        self.refetching = asyncio.get_running_loop().create_future()
        try:
            await self.refresh()
        finally:
            self.refetching.set_result(None)
            self.refetching = None

    async def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an Authorization header, or the 401/503 HTTPException to answer."""
        if authorization is None:
            raise unauthorized("A bearer token is required.", error=None)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise unauthorized(
                "Use the Bearer scheme: Authorization: Bearer <token>.", error="invalid_request"
            )
        cached = self.verified.get(token)
        if cached is not None and cached[0] > time.time():
            return cached[1]
        if len(token) > MAX_TOKEN_BYTES:
            raise unauthorized("The token is too long.")
        return await self.verify(token)

    async def verify(self, token: str) -> Principal:
        if self.keys is None:
            raise HTTPException(
                503,
                f"Tokens cannot be checked yet: {self.problem}; retry later.",
                headers={"Retry-After": "5"},
            )
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise unauthorized("The token is malformed.") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in self.algorithms:
            raise unauthorized("The token's signing algorithm is not accepted.")
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None and isinstance(kid, str):
            await self.refetch_for_unknown_key()
            key = self.keys.get(kid)
        if key is None:
            raise unauthorized("The token is signed with an unknown key.")
        if key.algorithm != algorithm:
            raise unauthorized("The token's algorithm does not match its key.")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "sub"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("The token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise unauthorized("The token is not valid yet.") from None
        except jwt.InvalidIssuerError:
            raise unauthorized("The token is from another issuer.") from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise unauthorized("The token is invalid.") from None
        if not self.for_this_service(claims):
            raise unauthorized("The token is for another audience.")
        principal = Principal(str(claims["sub"]), self.scopes_of(claims), claims)
        self.remember(token, float(claims["exp"]) + self.leeway, principal)
        return principal

    def for_this_service(self, claims: Mapping[str, Any]) -> bool:
        audience = claims.get("aud")
        if audience is None:  # Cognito access tokens name the client instead
            client = claims.get("client_id")
            return isinstance(client, str) and client in self.audience
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list):
            return False
        return any(isinstance(name, str) and name in self.audience for name in audiences)

    def scopes_of(self, claims: Mapping[str, Any]) -> frozenset[str]:
        """`scope` (RFC 8693, Cognito, Auth0: one string) or `scp` (Okta: a list; Entra ID: a
        string), with AUTH_SCOPE_PREFIX taken off (Cognito: `<resource server>/items:read`)."""
        granted = claims.get("scope", claims.get("scp", ""))
        names = granted.split() if isinstance(granted, str) else granted
        if not isinstance(names, list):
            return frozenset()
        prefix = self.prefix
        return frozenset(
            name.removeprefix(prefix)
            for name in names
            if isinstance(name, str) and name.startswith(prefix)
        )

    def remember(self, token: str, until: float, principal: Principal) -> None:
        if len(self.verified) >= CACHE_SIZE:  # drop the oldest entry (dicts keep their order)
            del self.verified[next(iter(self.verified))]
        self.verified[token] = (until, principal)


def requires(read: str, write: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency for a router: its GETs need `read`, every other method `write`."""

    async def authorize(request: Request) -> Principal:
        auth: Authenticator = request.app.state.auth
        principal = await auth.authenticate(request.headers.get("authorization"))
        request.scope["user"] = principal  # the access log's subject; `request.user`
        needed = read if request.method in READ_METHODS else write
        if needed not in principal.scopes:
            raise HTTPException(
                403,
                f"The token lacks the scope {needed}.",
                headers={
                    "WWW-Authenticate": 'Bearer realm="{{ cookiecutter.project_slug }}", '
                    f'error="insufficient_scope", scope="{needed}"'
                },
            )
        return principal

    REQUIRED_SCOPES[authorize] = (read, write)
    return authorize


# Dependency -> (read scope, write scope), for the OpenAPI document.
REQUIRED_SCOPES: dict[Callable[..., Any], tuple[str, str]] = {}

ITEMS = requires("items:read", "items:write")


def document(app: FastAPI) -> None:
    """Declare the bearer scheme and each protected operation's scope in the OpenAPI document
    (FastAPI's "Extending OpenAPI"), so /docs has an Authorize button."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes[SECURITY_SCHEME] = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        for route in app.routes:
            if not isinstance(route, APIRoute):
                continue
            for dependency in route.dependant.dependencies:
                if dependency.call in REQUIRED_SCOPES:
                    read, write = REQUIRED_SCOPES[dependency.call]
                    for method in route.methods or ():
                        operation = schema["paths"][route.path_format][method.lower()]
                        scope = read if method in READ_METHODS else write
                        operation["security"] = [{SECURITY_SCHEME: [scope]}]
                        operation["responses"].update(AUTH_RESPONSES)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


AUTH_RESPONSES = {
    "401": {
        "description": "No token, or one that does not verify.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    },
    "403": {
        "description": "The token lacks the operation's scope.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    },
}
