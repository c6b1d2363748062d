"""Names shared by every component: type tokens and the length-capped load balancer names."""

from __future__ import annotations

import pulumi

# AWS caps ALB and target group names at 32 characters and Pulumi auto-naming appends
# "-" + 7 hex characters. The slug is at most 19 characters (stack_config.SLUG_MAX), so a
# suffix of at most 5 characters ("-alb", "-app", "-graf") always fits: 19 + 5 + 8 = 32.
LB_NAME_MAX = 32
AUTONAME_SUFFIX = 8
LB_SUFFIX_MAX = 5


def type_token(kind: str) -> str:
    """`<project>:infra:<Kind>`, the type token of one of this program's components."""
    return f"{pulumi.get_project()}:infra:{kind}"


def lb_name(suffix: str) -> str:
    """Logical name of an ALB or target group: the slug and a short suffix (Pulumi auto-names)."""
    name = f"{pulumi.get_project()}-{suffix}"
    if len(name) + AUTONAME_SUFFIX > LB_NAME_MAX:
        raise ValueError(f"{name!r} + auto-name suffix exceeds AWS's {LB_NAME_MAX}-character cap")
    return name


def prefixed(slug: str, concern: str) -> str:
    """Component names carry the slug so that every physical name says which service owns it."""
    return f"{slug}-{concern}"
