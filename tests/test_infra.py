"""Level 2 for the infrastructure: the rendered Pulumi program's own tests (mocks, per-component
and policy tests over every resource) pass for the variants the issue names, in this venv:
pulumi and pulumi-aws are installed once and shared by every rendered project."""

import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIN_DIR, variant_id
from tests.test_generation import SUPPORTED_COMBINATIONS

INFRA_OPTIONS = {
    "database",
    "use_fargate_spot",
    "nat_gateway",
    "autoscaling",
    "min_tasks",
    "max_tasks",
    "domain_name",
    "use_waf",
    "alert_email",
    "monthly_budget_usd",
    "monitoring",
    "cache",
    "deployment_strategy",
    "feature_flags",
    "auth",
    "internal_packages",
}
# The defaults, each infrastructure option alone, and the combinations the issue names: every
# supported variant that changes what the Pulumi program declares.
INFRA_VARIANTS = [{}] + [c for c in SUPPORTED_COMBINATIONS if INFRA_OPTIONS & set(c)]


@pytest.mark.parametrize("context", INFRA_VARIANTS, ids=variant_id)
def test_rendered_infra_suite_passes(bake: Callable, context: dict) -> None:
    project: Path = bake(context)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "infra/tests", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert " passed" in result.stdout


@pytest.mark.parametrize(
    ("context", "expected", "absent"),
    [
        ({"database": "rds"}, "database_rds.py", "database_efs.py"),
        ({"database": "ecs_efs"}, "database_efs.py", "database_rds.py"),
    ],
)
def test_only_the_chosen_database_is_rendered(
    bake: Callable, context: dict, expected: str, absent: str
) -> None:
    components = bake(context) / "infra" / "components"
    assert (components / expected).exists()
    assert not (components / absent).exists()


# What Pulumi's Python language host runs to find the program's provider plugins (pulumi/pulumi,
# sdk/python/cmd/pulumi-language-python/main.go, listPulumiPackageInfos): the toolchain lists the
# packages (sdk/python/toolchain/<toolchain>.go, ListPackages), then this script runs in the venv
# through the toolchain's Command and finds each package's pulumi-plugin.json.
PLUGIN_JSON_PATHS_SCRIPT = """import importlib.metadata, importlib.util, os, sys, json
result = {}
for pkg_name in sys.argv[1:]:
    try:
        dist = importlib.metadata.distribution(pkg_name)
        module = dist.metadata['Name'].replace('-', '_')
        spec = importlib.util.find_spec(module)
        locs = list(spec.submodule_search_locations or []) if spec else []
        found = [p for l in locs for p in [os.path.join(str(l), 'pulumi-plugin.json')] if os.path.isfile(p)]
        result[pkg_name] = found[0] if found else ''
    except Exception:
        result[pkg_name] = ''
print(json.dumps(result))"""  # noqa: E501 - Pulumi's script, verbatim


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"`{' '.join(args)}` failed:\n{result.stdout}{result.stderr}"
    return result.stdout


def _list_packages(toolchain: str, project: Path, venv: Path, env: dict[str, str]) -> list[str]:
    """The packages the declared toolchain reports, by the command that toolchain runs."""
    if toolchain == "pip":  # pip.go: `python -m pip list --format json`
        listed = _run(
            [str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
            project / "infra",
            env,
        )
        return [package["name"] for package in json.loads(listed)]
    if toolchain == "uv":  # uv.go: Command first runs `uv sync --inexact`; packages from uv.lock
        _run(
            ["uv", "sync", "--inexact"],
            project / "infra",
            {**env, "UV_PROJECT_ENVIRONMENT": str(venv)},
        )
        lock = tomllib.loads((project / "uv.lock").read_text())
        return [p["name"] for p in lock["package"] if "virtual" not in p.get("source", {})]
    raise AssertionError(f"teach this test what Pulumi's {toolchain!r} toolchain runs")


@pytest.mark.slow
def test_pulumi_finds_the_aws_plugin_in_the_venv_the_readme_tells_teams_to_make(
    bake: Callable,
) -> None:
    """The venv made by the make target infra/README.md names, read by the toolchain Pulumi.yaml
    declares, yields the aws provider plugin and imports the program's packages."""
    project = bake({})
    readme = (project / "infra" / "README.md").read_text()
    step = readme[readme.index("**Tools and credentials**") :].split("\n2. ")[0]
    target = re.findall(r"`make ([a-z-]+)`", step)[0]
    env = {**os.environ, "PATH": f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}"}
    env.pop("VIRTUAL_ENV", None)
    _run(["make", target], project, env)

    options = yaml.safe_load((project / "infra" / "Pulumi.yaml").read_text())["runtime"]["options"]
    venv_option = options.get("virtualenv")
    venv = (project / "infra" / venv_option).resolve() if venv_option else project / ".venv"
    packages = _list_packages(options["toolchain"], project, venv, env)
    python = str(venv / "bin" / "python")
    paths = json.loads(_run([python, "-c", PLUGIN_JSON_PATHS_SCRIPT, *packages], project, env))
    plugins = {
        json.loads(Path(path).read_text()).get("name")
        for path in paths.values()
        if path and json.loads(Path(path).read_text()).get("resource")
    }
    assert "aws" in plugins, f"no aws plugin among {sorted(paths)}"
    _run([python, "-c", "import pulumi, pulumi_aws"], project / "infra", env)


def test_infra_readme_names_only_make_targets_that_exist(bake: Callable) -> None:
    project = bake({})
    targets = set(re.findall(r"^([a-z-]+):", (project / "Makefile").read_text(), re.MULTILINE))
    # Commands are quoted: `make infra-install` (prose such as "may make ..." is not one).
    named = set(re.findall(r"`make ([a-z][a-z-]+)", (project / "infra/README.md").read_text()))
    assert named <= targets, f"infra/README.md names missing make targets: {named - targets}"
    recipe = (project / "Makefile").read_text().split("\ninfra-install:")[1].split("\n\n")[0]
    assert "--group infra" in recipe, "make infra-install must install the infra group"


@pytest.mark.parametrize("database", ["rds", "ecs_efs"])
def test_rds_credentials_come_only_with_rds(bake: Callable, database: str) -> None:
    """The RDS CA bundle in the image, botocore for IAM tokens and their test: rds only."""
    project = bake({"database": database})
    rds = database == "rds"
    assert ("global-bundle.pem" in (project / "Dockerfile").read_text()) is rds
    assert ('"botocore>=' in (project / "pyproject.toml").read_text()) is rds
    assert (project / "tests" / "test_rds_iam.py").exists() is rds
