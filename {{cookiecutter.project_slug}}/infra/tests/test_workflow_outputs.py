"""Every stack output a workflow (or its comments, which people follow) reads with `pulumi stack
output` exists, for every variant: a missing one only fails in GitHub, mid-deploy."""

from __future__ import annotations

import re
from pathlib import Path

from deployment import Deployment
from mocks import NEVER_DEPLOYED_STACK, RUNNING_IMAGE_TAG
from stack_config import BOOTSTRAP_IMAGE_TAG
from variants import NEXT_IMAGE_TAG

REPOSITORY = Path(__file__).resolve().parents[2]
# `pulumi stack output <name>`, and `out .<name>` / `out '.<name> | ...'` over the whole-stack
# JSON that deploy.yml reads once (`pulumi stack output --json`).
NAMED = re.compile(r"pulumi stack output\s+([a-z][a-z0-9_]*)")
FROM_JSON = re.compile(r"\bout\s+'?\.([a-z][a-z0-9_]*)")


def outputs_read_by_workflows() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((REPOSITORY / ".github").rglob("*.y*ml")):
        text = path.read_text()
        for name in NAMED.findall(text) + FROM_JSON.findall(text):
            found.setdefault(name, set()).add(str(path.relative_to(REPOSITORY)))
    return found


def test_the_scan_finds_the_deploy_workflows_reads():
    found = outputs_read_by_workflows()
    assert {"migration_task_definition_urn", "cluster_name", "task_subnet_ids"} <= set(found)


def test_every_output_a_workflow_reads_is_exported(variant: Deployment):
    missing = {
        name: sorted(paths)
        for name, paths in outputs_read_by_workflows().items()
        if name not in variant.outputs
    }
    assert not missing, f"workflows read stack outputs the program does not export: {missing}"


def test_an_unset_image_tag_keeps_the_running_image(recorder):
    """An administrator's `pulumi up` (no imageTag) re-registers nothing: the program reads the
    tag it exported on the last update back; a deploy's imageTag wins; the first up of a stack
    runs the bootstrap placeholder."""
    cases = [
        ("prod", {}, RUNNING_IMAGE_TAG),
        ("prod", {"imageTag": NEXT_IMAGE_TAG}, NEXT_IMAGE_TAG),
        (NEVER_DEPLOYED_STACK, {}, BOOTSTRAP_IMAGE_TAG),  # nothing pushed yet
    ]
    for stack, overrides, tag in cases:
        deployment = recorder.get(overrides, stack)
        assert deployment.outputs["image_tag"] == tag
        for definition in deployment.of_type("aws:ecs/taskDefinition:TaskDefinition"):
            for container in definition.json("containerDefinitions"):
                if ".dkr.ecr." in container["image"]:
                    assert container["image"].endswith(f":{tag}"), definition.name
