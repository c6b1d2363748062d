"""Security defaults of the rendered default project, checked: a non-root image with no secrets
in its context, generated secrets that live only in .env, CORS closed and security headers on
the served app, bandit on app/, a dependency audit in CI, checkov on Dockerfiles and workflows.

Covered elsewhere (tests/test_infra.py runs the rendered infra's own policy tests): no
plaintext secret in task definitions, Prometheus not public, no world-open security group.
"""

import json
import re
import subprocess
from pathlib import Path

import httpx
import pytest
from reliability_support.fixtures import database, make_app, postgres, project, python  # noqa: F401

from tests.conftest import tool

SECRET_KEYS = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$")
LEAKS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def rendered_files(root: Path) -> list[Path]:
    skip = {".venv", "__pycache__", ".git"}
    return [p for p in root.rglob("*") if p.is_file() and not skip.intersection(p.parts)]


def env_secrets(root: Path) -> dict[str, str]:
    values = {}
    for line in (root / ".env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#") and SECRET_KEYS.search(key.strip()):
            values[key.strip()] = value.strip().strip("'\"")
    return values


def test_image_runs_as_a_numeric_non_root_user(project: Path):  # noqa: F811
    stages = re.split(r"(?m)^FROM\s", (project / "Dockerfile").read_text())
    users = re.findall(r"(?m)^USER\s+(\S+)", stages[-1])
    assert users, "the runtime stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]}: want a numeric non-root uid"


def test_build_context_leaves_out_env_and_secrets(project: Path):  # noqa: F811
    ignored = (project / ".dockerignore").read_text().split()
    assert ".env" in ignored


def test_generated_secrets_live_only_in_dotenv(project: Path):  # noqa: F811
    secrets = env_secrets(project)
    assert "GRAFANA_ADMIN_PASSWORD" in secrets and "POSTGRES_PASSWORD" in secrets, secrets.keys()
    for key, value in secrets.items():
        assert len(value) >= 16 and value.lower() not in {"change-me", "changeme"}, key
    for path in rendered_files(project):
        if path.name == ".env":
            continue
        text = path.read_text(errors="replace")
        for key, value in secrets.items():
            assert value not in text, f"{key}'s generated value is also in {path}"
        for what, pattern in LEAKS.items():
            assert not pattern.search(text), f"a {what} in {path}"


def test_compose_requires_the_grafana_password(project: Path):  # noqa: F811
    compose = (project / "docker-compose.yml").read_text()
    assert re.search(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]*\}", compose), "compose has a default"


def test_bandit_finds_nothing_in_app(project: Path):  # noqa: F811
    result = subprocess.run(
        [tool("bandit"), "-r", "app", "-q", "-f", "json"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(result.stdout)
    assert report["results"] == [], json.dumps(report["results"], indent=1)[:4000]


def test_ci_audits_dependencies(project: Path):  # noqa: F811
    ci = (project / ".github" / "workflows" / "ci.yml").read_text()
    assert re.search(r"pip-audit|uv audit|osv-scanner|safety check", ci), (
        "the rendered CI has no dependency audit step (pip-audit or equivalent)"
    )


# checkov pins packaging<24 while pulumi-aws needs >=24, so it runs in its own uv-managed env.
CHECKOV = [tool("uvx"), "--from", "checkov==3.3.30", "checkov"]


def test_checkov_passes_on_dockerfiles_and_workflows(project: Path):  # noqa: F811
    """Zero failed checks; a check skipped in a file carries its reason there
    (`# checkov:skip=CKV_...: why`), which checkov reports."""
    result = subprocess.run(
        [
            *CHECKOV,
            "--directory",
            ".",
            "--framework",
            "dockerfile,github_actions",
            "--skip-download",
            "--quiet",
            "--compact",
            "--output",
            "json",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    reports = json.loads(result.stdout)
    failed = [
        f"{check['check_id']} {check['file_path']}:{check['file_line_range']} {check['check_name']}"
        for report in (reports if isinstance(reports, list) else [reports])
        for check in report.get("results", {}).get("failed_checks", [])
    ]
    skipped = [
        check
        for report in (reports if isinstance(reports, list) else [reports])
        for check in report.get("results", {}).get("skipped_checks", [])
    ]
    assert not failed, "\n".join(failed)
    for check in skipped:
        assert (check.get("check_result", {}).get("suppress_comment") or "").strip(), check


@pytest.fixture(scope="module")
def app(python, project, postgres, tmp_path_factory):  # noqa: F811
    from reliability_support.app import prepare_database, serve

    url = prepare_database(python, project, postgres, "security")
    with serve(python, project, url, tmp_path_factory.mktemp("sec") / "app.log") as served:
        yield served


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/health"), ("GET", "/items/1"), ("GET", "/items?limit=0")]
)
def test_cors_closed_and_security_headers_on_every_answer(app, method: str, path: str):
    origin = {"Origin": "https://evil.example"}
    response = httpx.request(method, f"{app.url}{path}", headers=origin, timeout=10)
    assert "access-control-allow-origin" not in response.headers
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (response.status_code, name)
    assert "server" not in response.headers  # the production command does not advertise uvicorn
    preflight = httpx.options(
        f"{app.url}{path}",
        headers={**origin, "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code < 500
