"""Template updates reach rendered projects with cruft, end to end with real git repositories:
a project rendered from template commit A, committed and changed by its team, then updated to
commit B (a changed file, a new one, a removed one). The template's changes arrive, the team's
survive, and only a line both changed conflicts. Bad input (uncommitted changes, an answers file
edited into an invalid state, a template commit that no longer exists) leaves the project as it
was, with a message naming the problem."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter

from tests.conftest import TEMPLATE_DIR, tool

SLUG = "{{cookiecutter.project_slug}}"
COPIED_WITHOUT = (".git", ".venv", "build", "__pycache__", ".pytest_cache", ".ruff_cache")
ORDERS = '''"""Orders: the team's own endpoint."""

from fastapi import APIRouter

router = APIRouter()


@router.get("/orders")
async def list_orders() -> list[dict[str, str]]:
    return []
'''


def git(*args: str, cwd: Path) -> str:
    identity = ["-c", "user.name=Test", "-c", "user.email=test@example.com"]
    done = subprocess.run(
        ["git", *identity, *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def cruft(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("cruft"), *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def template_update(project: Path) -> subprocess.CompletedProcess[str]:
    """`make template-update` without make: its script, with this venv's cruft."""
    return subprocess.run(
        [sys.executable, "scripts/template_update.py"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def replace_line(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} in {path}"
    path.write_text(text.replace(old, new))


def snapshot(project: Path) -> dict[str, bytes]:
    """Every file of the project but git's own, by path."""
    return {
        str(path.relative_to(project)): path.read_bytes()
        for path in sorted(project.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(project).parts
    }


@pytest.fixture
def template(tmp_path: Path) -> Path:
    """Commit A: this template, in a git repository of its own."""
    repo = tmp_path / "template"
    shutil.copytree(TEMPLATE_DIR, repo, ignore=shutil.ignore_patterns(*COPIED_WITHOUT))
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "A", cwd=repo)
    return repo


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Path:
    """Rendered from commit A with `cruft create`, committed as a team would."""
    created = cruft("create", "--no-input", str(template), cwd=tmp_path)
    assert created.returncode == 0, created.stdout + created.stderr
    project = tmp_path / "orders-service"
    git("init", "-q", "-b", "main", cwd=project)
    git("add", "-A", cwd=project)
    git("commit", "-q", "-m", "Rendered from the template", cwd=project)
    return project


@pytest.mark.parametrize(
    "options",
    [{}, {"cache": "redis", "feature_flags": "unleash", "deployment_strategy": "canary"}],
    ids=["default", "options-on"],
)
def test_a_render_is_the_same_every_time_but_for_its_secrets(
    tmp_path: Path, options: dict[str, str]
) -> None:
    """An update renders the template again with the same answers and applies the difference:
    anything drawn afresh per render (a random key, a timestamp) would conflict every time."""
    first, second = (
        snapshot(
            Path(
                cookiecutter(
                    str(TEMPLATE_DIR),
                    no_input=True,
                    output_dir=str(tmp_path / n),
                    extra_context=options,
                )
            )
        )
        for n in ("first", "second")
    )
    assert first.keys() == second.keys()
    differ = sorted(path for path in first if first[path] != second[path])
    assert differ == [".env"]  # the local secrets: git-ignored, and skipped by updates


def test_the_project_records_its_template_commit_and_answers_but_no_secret(
    template: Path, project: Path
) -> None:
    state = json.loads((project / ".cruft.json").read_text())
    assert state["commit"] == git("rev-parse", "HEAD", cwd=template)
    answers = state["context"]["cookiecutter"]
    assert answers["project_slug"] == "orders-service" and answers["database"] == "rds"
    secrets = [
        line.split("=", 1)[1]
        for line in (project / ".env").read_text().splitlines()
        if "=" in line and not line.startswith("#") and len(line.split("=", 1)[1]) >= 16
    ]
    assert secrets, "the post-generation hook wrote secrets into .env"
    recorded = (project / ".cruft.json").read_text()
    assert not [secret for secret in secrets if secret in recorded]
    assert "cruft check" not in cruft("check", cwd=project).stderr


def test_an_update_brings_the_templates_changes_and_keeps_the_teams(
    template: Path, project: Path
) -> None:
    env_before = (project / ".env").read_bytes()
    # The team: a new endpoint, a README section of its own, and one line the template changes.
    (project / "app" / "api" / "orders.py").write_text(ORDERS)
    readme = project / "README.md"
    replace_line(readme, "## Tests\n", "## Tests\n\nOur team runs `make test` before each push.\n")
    replace_line(readme, "## Layout\n", "## Layout (as the team sees it)\n")
    git("add", "-A", cwd=project)
    git("commit", "-q", "-m", "The team's changes", cwd=project)

    # Commit B of the template: a changed file, a new file, a removed file, and the line the
    # team changed too.
    rendered = template / SLUG
    with (rendered / "Makefile").open("a") as makefile:
        makefile.write("\nhello: ## Say hello (template commit B)\n\t@echo hello\n")
    (rendered / "docs").mkdir()
    (rendered / "docs" / "UPGRADING.md").write_text("# Upgrading {{ cookiecutter.project_name }}\n")
    (rendered / "loadtest" / "locustfile.py").unlink()
    replace_line(rendered / "README.md", "## Layout\n", "## Layout of the project\n")
    git("add", "-A", cwd=template)
    git("commit", "-q", "-m", "B", cwd=template)

    updated = template_update(project)
    assert updated.returncode == 0, updated.stdout + updated.stderr

    # The template's changes arrived.
    assert "hello: ## Say hello (template commit B)" in (project / "Makefile").read_text()
    assert (project / "docs" / "UPGRADING.md").read_text() == "# Upgrading Orders Service\n"
    assert not (project / "loadtest" / "locustfile.py").exists()
    state = json.loads((project / ".cruft.json").read_text())
    assert state["commit"] == git("rev-parse", "HEAD", cwd=template)
    # The team's survived: its endpoint, its README section, its local secrets.
    assert (project / "app" / "api" / "orders.py").read_text() == ORDERS
    text = readme.read_text()
    assert "Our team runs `make test` before each push." in text
    assert (project / ".env").read_bytes() == env_before
    # The one line both changed conflicts (git's three-way merge: markers, in that file only).
    conflicted = git("diff", "--name-only", "--diff-filter=U", cwd=project).split()
    assert conflicted == ["README.md"]
    ours, theirs = text.split("\n<<<<<<<", 1)[1].split("\n=======", 1)
    assert "## Layout (as the team sees it)" in ours
    assert "## Layout of the project" in theirs.split(">>>>>>>", 1)[0]
    assert [line for line in text.splitlines() if line.startswith("<<<<<<<")] == ["<<<<<<< ours"]


def bad_update(project: Path) -> subprocess.CompletedProcess[str]:
    before = snapshot(project)
    status = git("status", "--porcelain", cwd=project)
    done = template_update(project)
    assert done.returncode != 0, done.stdout + done.stderr
    assert snapshot(project) == before, "the project's files changed"
    assert git("status", "--porcelain", cwd=project) == status
    assert done.stderr.startswith("template update failed, nothing changed:")
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) <= 8, done.stderr
    return done


def commit_template_change(template: Path) -> None:
    with (template / SLUG / "Makefile").open("a") as makefile:
        makefile.write("\n# template commit B\n")
    git("commit", "-q", "-am", "B", cwd=template)


def test_an_update_over_uncommitted_changes_is_refused(template: Path, project: Path) -> None:
    commit_template_change(template)
    replace_line(project / "README.md", "## Tests\n", "## Tests (work in progress)\n")
    done = bad_update(project)
    assert "unclean git project" in done.stderr


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("database", "mysql", "the choices are ['rds', 'ecs_efs']"),  # cookiecutter's check
        ("max_tasks", "1", "max_tasks='1': must be at least min_tasks (2)"),  # the pre-gen hook's
    ],
)
def test_an_update_with_an_invalid_answer_names_the_field_and_rule(
    template: Path, project: Path, field: str, value: str, message: str
) -> None:
    commit_template_change(template)
    state_file = project / ".cruft.json"
    state = json.loads(state_file.read_text())
    state["context"]["cookiecutter"][field] = value
    state_file.write_text(json.dumps(state, indent=2))
    git("commit", "-q", "-am", "An edited answer", cwd=project)
    done = bad_update(project)
    assert field in done.stderr and message in " ".join(done.stderr.split()), done.stderr


def test_an_update_from_a_commit_that_no_longer_exists_says_so(
    template: Path, project: Path
) -> None:
    commit_template_change(template)
    state_file = project / ".cruft.json"
    state = json.loads(state_file.read_text())
    state["commit"] = "0123456789abcdef0123456789abcdef01234567"
    state_file.write_text(json.dumps(state, indent=2))
    git("commit", "-q", "-am", "A commit the template never had", cwd=project)
    done = bad_update(project)
    assert "0123456789abcdef0123456789abcdef01234567" in done.stderr
