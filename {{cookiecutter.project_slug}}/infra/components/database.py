"""The contract both database implementations (database_rds.py, database_efs.py) fulfil.

The post-gen hook keeps exactly one implementation; __main__ imports it as `Database`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.security_groups import allow_from_group
from components.tasks import secret_value_from

POSTGRES_PORT = 5432
# Both implementations keep credentials as a Secrets Manager JSON document with these keys
# (RDS's managed master secret has this shape), so the app's task definition reads the
# password the same way from either: "<secret arn>:password::".
PASSWORD_JSON_KEY = "password"


@dataclass
class DatabaseArgs:
    vpc_id: pulumi.Input[str]
    private_subnet_ids: Sequence[pulumi.Input[str]]
    client_security_group_id: pulumi.Input[str]  # the app (and its migration task)
    db_name: str
    username: str  # the master user: only the migration task logs in as it (rds)
    deletion_protection: bool
    app_username: str = "app_login"  # the role the app logs in as (rds: IAM tokens)
    # RDS only
    instance_class: str = "db.t4g.micro"
    allocated_storage_gb: int = 20
    max_allocated_storage_gb: int = 100
    multi_az: bool = False
    backup_retention_days: int = 7
    alarm_topic_arn: pulumi.Input[str] | None = None
    # ECS + EFS only
    cluster_arn: pulumi.Input[str] | None = None
    namespace_id: pulumi.Input[str] | None = None
    namespace_name: str = ""
    log_group_name: pulumi.Input[str] | None = None
    task_subnet_ids: Sequence[pulumi.Input[str]] = ()
    assign_public_ip: bool = False
    image: str = "public.ecr.aws/docker/library/postgres:16"


@dataclass
class DatabaseAccess:
    """How the app and the migration task log in: what each implementation hands the service.

    `app_environment`/`app_secrets` go into the app's task definition; the migration task gets
    them with `migration_environment`/`migration_secrets` on top; `task_role_statements` are
    what the app's task role needs; `secret_arns` what the execution role injects.
    """

    app_environment: dict[str, pulumi.Input[str]]
    app_secrets: dict[str, pulumi.Input[str]]
    migration_environment: dict[str, pulumi.Input[str]]
    migration_secrets: dict[str, pulumi.Input[str]]
    task_role_statements: list[dict]
    secret_arns: list[pulumi.Input[str]]


def password_value_from(secret_arn: pulumi.Input[str]) -> pulumi.Output[str]:
    """ECS `secrets[].valueFrom` selecting the password key of the credentials secret."""
    return secret_value_from(secret_arn, PASSWORD_JSON_KEY)


def postgres_security_group(
    name: str, args: DatabaseArgs, description: str, child: pulumi.ResourceOptions
) -> aws.ec2.SecurityGroup:
    """PostgreSQL's security group: only the app and its migration task may connect."""
    group = aws.ec2.SecurityGroup(
        f"{name}-sg", vpc_id=args.vpc_id, description=description, opts=child
    )
    allow_from_group(
        f"{name}-from-app",
        group.id,
        args.client_security_group_id,
        POSTGRES_PORT,
        child,
        "App and migration tasks to PostgreSQL",
    )
    return group
