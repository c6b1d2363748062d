"""Run the Pulumi program under mocks, once per request, and print what it declared as JSON.

Each request is {"stack": "...", "config": {"<key>": value, ...}} with keys as in Pulumi.yaml
(un-namespaced keys belong to the project); each result is
{"resources": [...], "outputs": {...}, "calls": [...]}.
"""

from __future__ import annotations

import json
import runpy
import sys
import traceback
from pathlib import Path
from typing import Any

INFRA = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(INFRA))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pulumi  # noqa: E402
import yaml  # noqa: E402
from mocks import InfraMocks, RecordingMonitor  # noqa: E402
from pulumi.runtime.stack import run_pulumi_func  # noqa: E402
from pulumi.runtime.sync_await import _sync_await  # noqa: E402


def config_value(value: Any) -> str:
    """Pulumi config values are strings on the wire; YAML types become their JSON text."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def project_config(project: dict, overrides: dict[str, Any]) -> dict[str, str]:
    """Pulumi.yaml's defaults (as the engine would apply them) overlaid with `overrides`."""
    name = project["name"]
    merged: dict[str, Any] = {}
    for key, spec in (project.get("config") or {}).items():
        if ":" in key:
            merged[key] = spec["value"] if isinstance(spec, dict) and "value" in spec else spec
        elif isinstance(spec, dict) and "default" in spec:
            merged[f"{name}:{key}"] = spec["default"]
    for key, value in overrides.items():
        merged[key if ":" in key else f"{name}:{key}"] = value
    return {key: config_value(value) for key, value in merged.items()}


def resolve(value: Any) -> tuple[Any, bool]:
    output = pulumi.Output.from_input(value)
    return _sync_await(output.future()), bool(_sync_await(output.is_secret()))


def record_one(project: dict, request: dict[str, Any]) -> dict[str, Any]:
    """Run the program once with a fresh runtime (config, mocks, root stack)."""
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_all_config(project_config(project, request.get("config", {})))
    mocks = InfraMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(
        mocks,
        project=project["name"],
        stack=request.get("stack", "prod"),
        preview=False,
        monitor=monitor,
    )
    _sync_await(
        run_pulumi_func(lambda: runpy.run_path(str(INFRA / "__main__.py"), run_name="__main__"))
    )
    outputs = {}
    for key, value in pulumi.runtime.get_root_resource().outputs.items():
        resolved, secret = resolve(value)
        outputs[key] = {"value": resolved, "secret": secret}
    resources = []
    # Registration order varies with thread scheduling; URN order does not.
    for registration in sorted(monitor.registrations, key=lambda r: r["urn"]):
        key = (registration["type"], registration["name"])
        inputs = mocks.inputs.get(key, {})
        state = mocks.states.get(key, {})
        registered = monitor.component_outputs.get(registration["urn"])
        resources.append(
            {**registration, "inputs": inputs, "state": state, "registered_outputs": registered}
        )
    return {"resources": resources, "outputs": outputs, "calls": mocks.calls}


def main() -> None:
    """stdin: a JSON list of requests; stdout: a JSON list of results or {"error": ...}.

    Several runs share one interpreter: importing pulumi_aws costs more than running the program.
    """
    project = yaml.safe_load((INFRA / "Pulumi.yaml").read_text())
    results = []
    for request in json.load(sys.stdin):
        try:
            results.append(record_one(project, request))
        except Exception:  # reported to the test that asked for this run
            results.append({"error": traceback.format_exc()})
    json.dump(results, sys.stdout, default=str)


if __name__ == "__main__":
    main()
