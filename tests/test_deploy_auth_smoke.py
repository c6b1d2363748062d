"""deploy.yml's "Authentication smoke test" (auth=jwt), run as the runner runs it (bash -eo
pipefail) with the real curl and jq against a local stand-in for the deployed stack: the
service (401 without a token, 200 with the issuer's) and the issuer's token endpoint (client
credentials, HTTP Basic). `pulumi` and `aws` are stand-ins that answer the stack's outputs and
the client's secret."""

import base64
import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from tests.test_deploy_follow import executable, run_step, step_script

STEP = "Authentication smoke test"
CLIENT_ID, CLIENT_SECRET, TOKEN = "client-abc", "s3cret-value-xyz", "access-token-123"
SCOPE = "orders-service/items:read"

pytestmark = pytest.mark.skipif(
    shutil.which("jq") is None or shutil.which("curl") is None, reason="needs jq and curl"
)


class Stack:
    """The deployed service and its issuer's token endpoint, on one local port."""

    def __init__(self) -> None:
        self.open_items = False  # a service that forgot its tokens
        self.requests: list[str] = []
        stack = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stack.requests.append(f"GET {self.path}")
                authorized = self.headers.get("Authorization") == f"Bearer {TOKEN}"
                self.answer(200 if authorized or stack.open_items else 401, b"{}")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = parse_qs(self.rfile.read(length).decode())
                stack.requests.append(f"POST {self.path} {sorted(form.items())}")
                basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
                good = (
                    self.path == "/oauth2/token"
                    and self.headers.get("Authorization") == f"Basic {basic}"
                    and form == {"grant_type": ["client_credentials"], "scope": [SCOPE]}
                )
                body = {"access_token": TOKEN, "token_type": "Bearer"} if good else {}
                self.answer(200 if good else 400, json.dumps(body).encode())

            def answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def stack() -> Iterator[Stack]:
    served = Stack()
    yield served
    served.server.shutdown()


@pytest.fixture
def smoke(
    bake: Callable, tmp_path: Path, stack: Stack
) -> Callable[..., subprocess.CompletedProcess[str]]:
    script = step_script(bake({"auth": "jwt"}), STEP)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    secret = json.dumps({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    executable(
        bin_dir / "aws",
        f"#!/bin/sh\necho \"$*\" >> {bin_dir}/aws.log\ncat <<'EOF'\n{secret}\nEOF\n",
    )

    def run(outputs: dict[str, str]) -> subprocess.CompletedProcess[str]:
        # `pulumi stack output <name> --stack prod`: the value, or exit 1 as for a missing one.
        cases = "".join(f'  {name}) echo "{value}" ;;\n' for name, value in outputs.items())
        executable(
            bin_dir / "pulumi",
            f'#!/bin/sh\ncase "$3" in\n{cases}  *) echo "no output $3" >&2; exit 1 ;;\nesac\n',
        )
        return run_step(script, bin_dir, STACK="prod", URL=stack.url)

    return run


def cognito_outputs(stack: Stack) -> dict[str, str]:
    return {
        "auth_client_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:m2m",
        "auth_scope_prefix": "orders-service/",
        "auth_token_url": f"{stack.url}/oauth2/token",
    }


def test_a_cognito_stack_refuses_no_token_and_serves_the_issuers(smoke, stack: Stack) -> None:
    result = smoke(cognito_outputs(stack))
    assert result.returncode == 0, result.stdout + result.stderr
    assert stack.requests == [
        "GET /items",
        f"POST /oauth2/token [('grant_type', ['client_credentials']), ('scope', ['{SCOPE}'])]",
        "GET /items?limit=1",
    ]
    # The runner masks what follows ::add-mask::; nothing prints the secret or the token before.
    output = result.stdout + result.stderr
    for value in (CLIENT_SECRET, TOKEN):
        assert output.count(value) == 1 and f"::add-mask::{value}" in output


def test_a_service_that_answers_without_a_token_fails_the_deploy(smoke, stack: Stack) -> None:
    stack.open_items = True
    result = smoke(cognito_outputs(stack))
    assert result.returncode == 1
    assert "without a token answered 200, not 401" in result.stdout
    assert stack.requests == ["GET /items"]


def test_credentials_the_issuer_refuses_fail_the_deploy(smoke, stack: Stack) -> None:
    outputs = cognito_outputs(stack) | {"auth_scope_prefix": "another-api/"}
    result = smoke(outputs)
    assert result.returncode != 0
    assert not any(request.startswith("GET /items?") for request in stack.requests)


def test_an_external_issuer_stack_stops_after_the_401(smoke, stack: Stack, tmp_path: Path) -> None:
    result = smoke({"auth_client_secret_arn": "", "auth_scope_prefix": "", "auth_token_url": ""})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "external issuer" in result.stdout
    assert stack.requests == ["GET /items"]
    assert not (tmp_path / "bin" / "aws.log").exists()
