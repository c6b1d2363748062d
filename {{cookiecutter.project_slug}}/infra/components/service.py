"""The app: task definition, Fargate service behind the ALB, autoscaling, and the migration task."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.cluster import capacity_strategy
from components.naming import lb_name, type_token
from components.tasks import (
    STOP_TIMEOUT_SECONDS,
    discovery_service,
    environment,
    execution_role,
    log_configuration,
    network_configuration,
    task_role,
)

APP_PORT = 8000
CONTAINER_NAME = "app"
LIVENESS_PATH = "/health"
# Shorter than the container's stopTimeout: the ALB has stopped routing to a draining task
# well before ECS kills it, so in-flight requests finish.
DEREGISTRATION_DELAY_SECONDS = 20
MIGRATION_COMMAND = ["alembic", "upgrade", "head"]
# The app writes nothing to its image's file system, so it runs read-only; /tmp is a task-local
# scratch volume (Fargate has no tmpfs) for libraries that create temporary files.
SCRATCH_VOLUME = "tmp"
SCRATCH_PATH = "/tmp"
CATCH_ALL_PRIORITY = 50000  # the lowest: every more specific path rule goes first
SCALE_OUT_COOLDOWN = 60
SCALE_IN_COOLDOWN = 300


@dataclass
class AppServiceArgs:
    cluster_arn: pulumi.Input[str]
    cluster_name: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    task_subnet_ids: Sequence[pulumi.Input[str]]
    assign_public_ip: bool
    security_group_id: pulumi.Input[str]
    listener_arn: pulumi.Input[str]
    alb_arn_suffix: pulumi.Input[str]
    image: pulumi.Input[str]
    repository_arn: pulumi.Input[str]
    log_group_name: pulumi.Input[str]
    namespace_id: pulumi.Input[str]
    # Plain settings (ENVIRONMENT, LOG_LEVEL, POSTGRES_HOST, ...); never a secret.
    environment: dict[str, pulumi.Input[str]]
    # ECS secrets: env var name -> Secrets Manager valueFrom (e.g. POSTGRES_PASSWORD).
    secrets: dict[str, pulumi.Input[str]]
    secret_arns: Sequence[pulumi.Input[str]]
    cpu: int = 512
    memory: int = 1024
    use_fargate_spot: bool = False
    autoscaling: bool = False
    min_tasks: int = 1
    max_tasks: int = 1
    cpu_target_percent: int = 60
    requests_per_target: int = 1000


class AppService(pulumi.ComponentResource):
    """Scales on its own; deployments roll back automatically when new tasks never get healthy."""

    def __init__(self, name: str, args: AppServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("AppService"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.target_group = aws.lb.TargetGroup(
            lb_name("app"),
            port=APP_PORT,
            protocol="HTTP",
            target_type="ip",
            vpc_id=args.vpc_id,
            deregistration_delay=DEREGISTRATION_DELAY_SECONDS,
            health_check={
                "path": LIVENESS_PATH,
                "matcher": "200",
                "interval": 15,
                "timeout": 5,
                "healthy_threshold": 2,
                "unhealthy_threshold": 3,
            },
            opts=child,
        )
        # ECS refuses a target group that no listener uses yet, hence depends_on below.
        route = aws.lb.ListenerRule(
            f"{name}-route",
            listener_arn=args.listener_arn,
            priority=CATCH_ALL_PRIORITY,
            conditions=[{"path_pattern": {"values": ["/*"]}}],
            actions=[{"type": "forward", "target_group_arn": self.target_group.arn}],
            opts=child,
        )

        self.execution_role = execution_role(
            f"{name}-execution",
            repository_arns=[args.repository_arn],
            log_group_name=args.log_group_name,
            secret_arns=args.secret_arns,
            opts=child,
        )
        # The app calls no AWS API; its role grants nothing.
        self.task_role = task_role(f"{name}-task", opts=child)

        self.task_definition = self._task_definition(f"{name}-task", args, None, "app", child)
        # Same image, settings and secrets as the app; the deploy workflow runs it with
        # `aws ecs run-task` before updating the service.
        self.migration_task_definition = self._task_definition(
            f"{name}-migrate", args, MIGRATION_COMMAND, "migrate", child
        )

        registry = discovery_service(
            f"{name}-discovery", dns_name="app", namespace_id=args.namespace_id, opts=child
        )
        self.service = aws.ecs.Service(
            f"{name}-service",
            cluster=args.cluster_arn,
            task_definition=self.task_definition.arn,
            desired_count=args.min_tasks,
            capacity_provider_strategies=capacity_strategy(args.use_fargate_spot),
            deployment_circuit_breaker={"enable": True, "rollback": True},
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=200,
            health_check_grace_period_seconds=60,
            network_configuration=network_configuration(
                args.task_subnet_ids, [args.security_group_id], args.assign_public_ip
            ),
            load_balancers=[
                {
                    "target_group_arn": self.target_group.arn,
                    "container_name": CONTAINER_NAME,
                    "container_port": APP_PORT,
                }
            ],
            service_registries={"registry_arn": registry.arn},
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            # The autoscaler owns the task count once the service exists.
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[route],
                ignore_changes=["desiredCount"] if args.autoscaling else None,
            ),
        )
        if args.autoscaling:
            self._autoscaling(name, args, child)

        self.service_name = self.service.name
        self.service_arn = self.service.arn
        self.role_arns = [self.execution_role.arn, self.task_role.arn]
        self.target_group_arn_suffix = self.target_group.arn_suffix
        self.register_outputs(
            {
                "service_name": self.service_name,
                "task_definition_arn": self.task_definition.arn,
                "migration_task_definition_arn": self.migration_task_definition.arn,
            }
        )

    def _task_definition(
        self,
        name: str,
        args: AppServiceArgs,
        command: list[str] | None,
        log_prefix: str,
        child: pulumi.ResourceOptions,
    ) -> aws.ecs.TaskDefinition:
        container: dict = {
            "name": CONTAINER_NAME,
            "image": args.image,
            "essential": True,
            "stopTimeout": STOP_TIMEOUT_SECONDS,
            "environment": environment(args.environment),
            "secrets": [
                {"name": key, "valueFrom": value} for key, value in sorted(args.secrets.items())
            ],
            "logConfiguration": log_configuration(args.log_group_name, log_prefix),
            # tini as PID 1 forwards SIGTERM to uvicorn and reaps zombies.
            "linuxParameters": {"initProcessEnabled": True},
            "readonlyRootFilesystem": True,
            "mountPoints": [
                {"sourceVolume": SCRATCH_VOLUME, "containerPath": SCRATCH_PATH, "readOnly": False}
            ],
        }
        if command is None:
            container["portMappings"] = [{"containerPort": APP_PORT, "protocol": "tcp"}]
        else:
            container["command"] = command
        return aws.ecs.TaskDefinition(
            name,
            # Per stack, so the dev and prod revisions of one account never interleave.
            family=f"{name}-{pulumi.get_stack()}",
            cpu=str(args.cpu),
            memory=str(args.memory),
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            runtime_platform={"operating_system_family": "LINUX", "cpu_architecture": "X86_64"},
            execution_role_arn=self.execution_role.arn,
            task_role_arn=self.task_role.arn,
            volumes=[{"name": SCRATCH_VOLUME}],
            container_definitions=pulumi.Output.json_dumps([container]),
            opts=child,
        )

    def _autoscaling(self, name: str, args: AppServiceArgs, child: pulumi.ResourceOptions):
        """Target tracking on CPU and on ALB requests per task; out fast, in slowly."""
        target = aws.appautoscaling.Target(
            f"{name}-scaling",
            service_namespace="ecs",
            scalable_dimension="ecs:service:DesiredCount",
            resource_id=pulumi.Output.format(
                "service/{0}/{1}", args.cluster_name, self.service.name
            ),
            min_capacity=args.min_tasks,
            max_capacity=args.max_tasks,
            opts=child,
        )
        common = {
            "policy_type": "TargetTrackingScaling",
            "service_namespace": target.service_namespace,
            "scalable_dimension": target.scalable_dimension,
            "resource_id": target.resource_id,
        }
        aws.appautoscaling.Policy(
            f"{name}-cpu",
            **common,
            target_tracking_scaling_policy_configuration={
                "target_value": args.cpu_target_percent,
                "predefined_metric_specification": {
                    "predefined_metric_type": "ECSServiceAverageCPUUtilization"
                },
                "scale_in_cooldown": SCALE_IN_COOLDOWN,
                "scale_out_cooldown": SCALE_OUT_COOLDOWN,
            },
            opts=child,
        )
        aws.appautoscaling.Policy(
            f"{name}-requests",
            **common,
            target_tracking_scaling_policy_configuration={
                "target_value": args.requests_per_target,
                "predefined_metric_specification": {
                    "predefined_metric_type": "ALBRequestCountPerTarget",
                    "resource_label": pulumi.Output.format(
                        "{0}/{1}", args.alb_arn_suffix, self.target_group.arn_suffix
                    ),
                },
                "scale_in_cooldown": SCALE_IN_COOLDOWN,
                "scale_out_cooldown": SCALE_OUT_COOLDOWN,
            },
            opts=child,
        )
