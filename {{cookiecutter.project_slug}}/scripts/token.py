"""`make token`: a short-lived bearer token signed by the local development key (AUTH_DEV_KEY).

    make token SCOPES="items:read items:write"
    curl -H "Authorization: Bearer $(make -s token)" http://127.0.0.1:8000/items

`make dev` and docker compose trust this key (read from .env); staging and production refuse
it. On AWS, tokens come from the issuer instead (README "Authentication"): e2e_token() asks it
with the client credentials grant when AUTH_TOKEN_URL, AUTH_CLIENT_ID and AUTH_CLIENT_SECRET
are set, as the e2e workflow does.
"""

import argparse
import os
import sys
import time
import uuid

import httpx
import jwt

from app.auth import DEV_ISSUER, dev_key_id, dev_signing_key
from app.config import Settings


def mint(
    seed: str,
    scopes: list[str],
    *,
    subject: str = "dev-user",
    ttl_seconds: int = 3600,
    issuer: str = DEV_ISSUER,
    audience: str = "{{ cookiecutter.project_slug }}",
) -> str:
    """A token as an issuer would sign it: ES256 with the dev key, `kid` in its header."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "scope": " ".join(scopes),
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    key = dev_signing_key(seed)
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": dev_key_id(seed)})


def local_token(settings: Settings, scopes: list[str], subject: str = "dev", ttl: int = 600) -> str:
    """A token the app of `settings` trusts, signed with its AUTH_DEV_KEY."""
    if settings.auth_dev_key is None:
        raise ValueError("AUTH_DEV_KEY is not set (in .env or the environment): no local key")
    return mint(
        settings.auth_dev_key.get_secret_value(),
        [f"{settings.auth_scope_prefix}{scope}" for scope in scopes],
        subject=subject,
        ttl_seconds=ttl,
        issuer=settings.auth_issuer or DEV_ISSUER,
        audience=settings.auth_audience[0],
    )


def client_credentials_token(token_url: str, client_id: str, secret: str, scopes: list[str]) -> str:
    """An access token from the issuer (OAuth 2 client credentials, RFC 6749 section 4.4)."""
    response = httpx.post(
        token_url,
        data={"grant_type": "client_credentials", "scope": " ".join(scopes)},
        auth=(client_id, secret),
        timeout=10,
    )
    if response.status_code != 200:
        raise RuntimeError(f"{token_url} refused the client credentials: {response.status_code}")
    token: str = response.json()["access_token"]
    return token


def e2e_token(scopes: list[str]) -> str:
    """A token for tests from the outside: from the issuer when its client credentials are in
    the environment (AUTH_SCOPE_PREFIX names its scopes), else signed with the local key."""
    token_url = os.environ.get("AUTH_TOKEN_URL")
    if token_url:
        prefix = os.environ.get("AUTH_SCOPE_PREFIX", "")
        return client_credentials_token(
            token_url,
            os.environ["AUTH_CLIENT_ID"],
            os.environ["AUTH_CLIENT_SECRET"],
            [f"{prefix}{scope}" for scope in scopes],
        )
    return local_token(Settings(), scopes, subject="e2e")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scopes", default="items:read items:write", help="space-separated")
    parser.add_argument("--subject", default="dev-user")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds (at most a day)")
    args = parser.parse_args(argv)
    if not 1 <= args.ttl <= 86_400:
        print(f"--ttl {args.ttl}: give 1 to 86400 seconds", file=sys.stderr)
        return 2
    try:
        print(local_token(Settings(), args.scopes.split(), args.subject, args.ttl))
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
