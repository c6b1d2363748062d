"""internal_packages=true against a real package index. pypiserver, with authentication, stands
in for CodeArtifact: only the address and the credentials differ. A stand-in `aws` CLI answers
the two calls scripts/internal_index.sh makes (the repository's endpoint, a token), so the flow
runs exactly as in CI: `make publish-client` builds and uploads the client with `uv publish`; uv
installs it from the index into a fresh venv; it is used over HTTP against the served app
(create, read, update, delete, a 404, a 503 retried); another service adds it as a dependency,
and its Dockerfile's `uv sync`, given the build secrets, installs it.

Needs pypiserver and passlib beside the test interpreter (requirements-dev.txt).
"""

import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from passlib.apache import HtpasswdFile

from scripts.release_spread import direct_dependencies
from tests.conftest import BIN_DIR, tool
from tests.monitoring_support import project as service
from tests.monitoring_support.prometheus import free_port, wait_for

CLIENT = "orders-service-client"
DOMAIN, OWNER, REPOSITORY = "my-org", "111122223333", "internal"

# `aws codeartifact ...` as scripts/internal_index.sh calls it; each call is logged.
FAKE_AWS = """#!/usr/bin/env bash
echo "$*" >> "{log}"
common="--domain {domain} --domain-owner {owner} --output text"
endpoint="codeartifact get-repository-endpoint --repository {repository} --format pypi"
token="codeartifact get-authorization-token --duration-seconds 43200"
case "$*" in
  "$endpoint --query repositoryEndpoint $common") echo "{endpoint}" ;;
  "$token --query authorizationToken $common") echo "{token}" ;;
  *) echo "aws stand-in: unexpected call: $*" >&2; exit 1 ;;
esac
"""


@dataclass(frozen=True)
class Index:
    url: str  # the upload endpoint; the simple index is url + "simple/"
    token: str
    files: Path
    aws_log: Path
    env: dict[str, str]  # what a CI job has: PATH with `aws`, the CODEARTIFACT_* variables


def run(args: list[str | Path], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    work = tmp_path_factory.mktemp("index")
    token = secrets.token_urlsafe(24)
    htpasswd = HtpasswdFile(str(work / "htpasswd"), new=True)
    htpasswd.set_password("aws", token)
    htpasswd.save()
    files = work / "packages"
    files.mkdir()
    port = free_port()
    server = subprocess.Popen(
        [
            *(tool("pypi-server"), "run", "--host", "127.0.0.1", "--port", str(port)),
            # Authentication for reads too (as CodeArtifact), nothing overwritten, and no
            # redirect to PyPI for unknown names: uv must find those on PyPI itself.
            *("--passwords", work / "htpasswd", "--authenticate", "update,download,list"),
            *("--disable-fallback", files),
        ],
        stdout=(work / "pypiserver.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"

    def up() -> bool:
        assert server.poll() is None, (work / "pypiserver.log").read_text()
        try:
            return httpx.get(f"{url}simple/", timeout=2).status_code == 401
        except httpx.TransportError:
            return False

    wait_for(up, timeout=30, what="pypiserver")
    bin_dir = work / "bin"
    bin_dir.mkdir()
    aws_log = work / "aws.log"
    fake = FAKE_AWS.format(
        log=aws_log, endpoint=url, token=token, domain=DOMAIN, owner=OWNER, repository=REPOSITORY
    )
    (bin_dir / "aws").write_text(fake)
    (bin_dir / "aws").chmod(0o755)
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(bin_dir), str(BIN_DIR), os.environ["PATH"]]),
        "CODEARTIFACT_DOMAIN": DOMAIN,
        "CODEARTIFACT_DOMAIN_OWNER": OWNER,
        "CODEARTIFACT_REPOSITORY": REPOSITORY,
    }
    for name in ("VIRTUAL_ENV", "UV_INDEX", "UV_PUBLISH_URL", "CLIENT_TAG"):
        env.pop(name, None)
    try:
        yield Index(url, token, files, aws_log, env)
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def published(bake: Callable, index: Index) -> Path:
    """The orders service, its client published as CI does on a client-v0.1.0 tag."""
    project: Path = bake({"internal_packages": True})
    result = run(["make", "publish-client"], project, {**index.env, "CLIENT_TAG": "client-v0.1.0"})
    assert result.returncode == 0, result.stdout + result.stderr
    return project


def index_env(index: Index, project: Path) -> dict[str, str]:
    """The environment `eval "$(scripts/internal_index.sh env)"` gives a shell."""
    result = run(["scripts/internal_index.sh", "env"], project, index.env)
    assert result.returncode == 0, result.stderr
    env = dict(index.env)
    for line in result.stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0]
    return env


def test_the_script_asks_aws_for_the_endpoint_and_a_token(published: Path, index: Index) -> None:
    env = index_env(index, published)
    assert env["UV_INDEX"] == f"internal={index.url}simple/"
    assert env["UV_INDEX_INTERNAL_USERNAME"] == env["UV_PUBLISH_USERNAME"] == "aws"
    assert env["UV_INDEX_INTERNAL_PASSWORD"] == env["UV_PUBLISH_PASSWORD"] == index.token
    assert env["UV_PUBLISH_URL"] == index.url
    calls = index.aws_log.read_text()
    assert "get-repository-endpoint" in calls and "get-authorization-token" in calls
    without = {k: v for k, v in index.env.items() if k != "CODEARTIFACT_DOMAIN"}
    result = run(["scripts/internal_index.sh", "env"], published, without)
    assert (result.returncode, result.stdout) == (0, ""), "no domain: PyPI only, nothing set"


def test_publish_uploads_the_wheel_and_the_sdist(published: Path, index: Index) -> None:
    names = sorted(path.name for path in index.files.iterdir())
    assert names == [
        "orders_service_client-0.1.0-py3-none-any.whl",
        "orders_service_client-0.1.0.tar.gz",
    ]


def test_publishing_a_version_twice_fails_clearly(published: Path, index: Index) -> None:
    before = {path.name: path.stat().st_mtime_ns for path in index.files.iterdir()}
    result = run(["make", "publish-client"], published, index.env)
    assert result.returncode != 0
    assert f"{CLIENT} 0.1.0 is already published; bump version in packages/" in result.stderr
    assert {path.name: path.stat().st_mtime_ns for path in index.files.iterdir()} == before


def test_a_tag_that_is_not_the_version_publishes_nothing(published: Path, index: Index) -> None:
    result = run(
        ["make", "publish-client"], published, {**index.env, "CLIENT_TAG": "client-v0.2.0"}
    )
    assert result.returncode != 0
    assert f"tag client-v0.2.0 does not match {CLIENT} 0.1.0" in result.stderr


def fresh_venv(path: Path, env: dict[str, str]) -> Path:
    result = run(
        [tool("uv"), "venv", "--quiet", "--python", sys.executable, path], path.parent, env
    )
    assert result.returncode == 0, result.stderr
    return path / "bin" / "python"


def test_the_index_refuses_installs_without_the_token(
    published: Path, index: Index, tmp_path: Path
) -> None:
    python = fresh_venv(tmp_path / "venv", index.env)
    env = {**index_env(index, published), "UV_INDEX_INTERNAL_PASSWORD": "wrong"}
    result = run([tool("uv"), "pip", "install", "--python", python, CLIENT], tmp_path, env)
    assert result.returncode != 0
    assert re.search(r"40[13] (Unauthorized|Forbidden)", result.stderr), result.stderr


# Runs in the fresh venv: the published client, blocking, against the served app.
USE_THE_CLIENT = textwrap.dedent(
    """
    import json, sys
    import httpx
    from orders_service_client import Client, ItemCreate, NotFound, Retry

    class Counting(httpx.HTTPTransport):
        tries = 0
        def handle_request(self, request):
            Counting.tries += 1
            return super().handle_request(request)

    retry = Retry(attempts=8, backoff=0.2)
    with Client(sys.argv[1], transport=Counting(), retry=retry, timeout=10) as api:
        if sys.argv[2] == "crud":
            item = api.create_item(ItemCreate(name="Widget", price="9.99"))
            assert api.get_item(item.id) == item
            item = api.update_item(item.id, {"price": "8.50"}, if_match=item.version)
            assert (str(item.price), item.version) == ("8.50", 2)
            assert item in api.list_items(limit=100).items
            api.delete_item(item.id, if_match=item.version)
            try:
                api.get_item(item.id)
            except NotFound as error:
                print(json.dumps({"status": error.status, "code": error.code, "id": item.id}))
        else:
            item = api.get_item(int(sys.argv[3]))
            print(json.dumps({"name": item.name, "tries": Counting.tries}))
    """
)


@pytest.fixture(scope="module")
def served(
    published: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, Path]]:
    """The orders service on loopback: (base URL, its database's URL, its venv's python)."""
    work = tmp_path_factory.mktemp("served")
    python = service.install(published, work / "venv")
    with service.fresh_database(python) as database_url:
        service.migrate(python, published, database_url)
        with service.serve(python, published, database_url, work / "app.log") as host:
            yield f"http://{host}", database_url, python


def set_connections(python: Path, database_url: str, allowed: bool) -> None:
    """Let the served app's database accept connections, or close them all and refuse more."""
    name = database_url.rsplit("/", 1)[1]
    admin = service.with_database(database_url, "postgres")
    service.execute_sql(
        python, admin, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}'
    )
    if not allowed:
        service.execute_sql(
            python,
            admin,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
        )


@pytest.mark.slow
def test_the_installed_client_works_against_the_served_app(
    published: Path, index: Index, served: tuple[str, str, Path], tmp_path: Path
) -> None:
    base_url, database_url, app_python = served
    python = fresh_venv(tmp_path / "venv", index.env)
    env = index_env(index, published)
    install = run([tool("uv"), "pip", "install", "--python", python, CLIENT], tmp_path, env)
    assert install.returncode == 0, install.stderr
    assert f"{CLIENT}==0.1.0" in install.stderr
    script = tmp_path / "use_client.py"
    script.write_text(USE_THE_CLIENT)

    crud = run([python, script, base_url, "crud"], tmp_path, index.env)
    assert crud.returncode == 0, crud.stderr
    assert '"status": 404, "code": "not_found"' in crud.stdout

    # A 503 retried: the database refuses connections (the app answers 503, Retry-After: 1)
    # until a timer lets it back in; the client waits and tries again until it is served.
    created = httpx.post(f"{base_url}/items", json={"name": "Gadget", "price": 2}, timeout=10)
    assert created.status_code == 201, created.text
    set_connections(app_python, database_url, allowed=False)
    refused = httpx.get(f"{base_url}/items/{created.json()['id']}", timeout=30)
    assert (refused.status_code, refused.headers.get("retry-after")) == (503, "1"), refused.text
    timer = threading.Timer(1.5, set_connections, (app_python, database_url, True))
    started = time.monotonic()
    timer.start()
    try:
        retried = run([python, script, base_url, "get", str(created.json()["id"])], tmp_path, env)
    finally:
        timer.join()
    assert retried.returncode == 0, retried.stderr
    assert '"name": "Gadget"' in retried.stdout
    tries = int(re.search(r'"tries": (\d+)', retried.stdout)[1])  # type: ignore[index]
    assert tries >= 2 and time.monotonic() - started >= 1.0, retried.stdout


def docker_sync(dockerfile: Path) -> tuple[list[str], dict[str, str], str]:
    """The builder's `uv sync` RUN: the files it binds, its secrets (id -> env), its command."""
    text = dockerfile.read_text().replace("\\\n", " ")
    run_line = next(line for line in text.splitlines() if "uv sync" in line)
    binds = re.findall(r"--mount=type=bind,source=([^,]+),target=", run_line)
    secrets_ = dict(re.findall(r"--mount=type=secret,id=([^,\s]+),env=(\S+)", run_line))
    command = re.sub(r"^RUN\s+(--mount=\S+\s+)*", "", run_line).strip()
    return binds, secrets_, command


@pytest.mark.slow
def test_another_service_depends_on_the_client_and_its_image_installs_it(
    published: Path, index: Index, bake: Callable, tmp_path: Path
) -> None:
    """As the rendered README says: `eval "$(scripts/internal_index.sh env)"`, `uv add` the
    package; the Dockerfile's sync then installs it with the index given as build secrets."""
    billing: Path = bake({"project_name": "Billing", "internal_packages": True})
    env = index_env(index, billing)
    added = run([tool("uv"), "add", "--no-sync", CLIENT], billing, env)
    assert added.returncode == 0, added.stderr
    pyproject = tomllib.loads((billing / "pyproject.toml").read_text())
    assert any(dep.startswith(CLIENT) for dep in pyproject["project"]["dependencies"])
    # uv records where the package comes from: the named index, as uv.lock does (README).
    assert pyproject["tool"]["uv"]["index"] == [{"name": "internal", "url": f"{index.url}simple/"}]

    binds, secret_envs, command = docker_sync(billing / "Dockerfile")
    assert secret_envs == {
        "uv_index": "UV_INDEX",
        "uv_index_password": "UV_INDEX_INTERNAL_PASSWORD",
    }
    context = tmp_path / "context"
    context.mkdir()
    for source in binds:
        shutil.copy(billing / source, context / source)
    build_env = {k: v for k, v in index.env.items() if not k.startswith("CODEARTIFACT_")}
    build_env |= {  # the image's uv settings, and an empty cache as on a fresh builder
        "UV_PROJECT_ENVIRONMENT": str(tmp_path / "image-venv"),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
    }
    given = {env_name: env[env_name] for env_name in secret_envs.values()}

    without = run(["bash", "-c", command], context, build_env)
    assert without.returncode != 0, "the lock's internal package needs the index's token"
    with_secrets = run(["bash", "-c", command], context, build_env | given)
    assert with_secrets.returncode == 0, with_secrets.stderr
    installed = list(
        (tmp_path / "image-venv").glob("lib/python*/site-packages/orders_service_client")
    )
    assert installed, with_secrets.stderr
    assert "orders_service_client" not in {p.name for p in context.iterdir()}


def test_ci_publishes_on_client_tags_with_the_tested_command(bake: Callable) -> None:
    """packages.yml runs the make target the tests above run, on client-v* tags only, with the
    publish role; the tag reaches the script's version check."""
    project: Path = bake({"internal_packages": True})
    workflow = yaml.safe_load((project / ".github/workflows/packages.yml").read_text())
    assert workflow[True] == {"push": {"tags": ["client-v*"]}}  # YAML's `on`
    steps = workflow["jobs"]["publish-client"]["steps"]
    publish = next(step for step in steps if "publish-client" in step.get("run", ""))
    assert publish["run"].strip() == "make publish-client"
    assert publish["env"]["CLIENT_TAG"] == "${{ github.ref_name }}"
    roles = [s["with"]["role-to-assume"] for s in steps if "configure-aws" in s.get("uses", "")]
    assert roles == ["${{ vars.AWS_PACKAGES_PUBLISH_ROLE_ARN }}"]


def test_every_image_build_passes_the_secrets_the_dockerfile_mounts(bake: Callable) -> None:
    project: Path = bake({"internal_packages": True})
    _, secret_envs, _ = docker_sync(project / "Dockerfile")
    ci = yaml.safe_load((project / ".github/workflows/ci.yml").read_text())
    app_builds = [
        step
        for job in ci["jobs"].values()
        for step in job.get("steps", [])
        if "build-push-action" in step.get("uses", "") and step["with"].get("file") == "Dockerfile"
    ]
    assert len(app_builds) == 2  # the pull request's build, and main's push
    for step in app_builds:
        given = dict(line.split("=", 1) for line in step["with"]["secrets"].splitlines())
        assert given == {id_: f"${{{{ env.{env} }}}}" for id_, env in secret_envs.items()}


def test_a_failing_aws_call_stops_install_and_publish(published: Path, index: Index) -> None:
    """No credentials, or a wrong repository name: the aws CLI's error, not a later uv error
    about a missing package (and nothing is uploaded)."""
    wrong = {**index.env, "CODEARTIFACT_REPOSITORY": "no-such-repository"}
    before = sorted(path.name for path in index.files.iterdir())
    for target in ("install", "publish-client"):
        result = run(["make", target], published, wrong)
        assert result.returncode != 0, target
        assert "aws stand-in: unexpected call" in result.stderr, result.stderr
    assert sorted(path.name for path in index.files.iterdir()) == before


def test_the_newest_releases_job_leaves_the_workspace_package_alone(bake: Callable) -> None:
    """scripts/release_spread.py --newest upgrades every direct dependency from PyPI: not the
    client, which is this workspace's (PyPI may hold somebody else's project of that name)."""
    names = direct_dependencies(bake({"internal_packages": True}))
    assert CLIENT not in names
    assert {"fastapi", "httpx", "pytest"} <= set(names)
