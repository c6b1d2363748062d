"""Delivery: the rendered project's GitHub workflows, checked statically for every variant
(schema, zizmor, pins, permissions, timeouts, OIDC scope, references into the rendered tree),
plus proof that each check bites on a deliberately broken copy.

Needs `zizmor` and `check-jsonschema` beside the test interpreter (requirements-dev.txt).
"""

import copy
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from workflow_support import checks, run_workflow
from workflow_support.served import Served, serve_with_prometheus

from tests.conftest import DEFAULTS, TEMPLATE_DIR, answers_for, tool, variant_id
from tests.test_generation import compose_cross_reference_problems

# Readable variants; one naming an option cookiecutter.json does not declare (yet) is skipped.
WORKFLOW_VARIANTS: list[dict[str, object]] = [
    {},
    {"monitoring": "none"},
    {"python_version": "3.13", "aws_region": "eu-central-1"},
    {"deployment_strategy": "canary"},
    {"auth": "jwt"},
    {"internal_packages": True},
    {  # the fullest
        "monitoring": "prometheus_grafana",
        "cache": "redis",
        "database": "ecs_efs",
        "use_fargate_spot": True,
        "nat_gateway": "none",
        "autoscaling": True,
        "min_tasks": 2,
        "max_tasks": 6,
        "domain_name": "api.example.com",
        "use_waf": True,
        "alert_email": "ops@example.com",
    },
    {  # the most minimal
        "monitoring": "none",
        "database": "rds",
        "use_fargate_spot": False,
        "nat_gateway": "single",
        "autoscaling": False,
        "domain_name": "",
        "use_waf": False,
        "alert_email": "",
    },
]


def declared(context: dict[str, object]) -> dict[str, object]:
    unknown = sorted(set(context) - set(DEFAULTS))
    if unknown:
        pytest.skip(f"cookiecutter.json does not declare {', '.join(unknown)} yet")
    return context


variants = pytest.mark.parametrize("context", WORKFLOW_VARIANTS, ids=variant_id)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)


@pytest.fixture
def project(bake: Callable, context: dict[str, object]) -> Path:
    return bake(declared(context))


# --- every variant -----------------------------------------------------------------------------


@variants
def test_workflows_exist(project: Path) -> None:
    names = {path.name for path in checks.workflow_files(project)}
    assert names >= {"ci.yml", "deploy.yml", "e2e.yml", "preview.yml"}
    assert (project / ".github" / "dependabot.yml").is_file()


@variants
def test_workflows_match_github_schemas(project: Path) -> None:
    github = project / ".github"
    for schema, files in (
        ("vendor.github-workflows", checks.workflow_files(project)),
        ("vendor.github-actions", checks.action_files(project)),
        ("vendor.dependabot", [github / "dependabot.yml"]),
    ):
        result = run(
            tool("check-jsonschema"), "--builtin-schema", schema, *map(str, files), cwd=project
        )
        assert result.returncode == 0, result.stdout + result.stderr


@variants
def test_workflows_are_zizmor_clean(project: Path) -> None:
    result = run(tool("zizmor"), "--offline", "--no-progress", ".github", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr


@variants
def test_workflows_are_hardened_and_reference_what_exists(project: Path) -> None:
    assert checks.all_problems(project) == []


@variants
def test_compose_file_referenced_by_e2e_is_consistent(project: Path) -> None:
    compose = yaml.safe_load((project / "docker-compose.yml").read_text())
    assert compose_cross_reference_problems(project, compose) == []


@variants
def test_monitoring_images_built_and_pushed_only_when_selected(
    project: Path, context: dict[str, object]
) -> None:
    monitoring = answers_for(context)["monitoring"] == "prometheus_grafana"
    ci = checks.load(project / ".github" / "workflows" / "ci.yml")
    contexts = {
        job_id: {str((s.get("with") or {}).get("context")) for s in job.get("steps") or []}
        for job_id, job in ci["jobs"].items()
    }
    for job_id in ("image", "publish"):
        expected = {"monitoring/prometheus", "monitoring/grafana"} if monitoring else set()
        assert contexts[job_id] & {"monitoring/prometheus", "monitoring/grafana"} == expected
    dependabot = (project / ".github" / "dependabot.yml").read_text()
    assert ("/monitoring/prometheus" in dependabot) == monitoring
    e2e = (project / ".github" / "workflows" / "e2e.yml").read_text()
    assert ("PROMETHEUS_URL" in e2e) == monitoring


def test_deploy_runs_after_ci_on_main_only(bake: Callable) -> None:
    ci = checks.load(bake({}) / ".github" / "workflows" / "ci.yml")
    deploy, publish = ci["jobs"]["deploy"], ci["jobs"]["publish"]
    assert deploy["uses"] == "./.github/workflows/deploy.yml"
    assert deploy["needs"] == "publish"
    assert set(publish["needs"]) == {"lint", "test", "infra", "image"}
    assert "refs/heads/main" in publish["if"]
    workflow = checks.load(bake({}) / ".github" / "workflows" / "deploy.yml")
    assert set(workflow["on"]) == {"workflow_call", "workflow_dispatch"}
    assert workflow["concurrency"]["cancel-in-progress"] is False
    assert "environment" in workflow["jobs"]["deploy"]


@variants
def test_each_aws_role_is_assumed_only_where_its_trust_admits(project: Path) -> None:
    """The deploy role trusts only the GitHub environment, the push role only main (issue 13):
    a job assuming either elsewhere would fail in GitHub, and a deploy outside the environment
    would skip its reviewers."""
    assumed: dict[str, list[str]] = {}
    for path in checks.workflow_files(project):
        for name, job in (checks.load(path).get("jobs") or {}).items():
            for step in job.get("steps") or []:
                role = (step.get("with") or {}).get("role-to-assume", "")
                if "configure-aws-credentials" not in step.get("uses", ""):
                    continue
                assumed.setdefault(role, []).append(f"{path.name}:{name}")
                if "AWS_DEPLOY_ROLE_ARN" in role:
                    assert job.get("environment"), f"{path.name}:{name} has no environment"
                elif "AWS_PUSH_ROLE_ARN" in role:
                    assert "refs/heads/main" in job.get("if", ""), f"{path.name}:{name}"
                    assert not job.get("environment"), f"{path.name}:{name}"
    roles = " ".join(assumed)
    assert "AWS_DEPLOY_ROLE_ARN" in roles and "AWS_PUSH_ROLE_ARN" in roles, assumed


def test_template_ci_runs_the_rendered_suite_on_the_newest_releases_weekly() -> None:
    # The template's own workflow: hardened as the rendered ones, and its newest-releases job
    # (the fast paths' early warning, DESIGN.md 5a) runs on a schedule too.
    path = TEMPLATE_DIR / ".github" / "workflows" / "ci.yml"
    workflow = checks.load(path)
    problems = [
        *checks.pin_problems(path.read_text()),
        *checks.permission_problems(workflow),
        *checks.timeout_problems(workflow),
        *checks.checkout_problems(workflow),
        *checks.concurrency_problems(workflow),
        *checks.injection_problems(workflow),
    ]
    assert problems == []
    zizmor = run(tool("zizmor"), "--offline", "--no-progress", str(path), cwd=TEMPLATE_DIR)
    assert zizmor.returncode == 0, zizmor.stdout + zizmor.stderr
    assert [entry["cron"] for entry in workflow["on"]["schedule"]]
    steps = workflow["jobs"]["newest-releases"]["steps"]
    commands = " ".join(step.get("run", "") for step in steps)
    assert "scripts/release_spread.py --newest" in commands
    # Each option with a fast path of its own runs its suite there too.
    assert "--newest --option feature_flags=unleash" in commands
    assert "make outdated" in commands


def test_dependabot_keeps_the_template_repositorys_own_dependencies_current() -> None:
    path = TEMPLATE_DIR / ".github" / "dependabot.yml"
    checked = run(
        tool("check-jsonschema"),
        "--builtin-schema",
        "vendor.dependabot",
        str(path),
        cwd=TEMPLATE_DIR,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    updates = yaml.safe_load(path.read_text())["updates"]
    covered = {(update["package-ecosystem"], update["directory"]) for update in updates}
    assert covered == {("github-actions", "/"), ("pip", "/")}
    assert (TEMPLATE_DIR / "requirements-dev.txt").is_file()
    assert (TEMPLATE_DIR / "scripts" / "release_spread.py").is_file()


# --- the checks bite: each breaks one thing in a copy and must be reported --------------------


@pytest.fixture(scope="module")
def default_project(bake: Callable) -> Path:
    return bake({})


def ci_text(project: Path) -> str:
    return (project / ".github" / "workflows" / "ci.yml").read_text()


def ci_workflow(project: Path) -> dict:
    return copy.deepcopy(checks.load(project / ".github" / "workflows" / "ci.yml"))


def test_the_unbroken_default_has_no_problems(default_project: Path) -> None:
    assert checks.all_problems(default_project) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2", "@v4"),
        ("@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2", "@11bd719"),
        ("@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2", "@main"),
        ("@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2", "@" + "1" * 40),
    ],
    ids=["tag", "short-sha", "branch", "no-version-comment"],
)
def test_an_unpinned_action_is_reported(default_project: Path, old: str, new: str) -> None:
    text = ci_text(default_project)
    assert old in text
    assert checks.pin_problems(text) == []
    assert checks.pin_problems(text.replace(old, new, 1))


def test_a_missing_permissions_block_is_reported(default_project: Path) -> None:
    workflow = ci_workflow(default_project)
    assert checks.permission_problems(workflow) == []
    del workflow["permissions"]
    assert checks.permission_problems(workflow) == ["no top-level permissions block"]
    workflow["permissions"] = {"contents": "write"}
    assert checks.permission_problems(workflow)
    workflow["permissions"] = "write-all"
    assert checks.permission_problems(workflow)


def test_a_renamed_make_target_is_reported(default_project: Path) -> None:
    workflow = ci_workflow(default_project)
    targets = checks.make_targets(default_project / "Makefile")
    assert checks.make_target_problems(workflow, targets) == []
    assert checks.make_target_problems(workflow, targets - {"lint"}) == [
        "`make lint`: no such target in the Makefile"
    ]
    workflow["jobs"]["test"]["steps"][2]["run"] = "make tests"
    assert checks.make_target_problems(workflow, targets) == [
        "`make tests`: no such target in the Makefile"
    ]


def test_a_dangling_compose_depends_on_is_reported(default_project: Path) -> None:
    compose = yaml.safe_load((default_project / "docker-compose.yml").read_text())
    compose["services"]["app"]["depends_on"] = {"migrations": {"condition": "service_healthy"}}
    assert compose_cross_reference_problems(default_project, compose) == [
        "app: depends_on unknown service migrations"
    ]


def test_a_missing_timeout_is_reported(default_project: Path) -> None:
    workflow = ci_workflow(default_project)
    del workflow["jobs"]["lint"]["timeout-minutes"]
    assert checks.timeout_problems(workflow) == ["job lint has no timeout-minutes"]


def test_id_token_outside_aws_jobs_is_reported(default_project: Path) -> None:
    workflow = ci_workflow(default_project)
    assert checks.id_token_problems(workflow, default_project) == []
    workflow["jobs"]["lint"]["permissions"] = {"contents": "read", "id-token": "write"}
    assert checks.id_token_problems(workflow, default_project) == [
        "job lint has id-token: write but never configures AWS"
    ]
    del workflow["jobs"]["publish"]["permissions"]
    assert "job publish configures AWS without id-token: write" in checks.id_token_problems(
        workflow, default_project
    )


def test_persisted_checkout_credentials_are_reported(default_project: Path) -> None:
    workflow = ci_workflow(default_project)
    del workflow["jobs"]["lint"]["steps"][0]["with"]
    assert checks.checkout_problems(workflow) == [
        "job lint: checkout without persist-credentials: false"
    ]


def test_a_missing_concurrency_group_is_reported(default_project: Path) -> None:
    workflow = ci_workflow(default_project)
    del workflow["concurrency"]
    assert checks.concurrency_problems(workflow)


def test_an_expression_inside_run_is_reported(default_project: Path) -> None:
    workflow = ci_workflow(default_project)
    workflow["jobs"]["lint"]["steps"].append(
        {"run": 'echo "${{ github.event.pull_request.title }}"'}
    )
    assert len(checks.injection_problems(workflow)) == 1


@pytest.mark.parametrize(
    ("job", "step", "key", "value"),
    [
        ("image", 3, "context", "monitoring/prometheus-typo"),
        ("image", 3, "file", "Dockerfile.app"),
        ("lint", 1, "uses", "./.github/actions/setup"),
        ("test", 3, "working-directory", "infrastructure"),
        ("lint", 2, "run", "./scripts/lint.sh"),
    ],
    ids=["context", "dockerfile", "local-action", "working-directory", "script"],
)
def test_a_path_missing_from_the_rendered_tree_is_reported(
    default_project: Path, job: str, step: int, key: str, value: str
) -> None:
    workflow = ci_workflow(default_project)
    assert checks.path_problems(workflow, default_project) == []
    target = workflow["jobs"][job]["steps"][step]
    (target.setdefault("with", {}) if key in ("context", "file") else target)[key] = value
    assert len(checks.path_problems(workflow, default_project)) == 1


def test_a_missing_dependabot_directory_is_reported(default_project: Path) -> None:
    config = yaml.safe_load((default_project / ".github" / "dependabot.yml").read_text())
    assert checks.dependabot_problems(config, default_project) == []
    config["updates"][0]["directory"] = "/backend"
    assert checks.dependabot_problems(config, default_project) == ["uv: /backend does not exist"]


def test_run_workflow_runs_steps_like_the_runner(tmp_path: Path) -> None:
    """The template CI runs the rendered e2e workflow's steps with this; prove its semantics."""
    workflow = {
        "env": {"GREETING": "hi"},
        "jobs": {
            "only": {
                "steps": [
                    {"uses": "actions/checkout@" + "1" * 40},
                    {"run": 'echo "$GREETING" > ran'},
                    {"run": "exit 3"},
                    {"run": "touch skipped-after-failure"},
                    {"if": "failure()", "run": "touch on-failure"},
                    {"if": "always()", "run": "touch always"},
                ]
            }
        },
    }
    path = tmp_path / ".github" / "workflows" / "w.yml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(workflow))
    assert run_workflow.main(path) == 1
    assert (tmp_path / "ran").read_text() == "hi\n"
    assert (tmp_path / "on-failure").exists() and (tmp_path / "always").exists()
    assert not (tmp_path / "skipped-after-failure").exists()


# --- item 10: the rendered e2e suite against the served default project ------------------------


@pytest.fixture(scope="module")
def served(bake: Callable, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_with_prometheus(bake({}), tmp_path_factory.mktemp("e2e-suite")) as served:
        yield served


def run_e2e_suite(served: Served, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("BASE_URL", "PROMETHEUS_URL")}
    # No bytecode or cache in the shared rendered tree: other tests scan its files.
    environment.update(PYTHONDONTWRITEBYTECODE="1", **env)
    command = [
        str(served.python),
        "-m",
        "pytest",
        "tests/e2e",
        "-m",
        "e2e",
        "-p",
        "no:cacheprovider",
    ]
    return subprocess.run(
        [*command, "-v", "-rs"],
        cwd=served.project,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.e2e
def test_rendered_e2e_suite_passes_against_the_served_project(served: Served) -> None:
    result = run_e2e_suite(served, BASE_URL=served.base_url, PROMETHEUS_URL=served.prometheus_url)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "skipped" not in output.splitlines()[-1], output
    assert "test_app_metrics_are_queryable PASSED" in output, output


@pytest.mark.e2e
def test_rendered_e2e_suite_skips_prometheus_checks_without_prometheus(served: Served) -> None:
    result = run_e2e_suite(served, BASE_URL=served.base_url)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "PROMETHEUS_URL is not set" in output, output
