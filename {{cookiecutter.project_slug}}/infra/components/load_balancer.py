"""Public ALB and its listeners: HTTP only without a domain; HTTPS plus a redirect with one.

Services attach themselves with listener rules on `listener` (the one serving traffic). Paths
that only the VPC may read (`/metrics`: build info, routes, pool stats) are refused here,
before any service rule; Prometheus scrapes the tasks directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.naming import lb_name, type_token

# TLS 1.3 with TLS 1.2 fallback and forward-secret ciphers only (AWS's recommended policy).
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"

# Before every service rule (ALB rule priorities run 1..50000, lowest first).
PRIVATE_PATHS_PRIORITY = 1
PRIVATE_PATHS = ["/metrics", "/metrics/*"]
ACCESS_LOG_EXPIRY_DAYS = 90

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
    deletion_protection: bool = False
    access_logs: bool = False


class LoadBalancer(pulumi.ComponentResource):
    """Internet-facing, drops malformed headers, and never speaks plain HTTP when TLS exists."""

    def __init__(
        self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(type_token("LoadBalancer"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        access_logs = None
        alb_opts = child
        if args.access_logs:
            # The ALB checks that it may write to the bucket when logging is switched on.
            policy = self._access_log_bucket(name, args.deletion_protection, child)
            access_logs = {"bucket": policy.bucket, "enabled": True}
            alb_opts = pulumi.ResourceOptions(parent=self, depends_on=[policy])
        self.alb = aws.lb.LoadBalancer(
            lb_name("alb"),
            load_balancer_type="application",
            internal=False,
            subnets=list(args.public_subnet_ids),
            security_groups=[args.security_group_id],
            drop_invalid_header_fields=True,
            idle_timeout=60,
            enable_deletion_protection=args.deletion_protection,
            access_logs=access_logs,
            opts=alb_opts,
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

        aws.lb.ListenerRule(
            f"{name}-private-paths",
            listener_arn=self.listener.arn,
            priority=PRIVATE_PATHS_PRIORITY,
            conditions=[{"path_pattern": {"values": PRIVATE_PATHS}}],
            actions=[NOT_FOUND],
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

    @staticmethod
    def _access_log_bucket(
        name: str, deletion_protection: bool, child: pulumi.ResourceOptions
    ) -> aws.s3.BucketPolicy:
        """Private, SSE-S3 encrypted (the only encryption ALB log delivery supports), expiring."""
        bucket = aws.s3.Bucket(
            f"{name}-access-logs", force_destroy=not deletion_protection, opts=child
        )
        aws.s3.BucketPublicAccessBlock(
            f"{name}-access-logs",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-access-logs",
            bucket=bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-access-logs",
            bucket=bucket.id,
            rules=[
                {
                    "id": "expire",
                    "status": "Enabled",
                    "filter": {},
                    "expiration": {"days": ACCESS_LOG_EXPIRY_DAYS},
                }
            ],
            opts=child,
        )
        # Regions older than August 2022 deliver as their regional ELB account, newer ones as
        # the log-delivery service principal; granting both fits every region.
        elb_account = aws.elb.get_service_account_output().arn
        return aws.s3.BucketPolicy(
            f"{name}-access-logs",
            bucket=bucket.id,
            policy=pulumi.Output.json_dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"AWS": elb_account},
                            "Action": "s3:PutObject",
                            "Resource": pulumi.Output.concat(bucket.arn, "/AWSLogs/*"),
                        },
                        {
                            "Effect": "Allow",
                            "Principal": {
                                "Service": "logdelivery.elasticloadbalancing.amazonaws.com"
                            },
                            "Action": "s3:PutObject",
                            "Resource": pulumi.Output.concat(bucket.arn, "/AWSLogs/*"),
                        },
                        {
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:*",
                            "Resource": [bucket.arn, pulumi.Output.concat(bucket.arn, "/*")],
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        },
                    ],
                }
            ),
            opts=child,
        )
