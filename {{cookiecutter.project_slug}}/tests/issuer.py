"""A real OIDC issuer in the test process: discovery and JWKS over HTTP, RS256 and ES256 keys it
signs tokens with, keys it can rotate or drop, a switch that makes it unreachable, and a token
endpoint for one client (the client credentials grant, as Cognito's)."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

AUDIENCE = "{{ cookiecutter.project_slug }}"
CLIENT_ID, CLIENT_SECRET = "e2e-client", "e2e-client-secret"


def new_key(algorithm: str) -> Any:
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


class Issuer:
    """Serves /.well-known/openid-configuration and /jwks.json on 127.0.0.1."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[str, Any]] = {}  # kid -> (algorithm, private key)
        self.up = True
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.add_key("RS256")
        self.add_key("ES256")
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with issuer.lock:
                    issuer.requests.append(self.path)
                if not issuer.up:
                    self.send_response(503)
                    self.end_headers()
                    return
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks.json"}
                elif self.path == "/jwks.json":
                    body = issuer.jwks()
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.answer(200, body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = parse_qs(self.rfile.read(length).decode())
                credentials = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
                if self.path != "/oauth2/token" or form.get("grant_type") != ["client_credentials"]:
                    self.answer(400, {"error": "unsupported_grant_type"})
                elif self.headers.get("Authorization") != f"Basic {credentials}":
                    self.answer(400, {"error": "invalid_client"})
                else:
                    scopes = form.get("scope", [""])[0].split()
                    token = issuer.token(scopes, aud=None, client_id=CLIENT_ID, sub=CLIENT_ID)
                    self.answer(200, {"access_token": token, "token_type": "Bearer"})

            def answer(self, status: int, body: dict[str, Any]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def add_key(self, algorithm: str) -> str:
        kid = f"{algorithm.lower()}-{uuid.uuid4().hex[:8]}"
        with self.lock:
            self.keys[kid] = (algorithm, new_key(algorithm))
        return kid

    def remove_key(self, kid: str) -> None:
        with self.lock:
            del self.keys[kid]

    def kid(self, algorithm: str) -> str:
        """The first key id of an algorithm ("RS256"; "RS" will do)."""
        return next(kid for kid, (alg, _) in self.keys.items() if alg.startswith(algorithm))

    def jwks(self) -> dict[str, Any]:
        with self.lock:
            keys = list(self.keys.items())
        entries = []
        for kid, (algorithm, private) in keys:
            public = private.public_key()
            if algorithm == "RS256":
                entry = jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True)
            else:
                entry = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
            entries.append({**entry, "kid": kid, "use": "sig", "alg": algorithm})
        return {"keys": entries}

    def token(
        self,
        scopes: list[str],
        *,
        algorithm: str = "RS256",
        kid: str | None = None,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A token signed by one of the issuer's keys; `claims` override or (None) remove."""
        kid = kid or self.kid(algorithm)
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.url,
            "sub": "client-1",
            "aud": AUDIENCE,
            "scope": " ".join(scopes),
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
        }
        body.update(claims)
        body = {name: value for name, value in body.items() if value is not None}
        _, private = self.keys[kid]
        header = {"kid": kid, **(headers or {})}
        return jwt.encode(body, private, algorithm=algorithm, headers=header)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
