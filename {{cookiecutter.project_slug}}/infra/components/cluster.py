"""ECS cluster with Container Insights, Fargate capacity providers, the log group and Cloud Map."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.naming import type_token

ON_DEMAND = "FARGATE"
SPOT = "FARGATE_SPOT"


@dataclass
class ClusterArgs:
    vpc_id: pulumi.Input[str]
    use_fargate_spot: bool
    log_retention_days: int
    namespace_name: str  # "<slug>.internal": app.<ns>, db.<ns>, prometheus.<ns>


class Cluster(pulumi.ComponentResource):
    """Spot is registered only when chosen, so no service can land on it by accident."""

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("Cluster"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.cluster = aws.ecs.Cluster(
            f"{name}",
            settings=[{"name": "containerInsights", "value": "enabled"}],
            opts=child,
        )
        providers = [ON_DEMAND, SPOT] if args.use_fargate_spot else [ON_DEMAND]
        self.capacity_providers = aws.ecs.ClusterCapacityProviders(
            f"{name}-capacity",
            cluster_name=self.cluster.name,
            capacity_providers=providers,
            default_capacity_provider_strategies=[{"capacity_provider": ON_DEMAND, "weight": 1}],
            opts=child,
        )
        # CloudWatch Logs encrypts every log group at rest with service keys; a customer key
        # would add a key policy for the logs service principal and buy nothing here.
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            retention_in_days=args.log_retention_days,
            opts=child,
        )
        self.namespace = aws.servicediscovery.PrivateDnsNamespace(
            f"{name}-namespace",
            name=args.namespace_name,
            vpc=args.vpc_id,
            description="Private DNS for service discovery (Prometheus, the database)",
            opts=child,
        )

        # Services name capacity providers in their strategy; ECS rejects them until the
        # providers are associated, so the ARN handed out waits for that association.
        self.cluster_arn = pulumi.Output.all(self.cluster.arn, self.capacity_providers.id).apply(
            lambda values: values[0]
        )
        self.cluster_name = self.cluster.name
        self.log_group_name = self.log_group.name
        self.namespace_id = self.namespace.id
        self.register_outputs(
            {
                "cluster_arn": self.cluster_arn,
                "cluster_name": self.cluster_name,
                "log_group_name": self.log_group_name,
                "namespace_id": self.namespace_id,
            }
        )


def capacity_strategy(use_fargate_spot: bool) -> list[dict]:
    """One on-demand task always runs; beyond it, three of four tasks go to Spot when chosen."""
    strategy = [{"capacity_provider": ON_DEMAND, "base": 1, "weight": 1}]
    if use_fargate_spot:
        strategy.append({"capacity_provider": SPOT, "base": 0, "weight": 3})
    return strategy


# Single-copy stateful services (ecs_efs Postgres, monitoring) never run on Spot: an interruption
# would take the only copy down.
SINGLE_TASK_STRATEGY = [{"capacity_provider": ON_DEMAND, "base": 1, "weight": 1}]


def single_task_service(name: str, **service_args: Any) -> aws.ecs.Service:
    """An ECS service that can never run two copies of its task (one data directory on EFS).

    One task on demand, and a deployment that stops the old task before it starts the new one.
    """
    return aws.ecs.Service(
        name,
        desired_count=1,
        capacity_provider_strategies=SINGLE_TASK_STRATEGY,
        deployment_minimum_healthy_percent=0,
        deployment_maximum_percent=100,
        deployment_circuit_breaker={"enable": True, "rollback": True},
        propagate_tags="SERVICE",
        **service_args,
    )
