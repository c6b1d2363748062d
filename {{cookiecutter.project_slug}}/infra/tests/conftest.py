"""Fixtures: the program is run under mocks once per config variant (in parallel, each in its own
interpreter) and the recorded declarations are shared by every test."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

TESTS = Path(__file__).resolve().parent
INFRA = TESTS.parent
for path in (str(INFRA), str(TESTS)):
    if path not in sys.path:
        sys.path.insert(0, path)

from deployment import Deployment, record_many  # noqa: E402
from variants import COMPONENT_RUNS, VARIANT_IDS, VARIANTS  # noqa: E402

PROJECT = yaml.safe_load((INFRA / "Pulumi.yaml").read_text())


def effective_config(overrides: dict[str, Any]) -> dict[str, Any]:
    """Pulumi.yaml's project defaults with `overrides` applied, typed as YAML typed them."""
    defaults = {
        key: spec["default"]
        for key, spec in (PROJECT.get("config") or {}).items()
        if ":" not in key and isinstance(spec, dict) and "default" in spec
    }
    return {**defaults, **overrides}


class Recorder:
    """Runs each (stack, config) once; later requests get the cached Deployment."""

    def __init__(self) -> None:
        self._cache: dict[str, Deployment | RuntimeError] = {}

    @staticmethod
    def _key(stack: str, overrides: dict[str, Any]) -> str:
        return f"{stack}|{sorted(overrides.items())!r}"

    def get(self, overrides: dict[str, Any] | None = None, stack: str = "prod") -> Deployment:
        overrides = overrides or {}
        key = self._key(stack, overrides)
        if key not in self._cache:
            self._store(key, overrides, stack, record_many([(overrides, stack)])[0])
        cached = self._cache[key]
        if isinstance(cached, RuntimeError):
            raise cached
        return cached

    def _store(self, key: str, overrides: dict[str, Any], stack: str, result: Any) -> None:
        if isinstance(result, str):
            self._cache[key] = RuntimeError(f"the program failed under mocks:\n{result[-4000:]}")
        else:
            self._cache[key] = Deployment(effective_config(overrides), stack, result)

    def prefetch(self, runs: list[tuple[str, dict[str, Any]]]) -> None:
        """Record `runs` split over one interpreter per CPU, all at once."""
        workers = max(1, min(os.cpu_count() or 1, len(runs)))
        chunks = [runs[index::workers] for index in range(workers)]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = pool.map(
                lambda chunk: record_many([(overrides, stack) for stack, overrides in chunk]),
                chunks,
            )
            for chunk, chunk_results in zip(chunks, results, strict=True):
                for (stack, overrides), result in zip(chunk, chunk_results, strict=True):
                    self._store(self._key(stack, overrides), overrides, stack, result)


@pytest.fixture(scope="session")
def recorder() -> Recorder:
    recorder = Recorder()
    recorder.prefetch([(stack, overrides) for _, stack, overrides in VARIANTS] + COMPONENT_RUNS)
    return recorder


@pytest.fixture(scope="session")
def default(recorder: Recorder) -> Deployment:
    """The stack exactly as the template's answers configured it."""
    return recorder.get()


@pytest.fixture(params=VARIANTS, ids=VARIANT_IDS)
def variant(request, recorder: Recorder) -> Deployment:
    _, stack, overrides = request.param
    return recorder.get(overrides, stack)
