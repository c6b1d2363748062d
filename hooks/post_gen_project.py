"""Post-generation hook: prune unselected options, write .env with fresh secrets, print next steps.

Runs inside the rendered project with the standard library only; no network.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

# option -> value -> paths (relative to the project root) removed when the option has that value.
# A feature lives in its own files, so choosing it off is deleting those files.
PRUNE_MANIFEST: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "database": {
        "rds": ("infra/components/database_efs.py", "infra/tests/test_database_efs.py"),
        "ecs_efs": (
            "infra/components/database_rds.py",
            "infra/tests/test_database_rds.py",
            "tests/test_rds_iam.py",
        ),
    },
    "monitoring": {
        "none": (
            "monitoring",
            "infra/components/monitoring.py",
            "infra/tests/test_monitoring.py",
        ),
    },
    "feature_flags": {
        "none": (
            "app/flags.py",
            "scripts/local_unleash.py",
            "tests/test_flags.py",
            "infra/components/feature_flags.py",
            "infra/tests/test_feature_flags.py",
        ),
    },
    "auth": {
        "none": (
            "app/auth.py",
            "scripts/token.py",
            "tests/issuer.py",
            "tests/test_auth.py",
            "infra/components/auth.py",
            "infra/tests/test_auth.py",
        ),
    },
    "internal_packages": {
        "False": (
            "packages",
            "scripts/internal_index.sh",
            "tests/test_client.py",
            ".github/workflows/packages.yml",
            "infra/components/packages.py",
            "infra/tests/test_packages.py",
        ),
    },
    "cache": {
        "none": (
            "app/cache.py",
            "scripts/local_redis.py",
            "tests/test_cache.py",
            "infra/components/cache.py",
            "infra/tests/test_cache.py",
            "monitoring/prometheus/rules/cache.rules.yml",
            "monitoring/prometheus/rules/cache_test.yml",
            "monitoring/grafana/dashboards/cache.json",
        ),
    },
}

# Every value in .env.example equal to this is replaced by its own fresh secret in .env.
SECRET_PLACEHOLDER = "change-me"


def paths_to_prune(answers: Mapping[str, object]) -> list[str]:
    """The manifest's paths for the values chosen in `answers`."""
    chosen = []
    for option, by_value in PRUNE_MANIFEST.items():
        chosen.extend(by_value.get(str(answers.get(option)), ()))
    return chosen


def prune(root: Path, paths: list[str]) -> None:
    for relative in paths:
        target = root / relative
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def make_env(example: str) -> str:
    """Copy .env.example, replacing each placeholder secret with a distinct random one."""
    lines = []
    for line in example.splitlines():
        key, sep, value = line.partition("=")
        if sep and value == SECRET_PLACEHOLDER and not key.lstrip().startswith("#"):
            line = f"{key}={secrets.token_urlsafe(32)}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def write_env(root: Path) -> None:
    env = root / ".env"
    env.write_text(make_env((root / ".env.example").read_text()))
    env.chmod(0o600)


def next_steps(answers: Mapping[str, object]) -> str:
    slug = answers["project_slug"]
    return f"""
Created {slug}. Next steps:

  cd {slug}
  git init && git add -A && git commit -m "Initial commit from cookiecutter-fastapi-aws"
  make install   # creates .venv and uv.lock: commit uv.lock
  make test      # runs the tests against a throwaway PostgreSQL
  make dev       # serves http://127.0.0.1:8000/docs with no Docker needed
  make up        # or: the full stack in docker compose

.env holds freshly generated local secrets and is git-ignored. See README.md for deploying.
"""


def main(answers: Mapping[str, object], root: Path) -> int:
    prune(root, paths_to_prune(answers))
    write_env(root)
    print(next_steps(answers))
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(r"""{{ cookiecutter | jsonify }}"""), Path.cwd()))
