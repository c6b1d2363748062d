"""Does an identity policy allow one request (action, resource, condition context)?

policyuniverse (Netflix) parses the statements and expands action wildcards against its catalogue
of every IAM action. It does not evaluate a request, so this module adds, following AWS's policy
evaluation logic: resource ARN matching (`*` and `?` wildcards, case-sensitive), the condition
operators the project's policies use, and explicit Deny over Allow. Anything else (an unknown
operator, NotResource, policy variables) raises instead of guessing.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from policyuniverse import all_permissions
from policyuniverse.statement import Statement


class UnsupportedPolicy(ValueError):
    """The policy uses a feature this evaluator does not implement."""


# Actions AWS added after policyuniverse's catalogue (its newest release, 1.5.1.20231109, is of
# November 2023): ECS service deployments (2025), which deploy.yml follows for blue/green and
# canary. Source: the ECS API reference (ListServiceDeployments, DescribeServiceDeployments,
# StopServiceDeployment).
NEWER_ACTIONS = frozenset(
    {
        "ecs:listservicedeployments",
        "ecs:describeservicedeployments",
        "ecs:stopservicedeployment",
    }
)


def is_known_action(action: str) -> bool:
    return action.lower() in all_permissions or action.lower() in NEWER_ACTIONS


def _like(pattern: str, value: str) -> bool:
    if "${" in pattern:
        raise UnsupportedPolicy(f"policy variables are not evaluated: {pattern}")
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _values(value: Any) -> list[str]:
    return [str(v) for v in (value if isinstance(value, list) else [value])]


OPERATORS = {
    "StringEquals": lambda expected, actual: actual == expected,
    "StringLike": lambda expected, actual: _like(expected, actual),
    "ArnEquals": lambda expected, actual: actual == expected,
    "ArnLike": lambda expected, actual: _like(expected, actual),
    "Bool": lambda expected, actual: actual.lower() == expected.lower(),
}


def _condition_holds(conditions: dict[str, dict[str, Any]], context: dict[str, str]) -> bool:
    """Every operator and key must match; any one value of a key suffices (AWS's OR)."""
    for operator, keys in conditions.items():
        if_exists = operator.endswith("IfExists")
        base = operator.removesuffix("IfExists")
        if base not in OPERATORS:
            raise UnsupportedPolicy(f"condition operator {operator} is not evaluated")
        for key, expected in keys.items():
            actual = context.get(key)
            if actual is None:
                if if_exists:
                    continue
                return False
            if not any(OPERATORS[base](value, actual) for value in _values(expected)):
                return False
    return True


def _matches(statement: dict, action: str, resource: str, context: dict[str, str]) -> bool:
    if "NotResource" in statement or "NotPrincipal" in statement:
        raise UnsupportedPolicy(f"NotResource/NotPrincipal are not evaluated: {statement}")
    parsed = Statement(statement)
    if action.lower() not in parsed.actions_expanded:
        return False
    if not any(_like(pattern, resource) for pattern in _values(statement.get("Resource", []))):
        return False
    return _condition_holds(statement.get("Condition", {}), context)


def allows(policy: dict, action: str, resource: str, context: dict[str, str] | None = None) -> bool:
    """True when some Allow statement matches the request and no Deny statement does."""
    found = policy["Statement"]
    allowed = False
    for statement in found if isinstance(found, list) else [found]:
        if not _matches(statement, action, resource, context or {}):
            continue
        if statement["Effect"] == "Deny":
            return False
        allowed = True
    return allowed
