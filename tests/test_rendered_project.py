"""Level 2: a rendered project, installed into its own fresh venv, passes its own lint and tests
on a real PostgreSQL: the embedded default, and the server of TEST_DATABASE_URL when given."""

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from scripts.release_spread import REPORT, SHOWN
from tests.conftest import BIN_DIR, variant_id

# The variants whose own suites run here: the defaults, then each runtime option turned on
# (an option's tests only exist in the projects that have it).
RENDERED_VARIANTS: list[dict[str, object]] = [
    {},
    {"cache": "redis"},
    {"feature_flags": "unleash"},
    {"auth": "jwt"},
    {"internal_packages": True},
]


def make(project: Path, target: str, **env: str) -> None:
    environment = {**os.environ, "PATH": f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}", **env}
    environment.pop("VIRTUAL_ENV", None)  # the project's own .venv, not the template's
    result = subprocess.run(
        ["make", target],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    output = (result.stdout + result.stderr)[-8000:]
    assert result.returncode == 0, f"make {target} failed:\n{output}"


@pytest.fixture(scope="module", params=RENDERED_VARIANTS, ids=variant_id)
def project(request: pytest.FixtureRequest, bake: Callable) -> Path:
    rendered = bake(request.param)
    make(rendered, "install")
    assert (rendered / "uv.lock").exists(), "make install creates the lock to commit"
    return rendered


@pytest.mark.slow
def test_lint_passes(project: Path) -> None:
    make(project, "lint")


@pytest.mark.slow
def test_suite_passes_on_a_throwaway_server(project: Path) -> None:
    make(project, "test", TEST_DATABASE_URL="")


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="TEST_DATABASE_URL unset")
def test_suite_passes_on_the_given_server(project: Path) -> None:
    make(project, "test", TEST_DATABASE_URL=os.environ["TEST_DATABASE_URL"])


@pytest.mark.slow
def test_the_fast_paths_serve_on_the_locked_releases(project: Path) -> None:
    """What scripts/release_spread.py (the weekly newest-releases job) reports about each fast
    path, here on the releases `make install` locked: every one serves, none fell back."""
    python = project / ".venv" / "bin" / "python"
    result = subprocess.run(
        [str(python), "-c", REPORT % (SHOWN,)],
        cwd=project,
        env={**os.environ, "LOG_LEVEL": "ERROR"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.splitlines()[-1])
    fast_paths = {key: value for key, value in report.items() if key != "versions"}
    expected = ["routing", "metrics"] + (["flags"] if (project / "app/flags.py").exists() else [])
    assert fast_paths == dict.fromkeys(expected, "fast")
