"""Encrypted EFS file system with one access point per directory, for single-task stateful services.

Used by the containerised Postgres (database_efs.py) and by monitoring (monitoring.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.naming import type_token
from components.security_groups import allow_from_group

NFS_PORT = 2049


@dataclass
class AccessPointSpec:
    path: str  # directory inside the file system, e.g. "/postgres"
    uid: int  # the container's user; EFS enforces it for every file operation
    gid: int


@dataclass
class EfsVolumeArgs:
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]  # one mount target per AZ
    client_security_group_id: pulumi.Input[str]
    access_points: dict[str, AccessPointSpec]  # volume name -> spec
    backup: bool = True


class EfsVolume(pulumi.ComponentResource):
    """NFS admitted from the client group only; TLS and IAM authorisation on every mount, enforced
    by the file system's own policy (task definitions ask for them; the policy refuses clients
    that do not)."""

    def __init__(self, name: str, args: EfsVolumeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("EfsVolume"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.file_system = aws.efs.FileSystem(
            f"{name}-fs",
            encrypted=True,
            performance_mode="generalPurpose",
            throughput_mode="elastic",
            opts=child,
        )
        aws.efs.FileSystemPolicy(
            f"{name}-policy",
            file_system_id=self.file_system.id,
            policy=pulumi.Output.json_dumps(file_system_policy(self.file_system.arn)),
            opts=child,
        )
        aws.efs.BackupPolicy(
            f"{name}-backup",
            file_system_id=self.file_system.id,
            backup_policy={"status": "ENABLED" if args.backup else "DISABLED"},
            opts=child,
        )
        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-sg", vpc_id=args.vpc_id, description="EFS mount targets", opts=child
        )
        allow_from_group(
            f"{name}-nfs",
            self.security_group.id,
            args.client_security_group_id,
            NFS_PORT,
            child,
            "NFS from the tasks that own this volume",
        )
        self.mount_targets = [
            aws.efs.MountTarget(
                f"{name}-mount-{index}",
                file_system_id=self.file_system.id,
                subnet_id=subnet_id,
                security_groups=[self.security_group.id],
                opts=child,
            )
            for index, subnet_id in enumerate(args.subnet_ids)
        ]
        self.access_points = {
            volume: aws.efs.AccessPoint(
                f"{name}-{volume}",
                file_system_id=self.file_system.id,
                posix_user={"uid": spec.uid, "gid": spec.gid},
                root_directory={
                    "path": spec.path,
                    "creation_info": {
                        "owner_uid": spec.uid,
                        "owner_gid": spec.gid,
                        "permissions": "0750",
                    },
                },
                opts=child,
            )
            for volume, spec in args.access_points.items()
        }
        self.file_system_arn = self.file_system.arn
        self.register_outputs(
            {
                "file_system_id": self.file_system.id,
                "access_point_ids": {k: ap.id for k, ap in self.access_points.items()},
            }
        )

    def task_volumes(self) -> list[dict]:
        """`volumes` of a task definition mounting every access point over TLS with IAM auth."""
        return [
            {
                "name": volume,
                "efs_volume_configuration": {
                    "file_system_id": self.file_system.id,
                    "transit_encryption": "ENABLED",
                    "authorization_config": {"access_point_id": ap.id, "iam": "ENABLED"},
                },
            }
            for volume, ap in self.access_points.items()
        ]

    def client_statements(self) -> list[dict]:
        """Task-role permissions to mount and write this file system, through its access points."""
        return [
            {
                "Effect": "Allow",
                "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
                "Resource": [self.file_system.arn],
                "Condition": {
                    "StringEquals": {
                        "elasticfilesystem:AccessPointArn": [
                            ap.arn for ap in self.access_points.values()
                        ]
                    }
                },
            }
        ]


def file_system_policy(file_system_arn: pulumi.Input[str]) -> dict:
    """Any policy ends EFS's default of trusting every NFS client: mounts must then be IAM
    authorised (by the account's identity policies, i.e. the task roles), and over TLS."""
    account = aws.get_caller_identity_output().account_id
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "IamAuthorisedClientsOfThisAccount",
                "Effect": "Allow",
                "Principal": {"AWS": pulumi.Output.format("arn:aws:iam::{0}:root", account)},
                "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
                "Resource": file_system_arn,
                "Condition": {"Bool": {"elasticfilesystem:AccessedViaMountTarget": "true"}},
            },
            {
                "Sid": "TlsOnly",
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": "*",
                "Resource": file_system_arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    }
