"""`make migration-compat` on real commits: a copy of this project in a git repository of its
own, a backward-compatible migration (passes) and one that drops a column the previous app
reads (fails), each checked by serving the previous commit's app on a real PostgreSQL."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from tests.conftest import PROJECT_ROOT

IGNORED = shutil.ignore_patterns(
    ".git", ".venv", ".devdata", ".env", "__pycache__", ".pytest_cache", ".ruff_cache"
)
MIGRATION = '''"""{message}"""

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    {upgrade}


def downgrade() -> None:
    {downgrade}
'''


def git(repo: Path, *args: str) -> None:
    identity = ["-c", "user.name=Test", "-c", "user.email=test@example.com"]
    subprocess.run(["git", *identity, *args], cwd=repo, check=True, capture_output=True)


def head_revision(repo: Path) -> str:
    config = Config(str(repo / "alembic.ini"))
    config.set_main_option("script_location", str(repo / "migrations"))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def add_migration(repo: Path, revision: str, message: str, upgrade: str, downgrade: str) -> None:
    text = MIGRATION.format(
        message=message,
        revision=revision,
        down=head_revision(repo),
        upgrade=upgrade,
        downgrade=downgrade,
    )
    (repo / "migrations" / "versions" / f"2099_01_01_{revision}_{revision}.py").write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def compat(repo: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PREVIOUS")}
    if server := os.environ.get("TEST_DATABASE_URL"):
        env["DATABASE_URL"] = server
    return subprocess.run(
        [sys.executable, "-m", "scripts.migration_compat"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("compat") / "project"
    shutil.copytree(PROJECT_ROOT, repo, ignore=IGNORED)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "as rendered")
    return repo


def test_an_expanding_migration_keeps_the_previous_app_working(repo: Path) -> None:
    add_migration(
        repo,
        "c0ffee000001",
        "add items.note (nullable: the previous app never writes it)",
        'op.add_column("items", sa.Column("note", sa.String(200), nullable=True))',
        'op.drop_column("items", "note")',
    )
    result = compat(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "works on this checkout's schema" in result.stdout


def test_a_contracting_migration_is_refused_naming_the_rule(repo: Path) -> None:
    add_migration(
        repo,
        "c0ffee000002",
        "drop items.description (the previous app still reads and writes it)",
        'op.drop_column("items", "description")',
        'op.add_column("items", sa.Column("description", sa.String(1000), nullable=True))',
    )
    result = compat(repo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "fails on this checkout's schema" in result.stdout
    assert "expand now, contract in a later release" in result.stdout


def test_nothing_to_check_without_a_changed_migration(repo: Path) -> None:
    (repo / "README.md").write_text((repo / "README.md").read_text() + "\nA note.\n")
    git(repo, "commit", "-q", "-am", "docs only")
    result = compat(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no migration changed" in result.stdout
