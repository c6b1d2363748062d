"""Database option `rds`: RDS PostgreSQL 16, private, TLS only; the app logs in with IAM tokens.

RDS rotates the master password (Secrets Manager) every 7 days; only the migration task, which
reads it afresh at each run, logs in with it. The app logs in as its own role with an IAM token
per connection (app/db_credentials.py): nothing it holds can go stale.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.database import (
    POSTGRES_PORT,
    DatabaseAccess,
    DatabaseArgs,
    password_value_from,
    postgres_security_group,
)
from components.naming import type_token

ENGINE_VERSION = "16"
PARAMETER_GROUP_FAMILY = "postgres16"
# Where the Dockerfile puts the RDS CA bundle that verifies the server (DB_SSL_ROOT_CERT).
CA_BUNDLE_PATH = "/app/certs/rds-global-bundle.pem"
LOG_EXPORTS = ["postgresql", "upgrade"]
PERFORMANCE_INSIGHTS_DAYS = 7  # the free retention
CPU_ALARM_PERCENT = 80
FREE_STORAGE_ALARM_BYTES = 2 * 1024**3


class Database(pulumi.ComponentResource):
    """Reachable only from the app's security group; never publicly accessible."""

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("RdsDatabase"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.security_group = postgres_security_group(name, args, "PostgreSQL (RDS)", child)
        subnet_group = aws.rds.SubnetGroup(
            f"{name}-subnets", subnet_ids=list(args.private_subnet_ids), opts=child
        )
        parameters = aws.rds.ParameterGroup(
            f"{name}-params",
            family=PARAMETER_GROUP_FAMILY,
            description="TLS required",
            # The server refuses unencrypted connections, whatever a client asks for.
            parameters=[{"name": "rds.force_ssl", "value": "1", "apply_method": "immediate"}],
            opts=child,
        )
        self.instance = aws.rds.Instance(
            f"{name}-postgres",
            engine="postgres",
            engine_version=ENGINE_VERSION,
            instance_class=args.instance_class,
            allocated_storage=args.allocated_storage_gb,
            max_allocated_storage=args.max_allocated_storage_gb,
            storage_type="gp3",
            storage_encrypted=True,
            db_name=args.db_name,
            username=args.username,
            # RDS creates and rotates the password in Secrets Manager; Pulumi never sees it.
            manage_master_user_password=True,
            db_subnet_group_name=subnet_group.name,
            parameter_group_name=parameters.name,
            # The app logs in as its own role with a token per connection (rds-db:connect).
            iam_database_authentication_enabled=True,
            performance_insights_enabled=True,
            performance_insights_retention_period=PERFORMANCE_INSIGHTS_DAYS,
            enabled_cloudwatch_logs_exports=LOG_EXPORTS,
            vpc_security_group_ids=[self.security_group.id],
            publicly_accessible=False,
            multi_az=args.multi_az,
            backup_retention_period=args.backup_retention_days,
            deletion_protection=args.deletion_protection,
            # A protected stack keeps a final snapshot; dev may be torn down cleanly.
            skip_final_snapshot=not args.deletion_protection,
            final_snapshot_identifier=(
                f"{pulumi.get_project()}-{pulumi.get_stack()}-final"
                if args.deletion_protection
                else None
            ),
            copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=True,
            apply_immediately=False,
            opts=child,
        )
        self.password_secret_arn = self.instance.master_user_secrets[0].secret_arn
        self.host = self.instance.address
        # What AWS Backup protects (components/backup.py).
        self.backup_resource_arn = self.instance.arn
        self.port = pulumi.Output.from_input(POSTGRES_PORT)
        self.db_name = args.db_name
        self.username = args.username
        self.password_value_from = password_value_from(self.password_secret_arn)
        self.access = self._access(args)
        if args.alarm_topic_arn is not None:
            self._alarms(name, args.alarm_topic_arn, child)
        self.register_outputs(
            {
                "host": self.host,
                "security_group_id": self.security_group.id,
                "password_secret_arn": self.password_secret_arn,
            }
        )

    def _access(self, args: DatabaseArgs) -> DatabaseAccess:
        """The app: its own role, an IAM token per connection, TLS verified against the RDS CA.
        The migrations: the master user, its password read from the managed secret at each
        run, and they create and grant the app's role (app/db_roles.py)."""
        account = aws.get_caller_identity_output().account_id
        region = aws.get_region_output().region
        db_user_arn = pulumi.Output.format(
            "arn:aws:rds-db:{0}:{1}:dbuser:{2}/{3}",
            region,
            account,
            self.instance.resource_id,
            args.app_username,
        )
        return DatabaseAccess(
            app_environment={
                "POSTGRES_USER": args.app_username,
                "DB_AUTH": "rds_iam",
                "DB_SSL_ROOT_CERT": CA_BUNDLE_PATH,
            },
            app_secrets={},
            migration_environment={
                "POSTGRES_USER": args.username,
                "DB_AUTH": "password",
                "DB_APP_USER": args.app_username,
            },
            migration_secrets={"POSTGRES_PASSWORD": self.password_value_from},
            task_role_statements=[
                {"Effect": "Allow", "Action": ["rds-db:connect"], "Resource": [db_user_arn]}
            ],
            secret_arns=[self.password_secret_arn],
        )

    def _alarms(self, name: str, topic_arn: pulumi.Input[str], child: pulumi.ResourceOptions):
        dimensions = {"DBInstanceIdentifier": self.instance.identifier}
        aws.cloudwatch.MetricAlarm(
            f"{name}-cpu",
            alarm_description=f"RDS CPU above {CPU_ALARM_PERCENT}% for 15 minutes",
            namespace="AWS/RDS",
            metric_name="CPUUtilization",
            dimensions=dimensions,
            statistic="Average",
            period=300,
            evaluation_periods=3,
            threshold=CPU_ALARM_PERCENT,
            comparison_operator="GreaterThanThreshold",
            alarm_actions=[topic_arn],
            ok_actions=[topic_arn],
            opts=child,
        )
        aws.cloudwatch.MetricAlarm(
            f"{name}-storage",
            alarm_description="RDS free storage below 2 GiB",
            namespace="AWS/RDS",
            metric_name="FreeStorageSpace",
            dimensions=dimensions,
            statistic="Minimum",
            period=300,
            evaluation_periods=1,
            threshold=FREE_STORAGE_ALARM_BYTES,
            comparison_operator="LessThanThreshold",
            alarm_actions=[topic_arn],
            ok_actions=[topic_arn],
            opts=child,
        )
