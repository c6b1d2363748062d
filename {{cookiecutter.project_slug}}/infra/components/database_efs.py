"""Database option `ecs_efs`: one PostgreSQL container on encrypted EFS, found through Cloud Map.

Exactly one task, ever: the deployment stops the old postmaster (min 0%) before starting the
new one (max 100%), because two postmasters on one data directory corrupt it.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.cluster import single_task_service
from components.database import (
    POSTGRES_PORT,
    DatabaseAccess,
    DatabaseArgs,
    password_value_from,
    postgres_security_group,
)
from components.efs_volume import AccessPointSpec, EfsVolume, EfsVolumeArgs
from components.naming import type_token
from components.security_groups import allow_all_egress
from components.tasks import (
    STOP_TIMEOUT_SECONDS,
    discovery_service,
    environment,
    execution_role,
    generated_credentials,
    log_configuration,
    network_configuration,
    task_role,
)

# The official Debian-based image runs Postgres as uid/gid 999.
POSTGRES_UID = 999
DATA_MOUNT = "/var/lib/postgresql/data"
DISCOVERY_NAME = "db"


class Database(pulumi.ComponentResource):
    """The seed's container Postgres, made safe: one task, private, encrypted, secret password."""

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("EfsDatabase"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.security_group = postgres_security_group(name, args, "PostgreSQL (ECS task)", child)
        allow_all_egress(f"{name}-egress", self.security_group, child)

        self.secret = generated_credentials(
            f"{name}-password",
            description="PostgreSQL credentials (ecs_efs)",
            username=args.username,
            parent=self,
        )
        # The app's own role: the migration task creates it and sets this password.
        self.app_secret = generated_credentials(
            f"{name}-app-password",
            description="PostgreSQL credentials of the app's role (ecs_efs)",
            username=args.app_username,
            parent=self,
        )
        self.volume = EfsVolume(
            f"{name}-data",
            EfsVolumeArgs(
                vpc_id=args.vpc_id,
                subnet_ids=args.private_subnet_ids,
                client_security_group_id=self.security_group.id,
                access_points={"pgdata": AccessPointSpec("/postgres", POSTGRES_UID, POSTGRES_UID)},
            ),
            opts=child,
        )
        # What AWS Backup protects (components/backup.py): the data directory's file system.
        self.backup_resource_arn = self.volume.file_system.arn
        exec_role = execution_role(
            f"{name}-execution",
            repository_arns=[],  # the image is public (ECR Public gallery)
            log_group_name=args.log_group_name,
            secret_arns=[self.secret.arn],
            opts=child,
        )
        role = task_role(f"{name}-task", statements=self.volume.client_statements(), opts=child)
        container = {
            "name": "postgres",
            "image": args.image,
            "essential": True,
            "user": f"{POSTGRES_UID}:{POSTGRES_UID}",
            "stopTimeout": STOP_TIMEOUT_SECONDS,
            "portMappings": [{"containerPort": POSTGRES_PORT, "protocol": "tcp"}],
            "environment": environment(
                {
                    "POSTGRES_DB": args.db_name,
                    "POSTGRES_USER": args.username,
                    # A subdirectory, so initdb finds it empty even if the mount root is not.
                    "PGDATA": f"{DATA_MOUNT}/pgdata",
                }
            ),
            "secrets": [
                {"name": "POSTGRES_PASSWORD", "valueFrom": password_value_from(self.secret.arn)}
            ],
            "mountPoints": [{"sourceVolume": "pgdata", "containerPath": DATA_MOUNT}],
            "healthCheck": {
                "command": ["CMD-SHELL", f"pg_isready -U {args.username} -d {args.db_name}"],
                "interval": 10,
                "timeout": 5,
                "retries": 5,
                "startPeriod": 30,
            },
            "logConfiguration": log_configuration(args.log_group_name, "postgres"),
        }
        task_definition = aws.ecs.TaskDefinition(
            f"{name}-task",
            family=f"{name}-{pulumi.get_stack()}",
            cpu="512",
            memory="1024",
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            runtime_platform={"operating_system_family": "LINUX", "cpu_architecture": "X86_64"},
            execution_role_arn=exec_role.arn,
            task_role_arn=role.arn,
            volumes=self.volume.task_volumes(),
            container_definitions=pulumi.Output.json_dumps([container]),
            opts=child,
        )
        registry = discovery_service(
            f"{name}-discovery",
            dns_name=DISCOVERY_NAME,
            namespace_id=args.namespace_id,
            opts=child,
        )
        self.service = single_task_service(
            f"{name}-service",
            cluster=args.cluster_arn,
            task_definition=task_definition.arn,
            network_configuration=network_configuration(
                args.task_subnet_ids, [self.security_group.id], args.assign_public_ip
            ),
            service_registries={"registry_arn": registry.arn},
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.volume.mount_targets),
        )
        self.password_secret_arn = self.secret.arn
        self.host = f"{DISCOVERY_NAME}.{args.namespace_name}"
        self.port = pulumi.Output.from_input(POSTGRES_PORT)
        self.db_name = args.db_name
        self.username = args.username
        self.password_value_from = password_value_from(self.secret.arn)
        # The app logs in as its own role, the migrations as the superuser, each with a password
        # injected at task start. Nothing rotates them (drawn once; the superuser's is read by
        # PostgreSQL only at initdb), so they cannot go stale under the app; who changes one by
        # hand restarts the app (infra/README.md, "Database credentials").
        self.access = DatabaseAccess(
            app_environment={"POSTGRES_USER": args.app_username},
            app_secrets={"POSTGRES_PASSWORD": password_value_from(self.app_secret.arn)},
            migration_environment={
                "POSTGRES_USER": args.username,
                "DB_APP_USER": args.app_username,
            },
            migration_secrets={
                "POSTGRES_PASSWORD": self.password_value_from,
                "DB_APP_PASSWORD": password_value_from(self.app_secret.arn),
            },
            task_role_statements=[],
            secret_arns=[self.secret.arn, self.app_secret.arn],
        )
        self.register_outputs(
            {
                "host": self.host,
                "service_name": self.service.name,
                "password_secret_arn": self.password_secret_arn,
                "app_password_secret_arn": self.app_secret.arn,
            }
        )
