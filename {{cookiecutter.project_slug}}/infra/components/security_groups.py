"""Security groups of the request path: the internet reaches the ALB, the ALB reaches the app.

Rules are separate resources (not inline) so other components can add their own rules to these
groups (the database admits the app, monitoring scrapes the app) without cycles.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.naming import type_token

APP_PORT = 8000
ANYWHERE_IPV4 = "0.0.0.0/0"


@dataclass
class SecurityGroupsArgs:
    vpc_id: pulumi.Input[str]
    https: bool


def allow_all_egress(name: str, group: aws.ec2.SecurityGroup, opts: pulumi.ResourceOptions):
    """Tasks pull images and talk to AWS APIs; outbound is open, inbound is what is guarded."""
    return aws.vpc.SecurityGroupEgressRule(
        name,
        security_group_id=group.id,
        ip_protocol="-1",
        cidr_ipv4=ANYWHERE_IPV4,
        opts=opts,
    )


def allow_from_group(
    name: str,
    group_id: pulumi.Input[str],
    source_group_id: pulumi.Input[str],
    port: int,
    opts: pulumi.ResourceOptions,
    description: str,
) -> aws.vpc.SecurityGroupIngressRule:
    """TCP `port` into `group_id`, from members of `source_group_id` only."""
    return aws.vpc.SecurityGroupIngressRule(
        name,
        security_group_id=group_id,
        referenced_security_group_id=source_group_id,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        description=description,
        opts=opts,
    )


class SecurityGroups(pulumi.ComponentResource):
    """The ALB is the only thing open to the world, on 80 (and 443 with a domain)."""

    def __init__(
        self, name: str, args: SecurityGroupsArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(type_token("SecurityGroups"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.alb = aws.ec2.SecurityGroup(
            f"{name}-alb", vpc_id=args.vpc_id, description="Public load balancer", opts=child
        )
        for port in (80, 443) if args.https else (80,):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-alb-{port}",
                security_group_id=self.alb.id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                cidr_ipv4=ANYWHERE_IPV4,
                description="HTTP(S) from the internet",
                opts=child,
            )
        allow_all_egress(f"{name}-alb-egress", self.alb, child)

        self.app = aws.ec2.SecurityGroup(
            f"{name}-app", vpc_id=args.vpc_id, description="Application tasks", opts=child
        )
        allow_from_group(
            f"{name}-app-from-alb", self.app.id, self.alb.id, APP_PORT, child, "ALB to the app"
        )
        allow_all_egress(f"{name}-app-egress", self.app, child)

        self.alb_security_group_id = self.alb.id
        self.app_security_group_id = self.app.id
        self.register_outputs(
            {
                "alb_security_group_id": self.alb_security_group_id,
                "app_security_group_id": self.app_security_group_id,
            }
        )
