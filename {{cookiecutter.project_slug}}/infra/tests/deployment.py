"""What one run of the program declared, with the lookups the tests need."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RECORDER = Path(__file__).resolve().parent / "record_program.py"
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's wire marker of a secret value


@dataclass(frozen=True)
class Resource:
    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    id: str
    inputs: dict[str, Any]
    state: dict[str, Any]  # inputs plus what the (mocked) provider computed: arn, name, ...
    dependencies: tuple[str, ...]
    registered_outputs: tuple[str, ...] | None
    protect: bool = False  # the `protect` resource option: Pulumi refuses to delete it

    def get(self, key: str, default: Any = None) -> Any:
        return unwrap(self.inputs.get(key, default))

    def json(self, key: str) -> Any:
        """An input holding a JSON document (policies, container definitions), parsed."""
        return json.loads(self.get(key))


def unwrap(value: Any) -> Any:
    """The plain value of a possibly secret-wrapped input."""
    if isinstance(value, dict) and value.get(SECRET_SIG):
        return unwrap(value["value"])
    return value


class Deployment:
    def __init__(self, config: dict[str, Any], stack: str, recorded: dict[str, Any]) -> None:
        self.config = config
        self.stack = stack
        self.resources = [
            Resource(
                urn=r["urn"],
                type=r["type"],
                name=r["name"],
                custom=r["custom"],
                parent=r["parent"],
                id=r["id"],
                inputs=r["inputs"],
                state=r["state"],
                dependencies=tuple(r["dependencies"]),
                registered_outputs=(
                    None if r["registered_outputs"] is None else tuple(r["registered_outputs"])
                ),
                protect=r["protect"],
            )
            for r in recorded["resources"]
        ]
        self.outputs = {key: o["value"] for key, o in recorded["outputs"].items()}
        self.secret_outputs = {key for key, o in recorded["outputs"].items() if o["secret"]}
        # Data sources the program called, in order: {"token", "args"}.
        self.calls: list[dict[str, Any]] = recorded["calls"]
        self._by_id = {r.id: r for r in self.resources}
        self._by_urn = {r.urn: r for r in self.resources}

    def of_type(self, token: str) -> list[Resource]:
        return [r for r in self.resources if r.type == token]

    def one(self, token: str, name_suffix: str = "") -> Resource:
        found = [r for r in self.of_type(token) if r.name.endswith(name_suffix)]
        assert len(found) == 1, f"expected one {token} named *{name_suffix}, got {found}"
        return found[0]

    def by_id(self, resource_id: str) -> Resource | None:
        return self._by_id.get(resource_id)

    def by_urn(self, urn: str) -> Resource | None:
        return self._by_urn.get(urn)

    def components(self) -> list[Resource]:
        return [r for r in self.resources if not r.custom]

    def component(self, kind: str) -> Resource:
        found = [r for r in self.components() if r.type.endswith(f":infra:{kind}")]
        assert len(found) == 1, f"expected one {kind} component, got {found}"
        return found[0]

    def descendants(self, component: Resource) -> list[Resource]:
        """Every resource under `component`, at any depth."""
        result = []
        for resource in self.resources:
            parent = self.by_urn(resource.parent)
            while parent is not None:
                if parent.urn == component.urn:
                    result.append(resource)
                    break
                parent = self.by_urn(parent.parent)
        return result

    def children_of_type(self, kind: str, token: str) -> list[Resource]:
        return [r for r in self.descendants(self.component(kind)) if r.type == token]

    def cfg(self, key: str) -> Any:
        return self.config[key]


def record_many(requests: list[tuple[dict[str, Any], str]]) -> list[dict[str, Any] | str]:
    """Run the program for each (config, stack) in one fresh interpreter, away from the test
    process's Pulumi runtime; each result is what it declared, or the error text."""
    payload = [{"config": config, "stack": stack} for config, stack in requests]
    completed = subprocess.run(
        [sys.executable, str(RECORDER)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the mock runner crashed:\n{completed.stderr[-4000:]}")
    return [result.get("error", result) for result in json.loads(completed.stdout)]


def record(config: dict[str, Any], stack: str = "prod") -> dict[str, Any]:
    """Run the program once under mocks; raise RuntimeError with the traceback if it fails."""
    (result,) = record_many([(config, stack)])
    if isinstance(result, str):
        raise RuntimeError(f"the program failed under mocks:\n{result[-4000:]}")
    return result
