"""Level 1: every supported variant renders clean, complete, linted and parseable; every bad
answer fails in the pre-gen hook with a message naming the field, leaving nothing behind."""

import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import yaml
from cookiecutter.exceptions import FailedHookException

from tests.conftest import answers_for, load_hook, tool, variant_id
from tests.test_monitoring import check_ecs_config, rule_files, rule_test_files, run_promtool

SUPPORTED_COMBINATIONS: list[dict[str, object]] = [
    {},
    {"python_version": "3.11"},
    {"python_version": "3.13"},
    {"python_version": "3.14"},
    {"license": "Apache-2.0"},
    {"license": "BSD-3-Clause"},
    {"license": "Proprietary"},
    {"aws_region": "ap-southeast-7"},
    {"monitoring": "none"},
    {"cache": "redis"},
    {"cache": "redis", "monitoring": "none"},
    {"cache": "redis", "database": "ecs_efs", "nat_gateway": "none", "autoscaling": False},
    {"deployment_strategy": "blue_green"},
    {"feature_flags": "unleash"},
    {"feature_flags": "unleash", "cache": "redis", "monitoring": "none"},
    {"auth": "jwt"},
    {"auth": "jwt", "cache": "redis", "feature_flags": "unleash", "deployment_strategy": "canary"},
    {"auth": "jwt", "database": "ecs_efs", "monitoring": "none", "domain_name": "api.example.com"},
    {"deployment_strategy": "canary", "monitoring": "none", "domain_name": "api.example.com"},
    {"internal_packages": True},
    {"internal_packages": True, "auth": "jwt", "cache": "redis", "python_version": "3.11"},
    # The infrastructure options, each alone against the defaults, then together.
    {"database": "ecs_efs"},
    {"use_fargate_spot": False},
    {"nat_gateway": "one_per_az"},
    {"nat_gateway": "none"},
    {"autoscaling": False},
    {"min_tasks": "1", "max_tasks": "1"},
    {"domain_name": "api.example.com"},
    {"use_waf": True},
    {"alert_email": "ops@example.com", "monthly_budget_usd": "500"},
    {
        "database": "rds",
        "use_fargate_spot": True,
        "nat_gateway": "none",
        "domain_name": "api.example.com",
        "use_waf": True,
        "alert_email": "ops@example.com",
    },
    {"database": "ecs_efs", "nat_gateway": "one_per_az", "autoscaling": False},
    {
        "database": "ecs_efs",
        "use_fargate_spot": False,
        "nat_gateway": "none",
        "autoscaling": False,
        "monitoring": "none",
        "min_tasks": "3",
        "max_tasks": "3",
    },
    {"project_name": "Zürich Café Bestellungen"},
    {"project_name": "Billing", "project_slug": "billing-api-eu-west"},
    {
        # Answers are Jinja to cookiecutter itself, so `{{` cannot be tried; quoting can.
        "project_name": 'Quote "Service" \\ # [x]',
        "project_slug": "quote-service",
        "description": "Says \"hi\" & <b>bye</b>; $(whoami) `id` 'single' \\n # ${HOME}",
        "author_name": 'Seán O\'Brien "Dev"',
    },
]

# Every file a rendered project has whatever the options (more come with each feature).
CORE_FILES = {
    ".dockerignore",
    ".env",
    ".env.example",
    ".gitignore",
    ".pre-commit-config.yaml",
    "Dockerfile",
    "LICENSE",
    "Makefile",
    "README.md",
    "alembic.ini",
    "app/__init__.py",
    "app/api/health.py",
    "app/api/items.py",
    "app/config.py",
    "app/database.py",
    "app/errors.py",
    "app/log.py",
    "app/main.py",
    "app/metrics.py",
    "app/middleware.py",
    "app/models.py",
    "app/repository.py",
    "app/routing.py",
    "app/schemas.py",
    "docker-compose.yml",
    "migrations/env.py",
    "migrations/script.py.mako",
    "pyproject.toml",
    "scripts/dev.py",
    "scripts/local_postgres.py",
    "tests/conftest.py",
}

LEFTOVER = re.compile(r"\{\{\s*cookiecutter|\{%|%\}")

post_gen = load_hook("post_gen_project")

variants = pytest.mark.parametrize("context", SUPPORTED_COMBINATIONS, ids=variant_id)


def files_of(project: Path) -> list[Path]:
    return sorted(p for p in project.rglob("*") if p.is_file())


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


@variants
def test_no_template_leftovers_or_blank_line_debris(bake: Callable, context: dict) -> None:
    for path in files_of(bake(context)):
        text = path.read_text(errors="replace")
        assert not LEFTOVER.search(text), f"template syntax left in {path}"
        assert "\n\n\n\n" not in text, f"blank-line debris in {path}"
        if path.suffix == ".md":  # a false branch must not glue a heading to the line above
            assert not re.search(r"[^\n]\n#+ ", text), f"heading without blank line in {path}"


@variants
def test_expected_files_present_and_pruned_ones_absent(bake: Callable, context: dict) -> None:
    project = bake(context)
    files = {str(p.relative_to(project)) for p in files_of(project)}
    assert files >= CORE_FILES
    for pruned in post_gen.paths_to_prune(answers_for(context)):
        assert not (project / pruned).exists(), pruned
    assert "uv.lock" not in files, "a lock file records the package index; the team creates it"


@variants
def test_env_has_fresh_secrets_and_is_private(bake: Callable, context: dict) -> None:
    env = (bake(context) / ".env").read_text()
    assert "=change-me" not in env
    assert (bake(context) / ".env").stat().st_mode & 0o077 == 0


@variants
def test_python_passes_ruff(bake: Callable, context: dict) -> None:
    project = bake(context)
    for command in (["check", "."], ["format", "--check", "."]):
        result = run([tool("ruff"), *command], project)
        assert result.returncode == 0, result.stdout + result.stderr


@variants
def test_structured_files_parse(bake: Callable, context: dict) -> None:
    parsers: Mapping[str, Callable[[str], object]] = {
        ".json": json.loads,
        ".toml": tomllib.loads,
        ".yml": yaml.safe_load,
        ".yaml": yaml.safe_load,
    }
    checked = 0
    for path in files_of(bake(context)):
        if parse := parsers.get(path.suffix):
            parse(path.read_text())
            checked += 1
    assert checked >= 3


@variants
def test_dockerfiles_pass_hadolint(bake: Callable, context: dict) -> None:
    project = bake(context)
    dockerfiles = list(project.rglob("Dockerfile"))
    assert dockerfiles
    for dockerfile in dockerfiles:
        result = run([tool("hadolint"), "--no-color", str(dockerfile)], project)
        assert result.returncode == 0, f"{dockerfile}:\n{result.stdout}{result.stderr}"


@variants
def test_compose_is_valid_and_self_consistent(bake: Callable, context: dict) -> None:
    project = bake(context)
    compose_file = project / "docker-compose.yml"
    result = run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(compose_file)],
        project,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    problems = compose_cross_reference_problems(project, yaml.safe_load(compose_file.read_text()))
    assert problems == []


def test_the_compose_unleash_seed_creates_the_flags_the_code_asks_for(bake: Callable) -> None:
    project = bake({"feature_flags": "unleash"})
    flags = re.search(
        r"DEFAULTS: dict\[str, bool\] = \{(.*?)\n\}",
        (project / "app" / "flags.py").read_text(),
        re.S,
    )
    assert flags, "DEFAULTS not found in app/flags.py"
    names = set(re.findall(r'^    "([a-z0-9-]+)":', flags[1], re.M))
    compose = yaml.safe_load((project / "docker-compose.yml").read_text())
    seed = " ".join(compose["services"]["unleash-seed"]["command"])
    assert names and names == set(re.findall(r'"name": "([a-z0-9-]+)"', seed)) - {"default"}
    app = compose["services"]["app"]
    assert app["environment"]["UNLEASH_URL"] == "http://unleash:4242/api"
    env = (project / ".env").read_text()
    for secret in ("UNLEASH_ADMIN_SECRET", "UNLEASH_CLIENT_SECRET"):
        value = re.search(rf"^{secret}=(.+)$", env, re.M)
        assert value and value[1] != "change-me" and len(value[1]) >= 32, secret


def compose_cross_reference_problems(project: Path, compose: dict) -> list[str]:
    """Names and paths that compose would only reject at `docker compose up` time."""
    services = compose.get("services", {})
    volumes = set(compose.get("volumes") or {})
    problems = []
    for name, service in services.items():
        for dependency in service.get("depends_on") or {}:
            if dependency not in services:
                problems.append(f"{name}: depends_on unknown service {dependency}")
        env_files = service.get("env_file") or []
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            if not (project / env_file).exists():
                problems.append(f"{name}: env_file {env_file} missing")
        build = service.get("build")
        context_dir = build if isinstance(build, str) else (build or {}).get("context")
        if context_dir and not (project / context_dir / "Dockerfile").exists():
            problems.append(f"{name}: build context {context_dir} has no Dockerfile")
        for mount in service.get("volumes") or []:
            source = mount.split(":")[0] if isinstance(mount, str) else mount.get("source")
            if source.startswith((".", "/")):
                if not (project / source).exists():
                    problems.append(f"{name}: mounted path {source} missing")
            elif source not in volumes:
                problems.append(f"{name}: named volume {source} not declared")
    return problems


@variants
def test_monitoring_passes_promtool(bake: Callable, context: dict, tmp_path: Path) -> None:
    monitoring = bake(context) / "monitoring"
    if answers_for(context)["monitoring"] == "none":
        assert not monitoring.exists()
        return
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install --no-install-recommends prometheus"
    prometheus = monitoring / "prometheus"
    run_promtool(promtool, "check", "config", "prometheus.yml", cwd=prometheus)
    check_ecs_config(promtool, monitoring, tmp_path)
    run_promtool(promtool, "check", "rules", *rule_files(monitoring))
    for test_file in rule_test_files(monitoring):
        run_promtool(promtool, "test", "rules", test_file.name, cwd=test_file.parent)


def test_monitoring_none_leaves_no_trace_but_metrics(bake: Callable) -> None:
    project = bake({"monitoring": "none"})
    assert not (project / "monitoring").exists()
    for path in files_of(project):
        assert "grafana" not in path.read_text(errors="replace").lower(), path
    compose = yaml.safe_load((project / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"db", "migrate", "app"}
    assert set(compose["volumes"]) == {"pgdata"}
    assert '"/metrics"' in (project / "app" / "metrics.py").read_text()


def test_cache_none_leaves_no_trace_of_redis(bake: Callable) -> None:
    for path in files_of(bake({})):
        text = path.read_text(errors="replace").lower()
        assert "redis" not in text and "valkey" not in text, path


def test_internal_packages_false_leaves_no_trace_of_them(bake: Callable) -> None:
    project = bake({})
    assert not (project / "packages").exists()
    for path in files_of(project):
        text = path.read_text(errors="replace").lower()
        for word in ("codeartifact", "internal_index", "service_client", "uv.workspace"):
            assert word not in text, f"{word} in {path}"


def test_monitoring_services_join_the_compose_stack(bake: Callable) -> None:
    compose = yaml.safe_load((bake({}) / "docker-compose.yml").read_text())
    assert {"prometheus", "alertmanager", "alert-logger", "grafana"} <= set(compose["services"])
    grafana = compose["services"]["grafana"]
    assert "GRAFANA_ADMIN_PASSWORD:?" in grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"]


# ---- bad answers: (extra_context, the field the message must name) --------------------------

BAD_ANSWERS: list[tuple[dict[str, str], str]] = [
    ({"project_slug": "My Service"}, "project_slug"),
    ({"project_slug": "1service"}, "project_slug"),
    ({"project_slug": "svc--x"}, "project_slug"),
    ({"project_slug": "svc-"}, "project_slug"),
    ({"project_slug": "svc_x"}, "project_slug"),
    ({"project_slug": "a" * 20}, "project_slug"),
    ({"project_slug": "internal-api"}, "project_slug"),
    ({"project_slug": "svc;rm -rf ~"}, "project_slug"),
    ({"project_slug": "svc$(whoami)"}, "project_slug"),
    ({"project_name": ""}, "project_name"),
    ({"project_name": "!!!"}, "project_name"),
    ({"project_name": "42 Things"}, "project_slug"),
    ({"project_name": "x" * 101, "project_slug": "long"}, "project_name"),
    ({"project_name": "Line\nBreak", "project_slug": "line-break"}, "project_name"),
    ({"package_name": "class"}, "package_name"),
    ({"package_name": "json"}, "package_name"),
    ({"package_name": "fastapi"}, "package_name"),
    ({"package_name": "app"}, "package_name"),
    ({"package_name": "9lives"}, "package_name"),
    ({"author_email": "not-an-email"}, "author_email"),
    ({"author_email": "a@b"}, "author_email"),
    ({"author_email": "a b@example.com"}, "author_email"),
    ({"author_name": ""}, "author_name"),
    ({"aws_region": "us-east-9"}, "aws_region"),
    ({"aws_region": "US-EAST-1"}, "aws_region"),
    ({"aws_region": "us-gov-west-1"}, "aws_region"),
    ({"aws_region": "cn-north-1"}, "aws_region"),
    ({"python_version": "3.10"}, "python_version"),
    ({"python_version": "2.7"}, "python_version"),
    ({"license": "GPL-3.0"}, "license"),
    ({"monitoring": "datadog"}, "monitoring"),
    ({"cache": "memcached"}, "cache"),
    ({"feature_flags": "launchdarkly"}, "feature_flags"),
    ({"deployment_strategy": "blue-green"}, "deployment_strategy"),
    ({"github_org": "-org"}, "github_org"),
    ({"github_org": "org_name"}, "github_org"),
    ({"github_org": "a" * 40}, "github_org"),
    ({"description": "x" * 301}, "description"),
    ({"description": "colour \x1b[31mred"}, "description"),
    ({"database": "mysql"}, "database"),
    ({"nat_gateway": "two"}, "nat_gateway"),
    ({"use_fargate_spot": "perhaps"}, "use_fargate_spot"),
    ({"autoscaling": "sometimes"}, "autoscaling"),
    ({"min_tasks": "0"}, "min_tasks"),
    ({"min_tasks": "two"}, "min_tasks"),
    ({"max_tasks": "101"}, "max_tasks"),
    ({"min_tasks": "5", "max_tasks": "3"}, "max_tasks"),
    ({"domain_name": "API.example.com"}, "domain_name"),
    ({"domain_name": "example"}, "domain_name"),
    ({"domain_name": "-api.example.com"}, "domain_name"),
    ({"domain_name": "api.example.com; rm -rf /"}, "domain_name"),
    ({"use_waf": "enable"}, "use_waf"),
    ({"alert_email": "ops"}, "alert_email"),
    ({"monthly_budget_usd": "0"}, "monthly_budget_usd"),
    ({"monthly_budget_usd": "-10"}, "monthly_budget_usd"),
    ({"monthly_budget_usd": "12.5"}, "monthly_budget_usd"),
]


@pytest.mark.parametrize(
    ("context", "field"), BAD_ANSWERS, ids=[variant_id(c) for c, _ in BAD_ANSWERS]
)
def test_bad_answer_fails_naming_the_field_and_leaves_nothing(
    cookies, tmp_path: Path, capfd: pytest.CaptureFixture[str], context: dict, field: str
) -> None:
    result = cookies.bake(extra_context=context)
    assert result.exit_code != 0
    if isinstance(result.exception, ValueError):
        # A choice or yes/no variable: cookiecutter itself refuses the value before any hook.
        assert f"variable {field} " in str(result.exception).replace(",", " ")
    else:
        assert isinstance(result.exception, FailedHookException)
        assert f"ERROR: {field}=" in capfd.readouterr().err
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [], "output left behind"
