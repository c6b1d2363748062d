"""Public ALB and its listeners: HTTP only without a domain; HTTPS plus a redirect with one.

Services attach themselves with listener rules on `listener` (the one serving traffic).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.naming import lb_name, type_token

# TLS 1.3 with TLS 1.2 fallback and forward-secret ciphers only (AWS's recommended policy).
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"

NOT_FOUND = {
    "type": "fixed-response",
    "fixed_response": {
        "content_type": "application/json",
        "status_code": "404",
        "message_body": '{"detail":"Not Found"}',
    },
}


@dataclass
class LoadBalancerArgs:
    vpc_id: pulumi.Input[str]
    public_subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    certificate_arn: pulumi.Input[str] | None  # None: HTTP only


class LoadBalancer(pulumi.ComponentResource):
    """Internet-facing, drops malformed headers, and never speaks plain HTTP when TLS exists."""

    def __init__(
        self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(type_token("LoadBalancer"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.alb = aws.lb.LoadBalancer(
            lb_name("alb"),
            load_balancer_type="application",
            internal=False,
            subnets=list(args.public_subnet_ids),
            security_groups=[args.security_group_id],
            drop_invalid_header_fields=True,
            idle_timeout=60,
            opts=child,
        )
        if args.certificate_arn is None:
            self.listener = aws.lb.Listener(
                f"{name}-http",
                load_balancer_arn=self.alb.arn,
                port=80,
                protocol="HTTP",
                default_actions=[NOT_FOUND],
                opts=child,
            )
        else:
            aws.lb.Listener(
                f"{name}-http-redirect",
                load_balancer_arn=self.alb.arn,
                port=80,
                protocol="HTTP",
                default_actions=[
                    {
                        "type": "redirect",
                        "redirect": {"port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"},
                    }
                ],
                opts=child,
            )
            self.listener = aws.lb.Listener(
                f"{name}-https",
                load_balancer_arn=self.alb.arn,
                port=443,
                protocol="HTTPS",
                ssl_policy=TLS_POLICY,
                certificate_arn=args.certificate_arn,
                default_actions=[NOT_FOUND],
                opts=child,
            )

        self.alb_arn = self.alb.arn
        self.alb_arn_suffix = self.alb.arn_suffix
        self.dns_name = self.alb.dns_name
        self.zone_id = self.alb.zone_id
        self.listener_arn = self.listener.arn
        self.register_outputs(
            {"alb_arn": self.alb_arn, "dns_name": self.dns_name, "listener_arn": self.listener_arn}
        )
