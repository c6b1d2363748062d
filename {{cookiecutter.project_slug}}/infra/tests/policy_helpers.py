"""Walkers over a recorded Deployment shared by the policy and component tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from deployment import Deployment, Resource, unwrap

WORLD = {"0.0.0.0/0", "::/0"}
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
LEGACY_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
ECS_SERVICE = "aws:ecs/service:Service"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
LISTENER = "aws:lb/listener:Listener"
LISTENER_RULE = "aws:lb/listenerRule:ListenerRule"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"


def ingress_rules(deployment: Deployment) -> Iterator[dict[str, Any]]:
    """Every ingress permission, whatever resource declared it, as
    {group_id, from, to, cidrs, source_group, declared_by}."""
    for rule in deployment.of_type(INGRESS_RULE):
        yield {
            "group_id": rule.get("securityGroupId"),
            "from": rule.get("fromPort"),
            "to": rule.get("toPort"),
            "protocol": rule.get("ipProtocol"),
            "cidrs": {c for c in (rule.get("cidrIpv4"), rule.get("cidrIpv6")) if c},
            "source_group": rule.get("referencedSecurityGroupId"),
            "declared_by": rule.name,
        }
    for rule in deployment.of_type(LEGACY_RULE):
        if rule.get("type") == "ingress":
            yield {
                "group_id": rule.get("securityGroupId"),
                "from": rule.get("fromPort"),
                "to": rule.get("toPort"),
                "protocol": rule.get("protocol"),
                "cidrs": set(rule.get("cidrBlocks") or []) | set(rule.get("ipv6CidrBlocks") or []),
                "source_group": rule.get("sourceSecurityGroupId"),
                "declared_by": rule.name,
            }
    for group in deployment.of_type(SECURITY_GROUP):
        for inline in group.get("ingress") or []:
            yield {
                "group_id": group.id,
                "from": inline.get("fromPort"),
                "to": inline.get("toPort"),
                "protocol": inline.get("protocol"),
                "cidrs": set(inline.get("cidrBlocks") or [])
                | set(inline.get("ipv6CidrBlocks") or []),
                "source_group": (inline.get("securityGroups") or [None])[0],
                "declared_by": group.name,
            }


def alb_security_group_ids(deployment: Deployment) -> set[str]:
    ids: set[str] = set()
    for alb in deployment.of_type(LOAD_BALANCER):
        ids |= set(alb.get("securityGroups") or [])
    return ids


def policy_documents(deployment: Deployment) -> Iterator[tuple[Resource, dict]]:
    """Every IAM-style policy document (identity, trust, resource policies)."""
    for resource in deployment.resources:
        for key in ("policy", "assumeRolePolicy"):
            raw = resource.get(key)
            if not isinstance(raw, str):
                continue
            document = json.loads(raw)
            if isinstance(document, dict) and "Statement" in document:
                yield resource, document


def statements(document: dict) -> list[dict]:
    found = document["Statement"]
    return found if isinstance(found, list) else [found]


def as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def forwarded_target_groups(action: dict) -> list[str]:
    """The target group ARNs a forward action sends to: one, or the weighted ones."""
    if "targetGroupArn" in action:
        return [action["targetGroupArn"]]
    return [group["arn"] for group in action["forward"]["targetGroups"]]


def containers(task_definition: Resource) -> list[dict]:
    return task_definition.json("containerDefinitions")


def efs_volumes(task_definition: Resource) -> list[dict]:
    """The task's EFS volumes (others are task-local scratch space)."""
    return [v for v in task_definition.get("volumes") or [] if v.get("efsVolumeConfiguration")]


def task_definition_of(deployment: Deployment, service: Resource) -> Resource:
    arn = service.get("taskDefinition")
    for definition in deployment.of_type(TASK_DEFINITION):
        family = definition.get("family")
        if arn.split("/")[-1].rsplit(":", 1)[0] == family:
            return definition
    raise AssertionError(f"no task definition for {service.name} ({arn})")


def strings_in(value: Any) -> Iterator[str]:
    """Every string anywhere inside an input value, secret-wrapped or not."""
    value = unwrap(value)
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def is_secret_wrapped(value: Any) -> bool:
    from deployment import SECRET_SIG

    return isinstance(value, dict) and bool(value.get(SECRET_SIG))
