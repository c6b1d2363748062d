"""Shared fixtures of the template's own test suite: baking variants once per session."""

import importlib.util
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType

import pytest

TEMPLATE_DIR = Path(os.environ.get("TEMPLATE_DIR", Path(__file__).resolve().parent.parent))
BIN_DIR = Path(sys.executable).parent  # tools (ruff, hadolint, uv, ...) live beside pytest
DEFAULTS: Mapping[str, object] = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())


def load_hook(name: str) -> ModuleType:
    """Import hooks/<name>.py as a module (its __main__ block does not run)."""
    spec = importlib.util.spec_from_file_location(name, TEMPLATE_DIR / "hooks" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def answers_for(context: Mapping[str, object]) -> dict[str, object]:
    """The answers cookiecutter uses for `context`: defaults (first choice) plus overrides."""
    defaults = {k: v[0] if isinstance(v, list) else v for k, v in DEFAULTS.items()}
    return {**defaults, **context}


def variant_id(context: Mapping[str, object]) -> str:
    """A readable test id like `database:rds-nat_gateway:none` (cookiecutter-django style)."""
    return "-".join(f"{key}:{value}" for key, value in context.items()) or "defaults"


def tool(name: str) -> str:
    return str(BIN_DIR / name) if (BIN_DIR / name).exists() else name


@pytest.fixture(scope="session")
def bake(cookies_session) -> Callable[[Mapping[str, object]], Path]:
    """Render a variant once per session and return the project directory."""
    baked: dict[str, Path] = {}

    def _bake(context: Mapping[str, object]) -> Path:
        key = json.dumps(context, sort_keys=True)
        if key not in baked:
            result = cookies_session.bake(extra_context=dict(context), template=str(TEMPLATE_DIR))
            assert result.exit_code == 0, result.exception
            baked[key] = result.project_path
        return baked[key]

    return _bake
