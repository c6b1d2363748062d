"""The deploy role allows every AWS call a deploy makes (components/deploy_api_calls.py), for
every variant, judged by an IAM policy evaluator; and the table covers every data source the
program calls and every resource type a new image replaces or updates."""

from __future__ import annotations

import re
from typing import Any

import pytest
from components.deploy_api_calls import DEPLOY_API_CALLS, ApiCall
from deployment import Deployment, Resource
from iam_evaluator import allows, is_known_action
from mocks import ACCOUNT_ID, REGION
from variants import NEXT_IMAGE_TAG

# Types AWS cannot update in place: a change replaces them.
IMMUTABLE = {"aws:ecs/taskDefinition:TaskDefinition"}
PLACEHOLDER = re.compile(r"\{([a-zA-Z_.]+)\}")


def deploy_policy(deployment: Deployment) -> dict:
    return deployment.one("aws:iam/rolePolicy:RolePolicy", "-ci-deploy").json("policy")


def touched_by_a_deploy(recorder, deployment: Deployment) -> list[Resource]:
    """Resources whose inputs a new image tag changes (recorded twice, compared), plus every
    resource that depends on a changed one that AWS replaces (a new task definition revision is
    a new ARN; resources updated in place keep theirs)."""
    before, after = recorder.get(), recorder.get({"imageTag": NEXT_IMAGE_TAG})
    after_inputs = {(r.type, r.name): r.inputs for r in after.resources}
    changed = {
        (r.type, r.name) for r in before.resources if after_inputs.get((r.type, r.name)) != r.inputs
    }
    touched = {r.urn for r in deployment.resources if (r.type, r.name) in changed}
    replaced = {r.urn for r in deployment.resources if r.urn in touched and r.type in IMMUTABLE}
    for resource in deployment.resources:
        if set(resource.dependencies) & replaced:
            touched.add(resource.urn)
    return [r for r in deployment.resources if r.urn in touched and r.custom]


def fill(template: str, values: dict[str, Any]) -> str:
    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        assert key in values and values[key] not in (None, ""), f"{template}: no {key}"
        return str(values[key])

    return PLACEHOLDER.sub(one, template)


def base_values(deployment: Deployment) -> dict[str, Any]:
    values: dict[str, Any] = {
        "region": REGION,
        "account": ACCOUNT_ID,
        "stack": deployment.stack,
        "project": deployment.resources[0].urn.split("::")[1],
    }
    values |= {f"output.{k}": v for k, v in deployment.outputs.items()}
    values |= {f"config.{k}": v for k, v in deployment.config.items()}
    return values


def requests(recorder, deployment: Deployment) -> list[tuple[ApiCall, str, dict[str, str]]]:
    """(row, resource ARN, condition context) for every call a deploy of `deployment` makes."""
    base = base_values(deployment)
    touched = touched_by_a_deploy(recorder, deployment)
    migration = deployment.outputs["migration_task_definition_urn"]
    found = []
    for row in DEPLOY_API_CALLS:
        if row.action is None:
            continue
        kind, _, what = row.source.partition(":")
        if kind == "invoke":
            instances = [
                {f"result.{k}": v for k, v in call["result"].items()}
                for call in deployment.calls
                if call["token"] == what
            ]
        elif what == "service_names":
            instances = [{"service": name} for name in deployment.outputs["service_names"]]
        elif what == "staged_service":
            staged = deployment.outputs["deployment_strategy"] != "rolling"
            instances = [{"service": deployment.outputs["service_name"]}] if staged else []
{%- if cookiecutter.auth == "jwt" %}
        elif what == "auth_client_secret":
            instances = [{}] if deployment.outputs["auth_client_secret_arn"] else []
{%- endif %}
        elif kind in ("update", "workflow"):
            if kind == "update":
                pool = [r for r in touched if r.type == what]
            elif what == "migration":
                pool = [r for r in deployment.resources if r.urn == migration]
            else:
                pool = deployment.of_type(what)
            instances = [{f"state.{k}": v for k, v in r.state.items()} for r in pool]
        else:
            key = {"state": "stateBucketName", "kms": "secretsKmsKeyArn"}[what]
            instances = [{}] if deployment.cfg(key) else []
        for instance in instances:
            values = {**base, **instance}
            context = {key: fill(value, values) for key, value in row.context.items()}
            found.append((row, fill(row.resource, values), context))
    return found


def test_the_deploy_role_allows_every_call_of_a_deploy(recorder, variant: Deployment):
    policy = deploy_policy(variant)
    denied = [
        f"{row.action} on {resource} {context or ''} ({row.source}: {row.because})"
        for row, resource, context in requests(recorder, variant)
        if not allows(policy, row.action, resource, context)
    ]
    assert not denied, "the deploy role refuses:\n" + "\n".join(denied)


def test_every_data_source_the_program_calls_is_in_the_table(variant: Deployment):
    listed = {row.source for row in DEPLOY_API_CALLS}
    missing = {c["token"] for c in variant.calls} - {s.removeprefix("invoke:") for s in listed}
    assert not missing, f"add the API calls of these data sources to deploy_api_calls.py: {missing}"


def test_every_resource_type_a_deploy_changes_is_in_the_table(recorder, variant: Deployment):
    types = {r.type for r in touched_by_a_deploy(recorder, variant)}
    assert "aws:ecs/taskDefinition:TaskDefinition" in types, "the image change was not detected"
    listed = {row.source.removeprefix("update:") for row in DEPLOY_API_CALLS}
    assert not types - listed, f"add the API calls of {types - listed} to deploy_api_calls.py"


def test_every_action_in_the_table_exists():
    unknown = {
        row.action for row in DEPLOY_API_CALLS if row.action and not is_known_action(row.action)
    }
    assert not unknown


@pytest.mark.parametrize(
    ("action", "resource", "context"),
    [
        # Tagging is allowed only while registering, never on its own.
        ("ecs:TagResource", "arn:aws:ecs:us-east-1:123456789012:task-definition/x:1", {}),
        ("ecs:TagResource", "arn:aws:ecs:us-east-1:123456789012:service/c/s", {}),
        # Another zone of the account.
        ("route53:GetHostedZone", "arn:aws:route53:::hostedzone/ZOTHERZONE", {}),
        # Passing the task roles to anything but ECS tasks.
        ("iam:PassRole", "arn:aws:iam::123456789012:role/any", {"iam:PassedToService": "ecs"}),
        # Pushing images is the push role's job.
        ("ecr:PutImage", "arn:aws:ecr:us-east-1:123456789012:repository/x", {}),
    ],
)
def test_the_deploy_role_refuses_what_a_deploy_does_not_need(recorder, action, resource, context):
    policy = deploy_policy(recorder.get({"domainName": "api.example.com"}))
    assert not allows(policy, action, resource, context)


def test_the_evaluator_honours_conditions_resources_and_deny():
    policy = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "ecs:*",
                "Resource": "arn:aws:ecs:*:*:task-definition/app-*",
                "Condition": {"StringEquals": {"ecs:CreateAction": "RegisterTaskDefinition"}},
            },
            {
                "Effect": "Deny",
                "Action": "ecs:TagResource",
                "Resource": "*:task-definition/app-x:*",
            },
        ]
    }
    arn = "arn:aws:ecs:us-east-1:1:task-definition/app-a:3"
    create = {"ecs:CreateAction": "RegisterTaskDefinition"}
    assert allows(policy, "ecs:TagResource", arn, create)
    assert not allows(policy, "ecs:TagResource", arn, {})
    assert not allows(policy, "ecs:TagResource", arn.replace("app-a", "db-a"), create)
    assert not allows(policy, "ecs:TagResource", arn.replace("app-a", "app-x"), create)


def test_the_deploy_waits_on_every_service_the_new_image_rolls(recorder, variant: Deployment):
    """deploy.yml waits on `service_names`: the app and, with monitoring, its service too."""
    rolled = {
        r.state["name"]
        for r in touched_by_a_deploy(recorder, variant)
        if r.type == "aws:ecs/service:Service"
    }
    assert set(variant.outputs["service_names"]) == rolled
