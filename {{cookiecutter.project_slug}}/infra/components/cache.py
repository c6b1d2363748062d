"""Option cache=redis: ElastiCache for Valkey in front of item reads (app/cache.py).

Serverless by default (billed per GB stored and per request, no nodes to size); `cacheNodeType`
in the stack config makes it a node-based replication group instead (a primary and a replica in
another AZ). Either way: in the private subnets, reachable only from the app's security group,
TLS required and encrypted at rest, and the app logs in as its own user, whose password lives in
Secrets Manager and reaches the task as an ECS secret. The default user is switched off.

The app runs single-key commands only (GET, SET, EVALSHA on one key), so the standalone client
works against the serverless endpoint, whose proxy routes every key to its shard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.naming import type_token
from components.security_groups import allow_from_group
from components.tasks import generated_credentials, random_password, secret_value_from

ENGINE = "valkey"
MAJOR_ENGINE_VERSION = "8"
PORT = 6379
APP_USER_NAME = "app"
# What the app's user may run, on the app's keys only: connecting (AUTH, HELLO, CLIENT, PING),
# GET and SET, and the Lua script that stores the newest version (EVALSHA; SCRIPT LOAD when the
# server does not know it yet, as after a restart: app/cache.py).
APP_ACCESS = "on ~{prefix}* -@all +@connection +get +mget +set +evalsha +script|load"
CPU_ALARM_PERCENT = 80
MEMORY_ALARM_PERCENT = 80
ALARM_PERIOD_SECONDS = 300


@dataclass
class CacheArgs:
    vpc_id: pulumi.Input[str]
    private_subnet_ids: Sequence[pulumi.Input[str]]
    client_security_group_id: pulumi.Input[str]  # the app's tasks
    key_prefix: str  # CACHE_KEY_PREFIX of the app: its user may touch these keys only
    alarm_topic_arn: pulumi.Input[str]
    node_type: str = ""  # "" = serverless; e.g. "cache.t4g.micro" = a replication group
    max_data_gb: int = 1  # serverless: storage ceiling (also the memory alarm's 100%)
    max_ecpu_per_second: int = 5000  # serverless: throughput ceiling (the CPU alarm's 100%)


class Cache(pulumi.ComponentResource):
    """Valkey for the app's item cache; `app_environment`, `app_secrets` and `secret_arns` are
    what the app's task definition and execution role get."""

    def __init__(self, name: str, args: CacheArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("Cache"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-sg", vpc_id=args.vpc_id, description="Valkey (ElastiCache)", opts=child
        )
        allow_from_group(
            f"{name}-from-app",
            self.security_group.id,
            args.client_security_group_id,
            PORT,
            child,
            "App tasks to Valkey",
        )
        password = pulumi.Output.secret(random_password())
        self.secret = generated_credentials(
            f"{name}-password",
            description="Valkey credentials of the app's user (cache=redis)",
            username=APP_USER_NAME,
            password=password,
            parent=self,
        )
        user_group = self._users(name, args, password, child)
        if args.node_type:
            self.host, self.cache_ids = self._replication_group(name, args, user_group, child)
        else:
            self.host, self.cache_ids = self._serverless(name, args, user_group, child)
        self.url = pulumi.Output.format("rediss://{0}:{1}/0", self.host, PORT)
        self.app_environment: dict[str, pulumi.Input[str]] = {
            "REDIS_URL": self.url,
            "REDIS_USERNAME": APP_USER_NAME,
            "CACHE_KEY_PREFIX": args.key_prefix,
        }
        self.app_secrets: dict[str, pulumi.Input[str]] = {
            "REDIS_PASSWORD": secret_value_from(self.secret.arn, "password")
        }
        self.secret_arns: list[pulumi.Input[str]] = [self.secret.arn]
        self._alarms(name, args, child)
        self.register_outputs(
            {
                "url": self.url,
                "security_group_id": self.security_group.id,
                "password_secret_arn": self.secret.arn,
            }
        )

    def _users(
        self,
        name: str,
        args: CacheArgs,
        password: pulumi.Output[str],
        child: pulumi.ResourceOptions,
    ) -> aws.elasticache.UserGroup:
        """The app's user, and a `default` user (every user group has one) switched off."""
        stack_id = f"{pulumi.get_project()}-{pulumi.get_stack()}"[:32]
        # The password is drawn once, as the secret's (generated_credentials): later draws are
        # ignored rather than set on the user alone.
        keep_password = pulumi.ResourceOptions(parent=self, ignore_changes=["authenticationMode"])
        app_user = aws.elasticache.User(
            f"{name}-app-user",
            user_id=f"{stack_id}-app",
            user_name=APP_USER_NAME,
            engine=ENGINE,
            access_string=APP_ACCESS.format(prefix=args.key_prefix),
            authentication_mode={"type": "password", "passwords": [password]},
            opts=keep_password,
        )
        default_user = aws.elasticache.User(
            f"{name}-default-user",
            user_id=f"{stack_id}-off",
            user_name="default",
            engine=ENGINE,
            access_string="off -@all",
            authentication_mode={"type": "no-password-required"},  # and switched off
            opts=child,
        )
        return aws.elasticache.UserGroup(
            f"{name}-users",
            user_group_id=f"{stack_id}-cache",
            engine=ENGINE,
            user_ids=[default_user.user_id, app_user.user_id],
            opts=child,
        )

    def _serverless(
        self,
        name: str,
        args: CacheArgs,
        user_group: aws.elasticache.UserGroup,
        child: pulumi.ResourceOptions,
    ) -> tuple[pulumi.Output[str], dict[str, pulumi.Output[str]]]:
        """Serverless caches always require TLS and encrypt at rest."""
        cache = aws.elasticache.ServerlessCache(
            f"{name}-valkey",
            engine=ENGINE,
            major_engine_version=MAJOR_ENGINE_VERSION,
            description="Item cache (cache-aside, TTL-bound)",
            subnet_ids=list(args.private_subnet_ids),
            security_group_ids=[self.security_group.id],
            user_group_id=user_group.user_group_id,
            cache_usage_limits={
                "data_storage": {"maximum": args.max_data_gb, "unit": "GB"},
                "ecpu_per_seconds": [{"maximum": args.max_ecpu_per_second}],
            },
            snapshot_retention_limit=0,  # a cache: rebuilt from the database, never restored
            opts=child,
        )
        self.serverless = cache
        return cache.endpoints[0].address, {"clusterId": cache.name}

    def _replication_group(
        self,
        name: str,
        args: CacheArgs,
        user_group: aws.elasticache.UserGroup,
        child: pulumi.ResourceOptions,
    ) -> tuple[pulumi.Output[str], dict[str, pulumi.Output[str]]]:
        """A primary and a replica in another AZ, failing over on their own."""
        subnets = aws.elasticache.SubnetGroup(
            f"{name}-subnets", subnet_ids=list(args.private_subnet_ids), opts=child
        )
        group = aws.elasticache.ReplicationGroup(
            f"{name}-valkey",
            description="Item cache (cache-aside, TTL-bound)",
            engine=ENGINE,
            engine_version=f"{MAJOR_ENGINE_VERSION}.0",
            node_type=args.node_type,
            num_cache_clusters=2,
            automatic_failover_enabled=True,
            multi_az_enabled=True,
            port=PORT,
            subnet_group_name=subnets.name,
            security_group_ids=[self.security_group.id],
            user_group_ids=[user_group.user_group_id],
            at_rest_encryption_enabled=True,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            snapshot_retention_limit=0,
            auto_minor_version_upgrade=True,
            apply_immediately=False,
            opts=child,
        )
        self.replication_group = group
        primary = group.member_clusters.apply(lambda ids: sorted(ids)[0] if ids else "")
        return group.primary_endpoint_address, {"CacheClusterId": primary}

    def _alarms(self, name: str, args: CacheArgs, child: pulumi.ResourceOptions) -> None:
        """Errors (throttled or rejected commands), CPU and memory, to the alarm topic."""
        if args.node_type:
            alarms = [
                ("cpu", "EngineCPUUtilization", "Average", CPU_ALARM_PERCENT),
                ("memory", "DatabaseMemoryUsagePercentage", "Maximum", MEMORY_ALARM_PERCENT),
                ("errors", "AuthenticationFailures", "Sum", 0),
            ]
        else:  # against the usage limits: near them, requests are throttled
            ecpu = args.max_ecpu_per_second * ALARM_PERIOD_SECONDS * CPU_ALARM_PERCENT / 100
            stored = args.max_data_gb * 1024**3 * MEMORY_ALARM_PERCENT / 100
            alarms = [
                ("cpu", "ElastiCacheProcessingUnits", "Sum", ecpu),
                ("memory", "BytesUsedForCache", "Maximum", stored),
                ("errors", "ThrottledCmds", "Sum", 0),
            ]
        for suffix, metric, statistic, threshold in alarms:
            aws.cloudwatch.MetricAlarm(
                f"{name}-{suffix}",
                alarm_description=f"Valkey {metric} ({statistic}) above {threshold:g}, 15 min",
                namespace="AWS/ElastiCache",
                metric_name=metric,
                dimensions=self.cache_ids,
                statistic=statistic,
                period=ALARM_PERIOD_SECONDS,
                evaluation_periods=3,
                threshold=threshold,
                comparison_operator="GreaterThanThreshold",
                treat_missing_data="notBreaching",
                alarm_actions=[args.alarm_topic_arn],
                ok_actions=[args.alarm_topic_arn],
                opts=child,
            )
