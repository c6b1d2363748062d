"""Option `monitoring=prometheus_grafana` on AWS: Prometheus, Alertmanager and Grafana as one
single-task service.

One task with all three containers: they are single-copy and stateful, deploy together, share one
EFS file system (an access point each for Prometheus and Grafana), and talk over localhost.
Prometheus finds every app task through the ECS API (`ecs_sd_configs`; Cloud Map DNS answers
with at most 8 records) and is never public; Alertmanager publishes to the stack's SNS topic;
Grafana is reached through the ALB at /grafana only over HTTPS or from the allowed CIDRs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.cluster import single_task_service
from components.efs_volume import AccessPointSpec, EfsVolume, EfsVolumeArgs
from components.naming import lb_name, type_token
from components.security_groups import APP_PORT, allow_all_egress, allow_from_group
from components.tasks import (
    STOP_TIMEOUT_SECONDS,
    discovery_service,
    environment,
    execution_role,
    generated_credentials,
    log_configuration,
    network_configuration,
    secret_value_from,
    task_role,
)

IMAGE_NAMES = ("prometheus", "grafana")
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
GRAFANA_PORT = 3000
GRAFANA_PATH = "/grafana"
# Evaluated before the app's catch-all rule.
GRAFANA_RULE_PRIORITY = 10
# Users the official images run as: prometheus "nobody", grafana 472 in group root.
PROMETHEUS_UID = 65534
GRAFANA_UID = 472
GRAFANA_GID = 0
DEREGISTRATION_DELAY_SECONDS = 20


@dataclass
class MonitoringArgs:
    cluster_arn: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    private_subnet_ids: Sequence[pulumi.Input[str]]
    task_subnet_ids: Sequence[pulumi.Input[str]]
    assign_public_ip: bool
    app_security_group_id: pulumi.Input[str]
    alb_security_group_id: pulumi.Input[str]
    listener_arn: pulumi.Input[str]
    log_group_name: pulumi.Input[str]
    namespace_id: pulumi.Input[str]
    prometheus_image: pulumi.Input[str]
    grafana_image: pulumi.Input[str]
    repository_arns: Sequence[pulumi.Input[str]]
    cluster_name: pulumi.Input[str]
    # Prometheus scrapes the tasks of this ECS service (ECS service discovery).
    app_service_name: pulumi.Input[str]
    # Alertmanager publishes every alert here (the topic of the CloudWatch alarms).
    alert_topic_arn: pulumi.Input[str]
    # Grafana's public URL, ending in /grafana/ (links in its UI and e-mails).
    grafana_root_url: pulumi.Input[str]
    # Grafana is put on the listener only when it is HTTPS or when these CIDRs restrict who can
    # reach it: its admin login must not cross the internet in plain HTTP.
    listener_is_https: bool
    grafana_allowed_cidrs: Sequence[str]


class Monitoring(pulumi.ComponentResource):
    """Exactly one task: min 0% / max 100%, so two Prometheus never share one TSDB directory."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("Monitoring"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.grafana_exposed = args.listener_is_https or bool(args.grafana_allowed_cidrs)
        self.security_group = self._security_group(name, args, child)
        self.volume = EfsVolume(
            f"{name}-data",
            EfsVolumeArgs(
                vpc_id=args.vpc_id,
                subnet_ids=args.private_subnet_ids,
                client_security_group_id=self.security_group.id,
                access_points={
                    "prometheus": AccessPointSpec("/prometheus", PROMETHEUS_UID, PROMETHEUS_UID),
                    "grafana": AccessPointSpec("/grafana", GRAFANA_UID, GRAFANA_GID),
                },
            ),
            opts=child,
        )
        self.admin_secret = generated_credentials(
            f"{name}-grafana-admin",
            description="Grafana admin credentials",
            username="admin",
            parent=self,
        )
        load_balancers, route = self._grafana_route(name, args, child)
        self.execution_role = execution_role(
            f"{name}-execution",
            repository_arns=args.repository_arns,
            log_group_name=args.log_group_name,
            secret_arns=[self.admin_secret.arn],
            opts=child,
        )
        self.task_role = task_role(
            f"{name}-task",
            statements=[
                *self.volume.client_statements(),
                *ecs_discovery_statements(args.cluster_arn, args.cluster_name),
                {"Effect": "Allow", "Action": ["sns:Publish"], "Resource": [args.alert_topic_arn]},
            ],
            opts=child,
        )
        task_definition = self._task_definition(name, args, child)
        registry = discovery_service(
            f"{name}-discovery",
            dns_name="prometheus",
            namespace_id=args.namespace_id,
            opts=child,
        )
        self.service = single_task_service(
            f"{name}-service",
            cluster=args.cluster_arn,
            task_definition=task_definition.arn,
            health_check_grace_period_seconds=120 if load_balancers else None,
            network_configuration=network_configuration(
                args.task_subnet_ids, [self.security_group.id], args.assign_public_ip
            ),
            load_balancers=load_balancers or None,
            service_registries={"registry_arn": registry.arn},
            # ECS refuses a target group no listener uses yet; EFS must be mountable at start.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[*route, *self.volume.mount_targets]
            ),
        )
        self.service_name = self.service.name
        self.service_arn = self.service.arn
        self.role_arns = [self.execution_role.arn, self.task_role.arn]
        self.admin_secret_arn = self.admin_secret.arn
        self.register_outputs(
            {
                "service_name": self.service_name,
                "security_group_id": self.security_group.id,
                "admin_secret_arn": self.admin_secret_arn,
            }
        )

    def _security_group(
        self, name: str, args: MonitoringArgs, child: pulumi.ResourceOptions
    ) -> aws.ec2.SecurityGroup:
        """Grafana from the ALB, Prometheus from this group only, and scraping into the app."""
        group = aws.ec2.SecurityGroup(
            f"{name}-sg", vpc_id=args.vpc_id, description="Prometheus and Grafana", opts=child
        )
        if self.grafana_exposed:
            allow_from_group(
                f"{name}-grafana-from-alb",
                group.id,
                args.alb_security_group_id,
                GRAFANA_PORT,
                child,
                "ALB to Grafana",
            )
        allow_from_group(
            f"{name}-prometheus-internal",
            group.id,
            group.id,
            PROMETHEUS_PORT,
            child,
            "Prometheus API inside the monitoring group only",
        )
        allow_from_group(
            f"{name}-scrape-app",
            args.app_security_group_id,
            group.id,
            APP_PORT,
            child,
            "Prometheus scrapes the app's /metrics",
        )
        allow_all_egress(f"{name}-egress", group, child)
        return group

    def _grafana_route(
        self, name: str, args: MonitoringArgs, child: pulumi.ResourceOptions
    ) -> tuple[list[dict], list[pulumi.Resource]]:
        """Target group and listener rule for /grafana, or nothing when Grafana stays private.

        Returns the service's `load_balancers` and the resources the service must wait for.
        """
        if not self.grafana_exposed:
            return [], []
        self.target_group = aws.lb.TargetGroup(
            lb_name("graf"),
            port=GRAFANA_PORT,
            protocol="HTTP",
            target_type="ip",
            vpc_id=args.vpc_id,
            deregistration_delay=DEREGISTRATION_DELAY_SECONDS,
            health_check={"path": f"{GRAFANA_PATH}/api/health", "matcher": "200", "interval": 30},
            opts=child,
        )
        paths = [GRAFANA_PATH, f"{GRAFANA_PATH}/*"]
        conditions: list[dict] = [{"path_pattern": {"values": paths}}]
        if args.grafana_allowed_cidrs:
            conditions.append({"source_ip": {"values": list(args.grafana_allowed_cidrs)}})
        route = aws.lb.ListenerRule(
            f"{name}-grafana-route",
            listener_arn=args.listener_arn,
            priority=GRAFANA_RULE_PRIORITY,
            conditions=conditions,
            actions=[{"type": "forward", "target_group_arn": self.target_group.arn}],
            opts=child,
        )
        load_balancer = {
            "target_group_arn": self.target_group.arn,
            "container_name": "grafana",
            "container_port": GRAFANA_PORT,
        }
        return [load_balancer], [route]

    def _task_definition(
        self, name: str, args: MonitoringArgs, child: pulumi.ResourceOptions
    ) -> aws.ecs.TaskDefinition:
        region = aws.get_region_output().region
        prometheus = {
            "name": "prometheus",
            "image": args.prometheus_image,
            "essential": True,
            "stopTimeout": STOP_TIMEOUT_SECONDS,
            "portMappings": [{"containerPort": PROMETHEUS_PORT, "protocol": "tcp"}],
            "mountPoints": [{"sourceVolume": "prometheus", "containerPath": "/prometheus"}],
            # The image's entrypoint puts these into prometheus.yml (see its render-config).
            "environment": environment(
                {
                    "AWS_REGION": region,
                    "ECS_CLUSTER": args.cluster_name,
                    "APP_SERVICE": args.app_service_name,
                }
            ),
            "dependsOn": [{"containerName": "alertmanager", "condition": "START"}],
            "logConfiguration": log_configuration(args.log_group_name, "prometheus"),
        }
        # Same image as Prometheus (its Dockerfile adds the alertmanager binary and config), so
        # no extra repository or build; the silences it keeps are lost with the task.
        alertmanager = {
            "name": "alertmanager",
            "image": args.prometheus_image,
            "essential": True,
            "stopTimeout": STOP_TIMEOUT_SECONDS,
            "entryPoint": [
                "/bin/render-config",
                "/etc/alertmanager",
                "/tmp/alertmanager",
                "/bin/alertmanager",
            ],
            "command": [
                "--config.file=/tmp/alertmanager/alertmanager.yml",
                "--storage.path=/tmp/alertmanager/data",
                # Only Prometheus, in this task, talks to it; one copy, so no gossip cluster.
                f"--web.listen-address=127.0.0.1:{ALERTMANAGER_PORT}",
                "--cluster.listen-address=",
            ],
            "environment": environment(
                {"AWS_REGION": region, "ALERT_TOPIC_ARN": args.alert_topic_arn}
            ),
            "healthCheck": {
                "command": [
                    "CMD",
                    "wget",
                    "-q",
                    "--spider",
                    f"http://127.0.0.1:{ALERTMANAGER_PORT}/-/ready",
                ],
                "interval": 30,
                "timeout": 5,
                "retries": 3,
                "startPeriod": 30,
            },
            "logConfiguration": log_configuration(args.log_group_name, "alertmanager"),
        }
        grafana = {
            "name": "grafana",
            "image": args.grafana_image,
            "essential": True,
            "stopTimeout": STOP_TIMEOUT_SECONDS,
            "portMappings": [{"containerPort": GRAFANA_PORT, "protocol": "tcp"}],
            "mountPoints": [{"sourceVolume": "grafana", "containerPath": "/var/lib/grafana"}],
            "environment": environment(
                {
                    "GF_SERVER_ROOT_URL": args.grafana_root_url,
                    "GF_SERVER_SERVE_FROM_SUB_PATH": "true",
                    "GF_AUTH_ANONYMOUS_ENABLED": "false",
                    "GF_USERS_ALLOW_SIGN_UP": "false",
                    # Same task, same network namespace: the provisioned datasource reads this.
                    "PROMETHEUS_URL": f"http://localhost:{PROMETHEUS_PORT}",
                }
            ),
            "secrets": [
                {
                    "name": "GF_SECURITY_ADMIN_PASSWORD",
                    "valueFrom": secret_value_from(self.admin_secret.arn, "password"),
                }
            ],
            "dependsOn": [{"containerName": "prometheus", "condition": "START"}],
            "logConfiguration": log_configuration(args.log_group_name, "grafana"),
        }
        return aws.ecs.TaskDefinition(
            f"{name}-task",
            family=f"{name}-{pulumi.get_stack()}",
            cpu="512",
            memory="1024",
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            runtime_platform={"operating_system_family": "LINUX", "cpu_architecture": "X86_64"},
            execution_role_arn=self.execution_role.arn,
            task_role_arn=self.task_role.arn,
            volumes=self.volume.task_volumes(),
            container_definitions=pulumi.Output.json_dumps([prometheus, alertmanager, grafana]),
            opts=child,
        )


def ecs_discovery_statements(
    cluster_arn: pulumi.Input[str], cluster_name: pulumi.Input[str]
) -> list[dict]:
    """Read-only ECS calls of Prometheus' `ecs_sd_configs`, limited to this stack's cluster.

    ListTasks pages through every task (100 a page), so discovery sees all of them. Prometheus
    first probes its credentials with DescribeClusters on the account's `default` cluster, so
    that ARN is allowed too. DescribeNetworkInterfaces (the public IP of a task's ENI) has no
    resource-level permissions; AWS requires "*".
    """
    account = aws.get_caller_identity_output().account_id
    region = aws.get_region_output().region
    prefix = pulumi.Output.format("arn:aws:ecs:{0}:{1}", region, account)
    return [
        {
            "Effect": "Allow",
            "Action": ["ecs:DescribeClusters"],
            "Resource": [cluster_arn, pulumi.Output.concat(prefix, ":cluster/default")],
        },
        {
            "Effect": "Allow",
            "Action": ["ecs:ListServices", "ecs:ListTasks"],
            "Resource": "*",
            "Condition": {"ArnEquals": {"ecs:cluster": cluster_arn}},
        },
        {
            "Effect": "Allow",
            "Action": ["ecs:DescribeServices"],
            "Resource": [pulumi.Output.format("{0}:service/{1}/*", prefix, cluster_name)],
        },
        {
            "Effect": "Allow",
            "Action": ["ecs:DescribeTasks"],
            "Resource": [pulumi.Output.format("{0}:task/{1}/*", prefix, cluster_name)],
        },
        {"Effect": "Allow", "Action": ["ec2:DescribeNetworkInterfaces"], "Resource": "*"},
    ]
