"""`make migration-compat`: does the previous release still work on this checkout's schema?

A deploy runs the new migrations before the new app serves, and the previous app keeps serving
meanwhile (the rollout, or a blue/green deploy's bake time; a rollback serves it again for
good). So every migration must be backward compatible: expand now, contract a release later
(infra/README.md, "Deployments"). This check migrates a fresh database with this checkout's
migrations, serves the previous commit's app on it, and runs that app's own end-to-end suite
(tests/e2e) against it. Exit code 0: compatible.

The previous commit is PREVIOUS (a git ref) if set, else the merge base with origin/main when
this checkout is not on it, else HEAD~1. The database server is DATABASE_URL's if set, else a
throwaway local PostgreSQL. The previous app runs with this checkout's dependencies.
"""

import argparse
import io
import os
{%- if cookiecutter.auth == "jwt" %}
import secrets
{%- endif %}
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
from sqlalchemy.engine import URL, make_url

from scripts.local_postgres import create_database, drop_database, local_server


def git(*args: str) -> str:
    result = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LookupError(result.stderr.strip() or f"git {' '.join(args)} failed")
    return result.stdout.strip()


def previous_commit(explicit: str | None) -> str | None:
    """The commit whose app must keep working, or None when there is none (a first commit)."""
    if explicit:
        return git("rev-parse", "--verify", explicit + "^{commit}")
    head = git("rev-parse", "HEAD")
    try:
        base = git("merge-base", "HEAD", "origin/main")
        if base != head:
            return base
    except LookupError:
        pass  # no origin/main: a local repository
    try:
        return git("rev-parse", "--verify", "HEAD~1^{commit}")
    except LookupError:
        return None


def migrations_changed(commit: str) -> bool:
    """Whether the migrations differ between `commit` and the working tree (new files too)."""
    changed = subprocess.run(["git", "diff", "--quiet", commit, "--", "migrations"], check=False)
    untracked = git("ls-files", "--others", "--exclude-standard", "migrations")
    return changed.returncode != 0 or bool(untracked)


def export(commit: str, into: Path) -> None:
    archive = subprocess.run(["git", "archive", commit], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


@contextmanager
def fresh_database(stack: ExitStack, work: Path) -> Iterator[str]:
    configured = os.environ.get("DATABASE_URL")
    if configured:
        server = make_url(configured)
    else:
        server = stack.enter_context(local_server(work / "postgres", keep_data=False))
    name = f"compat_{uuid.uuid4().hex[:12]}"
    url: URL = create_database(server, name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        drop_database(server, name)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_ready(base_url: str, process: "subprocess.Popen[bytes]", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the previous app exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the previous app was not ready within {timeout:.0f} s")


def check(commit: str, env: dict[str, str]) -> int:
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="migration-compat-")))
        previous = work / "previous"
        export(commit, previous)
        database_url = stack.enter_context(fresh_database(stack, work))
        env = {**env, "DATABASE_URL": database_url, "ACCESS_LOG": "false"}
{%- if cookiecutter.auth == "jwt" %}
        # The previous app trusts a key of this check's own; its e2e suite signs with it.
        env.update(AUTH_DEV_KEY=secrets.token_urlsafe(32), ENVIRONMENT="development")
        for variable in ("AUTH_ISSUER", "AUTH_TOKEN_URL"):
            env.pop(variable, None)
{%- endif %}
        env.pop("VIRTUAL_ENV", None)
        python = sys.executable
        upgrade = [python, "-m", "alembic", "upgrade", "head"]
        migrated = subprocess.run(upgrade, env=env, check=False)
        if migrated.returncode != 0:
            print("migration-compat: this checkout's migrations fail on a fresh database")
            return migrated.returncode
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        server = [python, "-m", "uvicorn", "app.main:create_app", "--factory", "--port", str(port)]
        log = (work / "previous-app.log").open("wb")
        process = subprocess.Popen(server, cwd=previous, env=env, stdout=log, stderr=log)
        stack.callback(process.wait, timeout=30)
        stack.callback(process.terminate)
        try:
            wait_ready(base_url, process)
        except RuntimeError as error:
            print(f"migration-compat: {error}:\n{(work / 'previous-app.log').read_text()[-3000:]}")
            return 1
        suite = [python, "-m", "pytest", "tests/e2e", "-m", "e2e", "-q", "-p", "no:cacheprovider"]
        tested = subprocess.run(suite, cwd=previous, env={**env, "BASE_URL": base_url}, check=False)
        if tested.returncode != 0:
            print(
                f"migration-compat: the app of {commit[:12]} fails on this checkout's schema. "
                "Make the migration backward compatible (expand now, contract in a later "
                "release: infra/README.md, Deployments)."
            )
            return 1
        print(f"migration-compat: the app of {commit[:12]} works on this checkout's schema")
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.migration_compat", description=__doc__)
    parser.add_argument("--previous", default=os.environ.get("PREVIOUS"), help="a git ref")
    args = parser.parse_args(argv)
    try:
        commit = previous_commit(args.previous)
    except LookupError as error:
        parser.error(f"--previous {args.previous!r}: {error}")
    if commit is None:
        print("migration-compat: no previous commit, nothing to check")
        return 0
    if not migrations_changed(commit):
        print(f"migration-compat: no migration changed since {commit[:12]}, nothing to check")
        return 0
    return check(commit, dict(os.environ))


if __name__ == "__main__":
    sys.exit(main())
