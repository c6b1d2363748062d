"""`make outdated` (scripts/outdated.py) reads every bound of the rendered project and compares
it with the newest release, here from stand-in registries served by the test (PyPI's JSON API,
Docker Hub's tag listing, GitHub's latest release): behind, inside, unknown, never a crash."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scripts import outdated

ANSWERS: dict[str, object] = {
    # PyPI: a newer major outside `<1`; a pre-release and a release without files are ignored.
    "/pypi/fastapi/json": {
        "releases": {"0.165.0": [{}], "1.0.0": [{}], "2.0.0a1": [{}], "3.0.0": []}
    },
    "/pypi/orjson/json": {"releases": {"3.10.0": [{}], "3.13.0": [{}]}},
    # Docker Hub: the newest tag of the same shape (17-alpine, not 18-bookworm or 17.2-alpine).
    "/v2/repositories/library/postgres/tags": {
        "results": [{"name": n} for n in ("16-alpine", "17-alpine", "17.2-alpine", "18-bookworm")]
    },
    "/v2/repositories/prom/prometheus/tags": {
        "results": [{"name": n} for n in ("latest", "v3.13.2", "v3.14.0")]
    },
    # GitHub: the latest release.
    "/repos/actions/checkout/releases/latest": {"tag_name": "v5.0.0"},
    "/repos/docker/build-push-action/releases/latest": {"tag_name": "v6.19.2"},
}


class Registry(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        answer = ANSWERS.get(self.path.split("?")[0])
        self.send_response(200 if answer is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(answer or {"message": "Not Found"}).encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def rows(output: str) -> dict[tuple[str, str, str], str]:
    """(kind, name, bound) -> 'newest status' from the printed table."""
    table = {}
    for line in output.splitlines()[1:]:
        fields = line.split(maxsplit=3)
        if len(fields) == 4 and fields[0] in {"python", "image", "action"}:
            table[tuple(fields[:3])] = " ".join(fields[3].split())
    return table


def test_outdated_lists_every_bound_and_which_are_behind(
    registry: str, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = ["--pypi", f"{registry}/pypi", "--docker-hub", registry, "--github-api", registry]
    assert outdated.main(urls) == 0
    table = rows(capsys.readouterr().out)

    assert table["python", "fastapi", "<1,>=0.115"] == "1.0.0 BEHIND"
    assert table["python", "orjson", "<4,>=3.10"] == "3.13.0 ok"
    assert table["image", "postgres", "16-alpine"] == "17-alpine BEHIND"
    assert table["image", "prom/prometheus", "v3.14.0"] == "v3.14.0 ok"
    assert table["action", "actions/checkout", "v4.2.2"] == "v5.0.0 BEHIND"
    assert table["action", "docker/build-push-action", "v6.19.2"] == "v6.19.2 ok"
    # A registry that does not know the name: reported, not fatal.
    assert table["python", "uvicorn", "<1,>=0.32"].startswith("unknown (HTTPError")

    # Every kind of bound the rendered project has, from each option that adds one.
    names = {(kind, name) for kind, name, _ in table}
    for expected in [
        ("python", "unleashclient"),  # feature_flags=unleash
        ("python", "pyjwt"),  # auth=jwt
        ("python", "redis"),  # cache=redis
        ("python", "pulumi-aws"),  # the Pulumi provider (infra group)
        ("python", "pytest"),  # the dev group
        ("python", "uv_build"),  # internal_packages: the client package's build backend
        ("image", "python"),  # the Dockerfile's base
        ("image", "grafana/grafana"),  # monitoring
        ("image", "unleashorg/unleash-server"),
        ("image", "valkey/valkey"),
        ("action", "pulumi/actions"),
    ]:
        assert expected in names, expected

    assert outdated.main([*urls, "--strict"]) == 1
