"""Level 2 for the infrastructure: the rendered Pulumi program's own tests (mocks, per-component
and policy tests over every resource) pass for the variants the issue names, in this venv:
pulumi and pulumi-aws are installed once and shared by every rendered project."""

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import variant_id

INFRA_VARIANTS: list[dict[str, object]] = [
    {},
    {
        "database": "rds",
        "use_fargate_spot": True,
        "nat_gateway": "none",
        "domain_name": "api.example.com",
        "use_waf": True,
        "alert_email": "ops@example.com",
    },
    {"database": "ecs_efs", "nat_gateway": "one_per_az", "autoscaling": False},
    {"database": "ecs_efs"},
    {"use_fargate_spot": False},
    {"nat_gateway": "one_per_az"},
    {"nat_gateway": "none"},
    {"autoscaling": False},
    {"domain_name": "api.example.com"},
    {"use_waf": True},
    {"alert_email": "ops@example.com", "monthly_budget_usd": "500"},
    {"monitoring": "none"},
]


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
