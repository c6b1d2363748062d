"""Building blocks shared by every ECS task: IAM roles, log configuration, service discovery."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

ECS_TASKS_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)

# Graceful shutdown: ECS sends SIGTERM, waits this long, then SIGKILL. The target group's
# deregistration delay is shorter, so the ALB stops sending before the task is killed.
STOP_TIMEOUT_SECONDS = 30


def execution_role(
    name: str,
    *,
    repository_arns: Sequence[pulumi.Input[str]],
    log_group_name: pulumi.Input[str],
    secret_arns: Sequence[pulumi.Input[str]],
    opts: pulumi.ResourceOptions,
) -> aws.iam.Role:
    """What the ECS agent needs to start the task: pull its images, write logs, read its secrets."""
    role = aws.iam.Role(name, assume_role_policy=ECS_TASKS_TRUST, opts=opts)
    account = aws.get_caller_identity_output()
    region = aws.get_region_output()
    log_group_arn = pulumi.Output.format(
        "arn:aws:logs:{0}:{1}:log-group:{2}:*", region.region, account.account_id, log_group_name
    )
    statements: list[dict] = [
        # GetAuthorizationToken has no resource-level permissions; AWS requires "*" here.
        {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [log_group_arn],
        },
    ]
    if repository_arns:
        statements.append(
            {
                "Effect": "Allow",
                "Action": [
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                ],
                "Resource": list(repository_arns),
            }
        )
    if secret_arns:
        statements.append(
            {
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue"],
                "Resource": list(secret_arns),
            }
        )
    aws.iam.RolePolicy(
        f"{name}-policy",
        role=role.id,
        policy=pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": statements}),
        opts=opts,
    )
    return role


def task_role(
    name: str,
    *,
    statements: Sequence[dict] = (),
    opts: pulumi.ResourceOptions,
) -> aws.iam.Role:
    """The identity the containers run as; it gets only `statements` (often nothing at all)."""
    role = aws.iam.Role(name, assume_role_policy=ECS_TASKS_TRUST, opts=opts)
    if statements:
        aws.iam.RolePolicy(
            f"{name}-policy",
            role=role.id,
            policy=pulumi.Output.json_dumps(
                {"Version": "2012-10-17", "Statement": list(statements)}
            ),
            opts=opts,
        )
    return role


def secret_value_from(secret_arn: pulumi.Input[str], json_key: str) -> pulumi.Output[str]:
    """ECS `secrets[].valueFrom` selecting one key of a JSON secret in Secrets Manager."""
    return pulumi.Output.concat(secret_arn, f":{json_key}::")


def log_configuration(log_group_name: pulumi.Input[str], prefix: str) -> dict:
    return {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": log_group_name,
            "awslogs-region": aws.get_region_output().region,
            "awslogs-stream-prefix": prefix,
        },
    }


def environment(variables: dict[str, pulumi.Input[str]]) -> list[dict]:
    return [{"name": key, "value": value} for key, value in sorted(variables.items())]


def discovery_service(
    name: str, *, dns_name: str, namespace_id: pulumi.Input[str], opts: pulumi.ResourceOptions
) -> aws.servicediscovery.Service:
    """A records per task, so Prometheus' DNS service discovery sees every running task."""
    return aws.servicediscovery.Service(
        name,
        name=dns_name,
        dns_config={
            "namespace_id": namespace_id,
            "dns_records": [{"type": "A", "ttl": 10}],
            "routing_policy": "MULTIVALUE",
        },
        health_check_custom_config={},
        opts=opts,
    )


def network_configuration(
    subnet_ids: Sequence[pulumi.Input[str]],
    security_group_ids: Sequence[pulumi.Input[str]],
    assign_public_ip: bool,
) -> dict:
    return {
        "subnets": list(subnet_ids),
        "security_groups": list(security_group_ids),
        "assign_public_ip": assign_public_ip,
    }
