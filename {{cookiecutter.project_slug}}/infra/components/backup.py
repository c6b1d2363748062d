"""AWS Backup of the database (the RDS instance, or the EFS file system of the PostgreSQL task):
a daily plan into an encrypted vault of the stack's own, kept `retention_days`, and with
`dr_region` set a copy of each backup to a vault in that region (its own KMS key there), kept
`dr_retention_days`. infra/RUNBOOK-DR.md says how to restore from either.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.naming import type_token

# 05:00 UTC every day, within AWS Backup's default 8-hour start window.
DAILY = "cron(0 5 * * ? *)"
BACKUP_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "backup.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
BACKUP_POLICIES = (
    "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup",
    "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores",
)


@dataclass
class BackupArgs:
    resource_arns: Sequence[pulumi.Input[str]]
    retention_days: int = 35
    dr_region: str = ""  # "" = no copy to another region
    dr_retention_days: int = 35
    # With dr_region: ECR replicates these repositories (name prefix) to it too.
    ecr_repository_prefix: str = ""


class Backups(pulumi.ComponentResource):
    """The vault(s), the plan, the role AWS Backup works as, and what it protects."""

    def __init__(self, name: str, args: BackupArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("Backups"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.vault = self._vault(name, child)
        self.dr_vault: aws.backup.Vault | None = None
        copy_actions = []
        if args.dr_region:
            provider = aws.Provider(f"{name}-dr-region", region=args.dr_region, opts=child)
            self.dr_vault = self._vault(
                f"{name}-dr", pulumi.ResourceOptions(parent=self, provider=provider)
            )
            copy_actions = [
                {
                    "destination_vault_arn": self.dr_vault.arn,
                    "lifecycle": {"delete_after": args.dr_retention_days},
                }
            ]
            if args.ecr_repository_prefix:
                # The images the DR stack deploys. ECR keeps one replication configuration
                # per registry and region: infra/RUNBOOK-DR.md, for accounts with several
                # services.
                account = aws.get_caller_identity_output().account_id
                aws.ecr.ReplicationConfiguration(
                    f"{name}-images",
                    replication_configuration={
                        "rules": [
                            {
                                "destinations": [
                                    {"region": args.dr_region, "registry_id": account}
                                ],
                                "repository_filters": [
                                    {
                                        "filter": args.ecr_repository_prefix,
                                        "filter_type": "PREFIX_MATCH",
                                    }
                                ],
                            }
                        ]
                    },
                    opts=child,
                )
        self.plan = aws.backup.Plan(
            name,
            rules=[
                {
                    "rule_name": "daily",
                    "target_vault_name": self.vault.name,
                    "schedule": DAILY,
                    "start_window": 60,
                    "completion_window": 480,
                    "lifecycle": {"delete_after": args.retention_days},
                    "copy_actions": copy_actions,
                }
            ],
            opts=child,
        )
        role = aws.iam.Role(f"{name}-role", assume_role_policy=json.dumps(BACKUP_TRUST), opts=child)
        for index, policy in enumerate(BACKUP_POLICIES):
            aws.iam.RolePolicyAttachment(
                f"{name}-role-{index}", role=role.name, policy_arn=policy, opts=child
            )
        aws.backup.Selection(
            f"{name}-database",
            plan_id=self.plan.id,
            iam_role_arn=role.arn,
            resources=list(args.resource_arns),
            opts=child,
        )
        self.role = role
        self.register_outputs(
            {
                "vault_name": self.vault.name,
                "dr_vault_arn": self.dr_vault.arn if self.dr_vault else None,
                "plan_id": self.plan.id,
            }
        )

    @staticmethod
    def _vault(name: str, opts: pulumi.ResourceOptions) -> aws.backup.Vault:
        """A vault encrypted with a key of its own (in the vault's region), rotated yearly."""
        key = aws.kms.Key(
            f"{name}-vault-key",
            description=f"{name}: AWS Backup vault",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            opts=opts,
        )
        return aws.backup.Vault(f"{name}-vault", kms_key_arn=key.arn, opts=opts)
