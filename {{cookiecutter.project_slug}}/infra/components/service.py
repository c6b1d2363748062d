"""The app: task definition, Fargate service behind the ALB, autoscaling, and the migration task.

Deployments use one of ECS's own strategies (`deploymentStrategy` in the stack config):
`rolling` replaces tasks in place; `blue_green` starts the new revision beside the old one on the
alternate target group, lets requests carrying the test header reach it, moves all production
traffic at once and keeps the old revision for the bake time; `canary` moves a percentage first,
bakes, then the rest. Both roll back by themselves when a deployment alarm fires during the bake
time (ServiceAlarms: 5xx rate, p99 latency, unhealthy targets), and every strategy keeps the
circuit breaker, which rolls back tasks that never get healthy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

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
# Requests with this header reach the new revision while a blue/green or canary deployment
# tests it; otherwise the current one. It opens nothing: the new revision is the same public
# API that is about to serve everyone, so the header is a routing switch, not a secret.
TEST_HEADER = "X-Deploy-Test"
TEST_ROUTE_PRIORITY = CATCH_ALL_PRIORITY - 1
SWAPPED_BY_ECS = [
    "loadBalancers[0].targetGroupArn",
    "loadBalancers[0].advancedConfiguration.alternateTargetGroupArn",
]
# Lets ECS move the listener rules' traffic between the two target groups.
ECS_LOAD_BALANCER_POLICY = (
    "arn:aws:iam::aws:policy/service-role/AmazonECSInfrastructureRolePolicyForLoadBalancers"
)
ECS_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ecs.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


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
    # The migration task's settings and secrets on top of the app's (its database login).
    migration_environment: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    migration_secrets: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    # What the app's code may do in AWS (e.g. rds-db:connect as its database role).
    task_role_statements: Sequence[dict] = ()
    cpu: int = 512
    memory: int = 1024
    use_fargate_spot: bool = False
    autoscaling: bool = False
    min_tasks: int = 1
    max_tasks: int = 1
    cpu_target_percent: int = 60
    requests_per_target: int = 1000
    deployment_strategy: str = "rolling"  # one of STRATEGIES
    bake_minutes: int = 10  # blue_green / canary: both revisions kept after the shift
    canary_percent: float = 10.0
    canary_bake_minutes: int = 5
    # CloudWatch alarms whose firing during a deployment rolls it back (blue_green / canary).
    deployment_alarm_names: Sequence[pulumi.Input[str]] = ()


class AppService(pulumi.ComponentResource):
    """Scales on its own; deployments roll back automatically when new tasks never get healthy."""

    def __init__(self, name: str, args: AppServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("AppService"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.target_group = self._target_group(lb_name("app"), args, child)
        self.target_groups = [self.target_group]
        staged = args.deployment_strategy != "rolling"
        if staged:
            # The new revision's tasks register here while the current ones serve.
            self.target_groups.append(self._target_group(lb_name("alt"), args, child))
        # ECS moves the weights of both rules during a deployment; Pulumi leaves them be.
        rule_opts = pulumi.ResourceOptions(
            parent=self, ignore_changes=["actions"] if staged else None
        )
        # ECS refuses a target group that no listener uses yet, hence depends_on below.
        route = aws.lb.ListenerRule(
            f"{name}-route",
            listener_arn=args.listener_arn,
            priority=CATCH_ALL_PRIORITY,
            conditions=[{"path_pattern": {"values": ["/*"]}}],
            actions=[self._forward()],
            opts=rule_opts,
        )
        self.test_route: aws.lb.ListenerRule | None = None
        self.deployment_role: aws.iam.Role | None = None
        if staged:
            self.test_route = aws.lb.ListenerRule(
                f"{name}-test-route",
                listener_arn=args.listener_arn,
                priority=TEST_ROUTE_PRIORITY,
                conditions=[
                    {"http_header": {"http_header_name": TEST_HEADER, "values": ["*"]}},
                    {"path_pattern": {"values": ["/*"]}},
                ],
                actions=[self._forward()],
                opts=rule_opts,
            )

        self.execution_role = execution_role(
            f"{name}-execution",
            repository_arns=[args.repository_arn],
            log_group_name=args.log_group_name,
            secret_arns=args.secret_arns,
            opts=child,
        )
        # Only what the database login needs (nothing, or rds-db:connect as the app's role).
        self.task_role = task_role(f"{name}-task", statements=args.task_role_statements, opts=child)

        self.task_definition = self._task_definition(
            f"{name}-task", args, args.environment, args.secrets, None, "app", child
        )
        # Same image and settings as the app, logged in as the migration user; the deploy
        # workflow runs it with `aws ecs run-task` before updating the service.
        self.migration_task_definition = self._task_definition(
            f"{name}-migrate",
            args,
            {**args.environment, **args.migration_environment},
            {**args.secrets, **args.migration_secrets},
            MIGRATION_COMMAND,
            "migrate",
            child,
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
                    **(self._advanced(name, route, self.test_route, child) if staged else {}),
                }
            ],
            **(self._staged_deployment(args) if staged else {}),
            service_registries={"registry_arn": registry.arn},
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            # The autoscaler owns the task count once the service exists; with two target
            # groups, ECS swaps them at the end of each deployment (the new revision's group
            # becomes the primary one), which is not drift to undo.
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[route],
                ignore_changes=[
                    *(["desiredCount"] if args.autoscaling else []),
                    *(SWAPPED_BY_ECS if staged else []),
                ]
                or None,
            ),
        )
        if args.autoscaling:
            self._autoscaling(name, args, child)

        self.service_name = self.service.name
        self.service_arn = self.service.arn
        self.role_arns = [self.execution_role.arn, self.task_role.arn]
        self.target_group_arn_suffix = self.target_group.arn_suffix
        self.target_group_arn_suffixes = [group.arn_suffix for group in self.target_groups]
        self.register_outputs(
            {
                "service_name": self.service_name,
                "task_definition_arn": self.task_definition.arn,
                "migration_task_definition_arn": self.migration_task_definition.arn,
            }
        )

    def _target_group(
        self, name: str, args: AppServiceArgs, child: pulumi.ResourceOptions
    ) -> aws.lb.TargetGroup:
        return aws.lb.TargetGroup(
            name,
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

    def _forward(self) -> dict:
        """Everything to the first target group; with two, the second at weight 0 (ECS's)."""
        if len(self.target_groups) == 1:
            return {"type": "forward", "target_group_arn": self.target_group.arn}
        weights = zip(self.target_groups, (100, 0), strict=True)
        return {
            "type": "forward",
            "forward": {
                "target_groups": [{"arn": group.arn, "weight": weight} for group, weight in weights]
            },
        }

    def _advanced(
        self,
        name: str,
        route: aws.lb.ListenerRule,
        test_route: aws.lb.ListenerRule | None,
        child: pulumi.ResourceOptions,
    ) -> dict:
        """The alternate target group, the two rules ECS moves, and the role it moves them with."""
        role = aws.iam.Role(
            f"{name}-deployments", assume_role_policy=json.dumps(ECS_TRUST), opts=child
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-deployments", role=role.name, policy_arn=ECS_LOAD_BALANCER_POLICY, opts=child
        )
        self.deployment_role = role
        advanced = {
            "alternate_target_group_arn": self.target_groups[1].arn,
            "production_listener_rule": route.arn,
            "role_arn": role.arn,
        }
        if test_route is not None:
            advanced["test_listener_rule"] = test_route.arn
        return {"advanced_configuration": advanced}

    @staticmethod
    def _staged_deployment(args: AppServiceArgs) -> dict:
        """ECS's blue/green or canary strategy, rolled back by the deployment alarms."""
        configuration: dict = {
            "strategy": args.deployment_strategy.upper(),
            "bake_time_in_minutes": str(args.bake_minutes),
        }
        if args.deployment_strategy == "canary":
            configuration["canary_configuration"] = {
                "canary_percent": args.canary_percent,
                "canary_bake_time_in_minutes": str(args.canary_bake_minutes),
            }
        return {
            "deployment_configuration": configuration,
            "alarms": {
                "alarm_names": list(args.deployment_alarm_names),
                "enable": True,
                "rollback": True,
            },
        }

    def _task_definition(
        self,
        name: str,
        args: AppServiceArgs,
        variables: dict[str, pulumi.Input[str]],
        secrets: dict[str, pulumi.Input[str]],
        command: list[str] | None,
        log_prefix: str,
        child: pulumi.ResourceOptions,
    ) -> aws.ecs.TaskDefinition:
        container: dict = {
            "name": CONTAINER_NAME,
            "image": args.image,
            "essential": True,
            "stopTimeout": STOP_TIMEOUT_SECONDS,
            "environment": environment(variables),
            "secrets": [{"name": name, "valueFrom": arn} for name, arn in sorted(secrets.items())],
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
