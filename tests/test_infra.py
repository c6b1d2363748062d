"""Level 2 for the infrastructure: the rendered Pulumi program's own tests (mocks, per-component
and policy tests over every resource) pass for the variants the issue names, in this venv:
pulumi and pulumi-aws are installed once and shared by every rendered project."""

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import variant_id
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


@pytest.mark.parametrize("database", ["rds", "ecs_efs"])
def test_rds_credentials_come_only_with_rds(bake: Callable, database: str) -> None:
    """The RDS CA bundle in the image, botocore for IAM tokens and their test: rds only."""
    project = bake({"database": database})
    rds = database == "rds"
    assert ("global-bundle.pem" in (project / "Dockerfile").read_text()) is rds
    assert ('"botocore>=' in (project / "pyproject.toml").read_text()) is rds
    assert (project / "tests" / "test_rds_iam.py").exists() is rds
