"""Unit tests of the hooks' logic, called directly (no rendering)."""

import stat
from pathlib import Path

import pytest

from tests.conftest import DEFAULTS, load_hook

pre_gen = load_hook("pre_gen_project")
post_gen = load_hook("post_gen_project")

VALID = {
    "project_name": "Orders Service",
    "project_slug": "orders-service",
    "package_name": "orders_service",
    "description": "Takes orders.",
    "author_name": "Team",
    "author_email": "team@example.com",
    "github_org": "my-org",
    "python_version": "3.12",
    "aws_region": "eu-west-1",
    "license": "MIT",
    "monitoring": "prometheus_grafana",
    "database": "rds",
    "use_fargate_spot": True,
    "nat_gateway": "single",
    "autoscaling": True,
    "min_tasks": "2",
    "max_tasks": "6",
    "domain_name": "",
    "use_waf": False,
    "alert_email": "",
    "monthly_budget_usd": "200",
    "cache": "none",
    "feature_flags": "none",
    "deployment_strategy": "rolling",
    "internal_packages": False,
}


def test_valid_answers_pass() -> None:
    assert pre_gen.validate(VALID) == []


def test_every_answer_with_a_rule_is_a_template_variable() -> None:
    assert set(pre_gen.FIELD_RULES) <= set(DEFAULTS)


def test_slug_limit_follows_from_the_aws_load_balancer_name_limit() -> None:
    longest = "a" * pre_gen.SLUG_MAX + "-graf" + "-1234567"
    assert len(longest) == pre_gen.AWS_LB_NAME_MAX
    assert pre_gen.check_slug("a" * pre_gen.SLUG_MAX) is None
    assert "at most 19" in pre_gen.check_slug("a" * 20)


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("project_slug", "Orders", "lowercase"),
        ("project_slug", "internal-api", "internal"),
        ("package_name", "async", "keyword"),
        ("package_name", "match", "keyword"),
        ("package_name", "logging", "standard-library"),
        ("package_name", "sqlalchemy", "dependency"),
        ("author_email", "team@localhost", "e-mail"),
        ("aws_region", "us-gov-east-1", "partition"),
        ("aws_region", "mars-north-1", "region"),
        ("github_org", "my--org", "GitHub"),
        ("description", "two\nlines", "single line"),
        ("python_version", "3.15", "one of"),
        ("use_waf", "yes", "true or false"),
        ("internal_packages", "maybe", "true or false"),
        ("min_tasks", "1.5", "whole number"),
        ("domain_name", "a..example.com", "DNS name"),
        ("alert_email", "@example.com", "e-mail"),
    ],
)
def test_invalid_answer_message_names_field_value_and_rule(
    field: str, value: str, fragment: str
) -> None:
    errors = pre_gen.validate({**VALID, field: value})
    assert len(errors) == 1
    assert errors[0].startswith(f"{field}={value!r}: ")
    assert fragment in errors[0]


def test_max_tasks_below_min_tasks_is_blamed_on_max_tasks() -> None:
    errors = pre_gen.validate({**VALID, "min_tasks": "4", "max_tasks": "3"})
    assert errors == ["max_tasks='3': must be at least min_tasks (4)"]


def test_non_string_answer_is_rejected() -> None:
    assert pre_gen.validate({**VALID, "project_name": 3}) == ["project_name=3: must be a string"]


def test_main_prints_every_error_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert pre_gen.main({**VALID, "project_slug": "X", "author_email": "x"}) == 1
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("=")[0] for line in lines] == ["ERROR: project_slug", "ERROR: author_email"]


def test_make_env_replaces_each_placeholder_with_its_own_secret() -> None:
    example = "# A=change-me\nA=change-me\nB=change-me\nC=kept\n"
    env = post_gen.make_env(example).splitlines()
    assert env[0] == "# A=change-me"
    secrets = [line.split("=", 1)[1] for line in env[1:3]]
    assert all(len(secret) >= 40 for secret in secrets)
    assert secrets[0] != secrets[1]
    assert env[3] == "C=kept"


def test_prune_follows_the_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "feature").mkdir()
    (tmp_path / "feature" / "x.py").write_text("")
    (tmp_path / "feature.yml").write_text("")
    (tmp_path / "kept.py").write_text("")
    manifest = {"feature": {"off": ("feature", "feature.yml", "absent.txt")}}
    monkeypatch.setattr(post_gen, "PRUNE_MANIFEST", manifest)

    post_gen.prune(tmp_path, post_gen.paths_to_prune({"feature": "on"}))
    assert (tmp_path / "feature").exists()

    post_gen.prune(tmp_path, post_gen.paths_to_prune({"feature": "off"}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.py"]


def test_post_gen_main_writes_private_env_and_prints_next_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".env.example").write_text("POSTGRES_PASSWORD=change-me\n")
    assert post_gen.main(VALID, tmp_path) == 0
    env = tmp_path / ".env"
    assert "change-me" not in env.read_text()
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert "make test" in capsys.readouterr().out
