"""GitHub Actions access: the OIDC provider, and a deploy role only this repository can assume.

The role ships a new image (ECR push, the migration task, `pulumi up` replacing task definitions
and updating services). Changing the infrastructure itself stays with an administrator's
credentials; widen the role deliberately if CI should own that too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.naming import type_token

GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
# GitHub's published intermediate thumbprints; AWS now validates GitHub through its own trust
# store and ignores them, but the API still accepts a list.
GITHUB_THUMBPRINTS = [
    "6938fd4d98bab03faadb97b34396831e3780aea1",
    "1c58a3a8518e8759bf075b76b750d4f2df264fcd",
]
ECR_PUSH_ACTIONS = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:CompleteLayerUpload",
    "ecr:DescribeImages",
    "ecr:GetDownloadUrlForLayer",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
]
# Actions AWS offers no resource-level permissions for; they can only be granted on "*".
UNSCOPED_ACTIONS = [
    "ec2:DescribeAvailabilityZones",
    "ecr:GetAuthorizationToken",
    "ecs:DeregisterTaskDefinition",
    "ecs:DescribeTaskDefinition",
    "ecs:RegisterTaskDefinition",
    "route53:ListHostedZones",
    "secretsmanager:GetRandomPassword",
]


@dataclass
class CiAccessArgs:
    github_repository: str  # "owner/name"
    deploy_environment: str  # GitHub environment the deploy job runs in
    existing_oidc_provider_arn: str  # "" = create one (an account holds one per URL)
    repository_arns: Sequence[pulumi.Input[str]]
    cluster_arn: pulumi.Input[str]
    service_arns: Sequence[pulumi.Input[str]]
    pass_role_arns: Sequence[pulumi.Input[str]]
    log_group_name: pulumi.Input[str]
    state_bucket_name: str = ""
    secrets_kms_key_arn: str = ""


class CiAccess(pulumi.ComponentResource):
    """Trust is narrowed to `repo:<owner>/<name>` on main and in the deploy environment."""

    def __init__(self, name: str, args: CiAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("CiAccess"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if args.existing_oidc_provider_arn:
            provider_arn: pulumi.Input[str] = args.existing_oidc_provider_arn
        else:
            provider_arn = aws.iam.OpenIdConnectProvider(
                f"{name}-github",
                url=GITHUB_OIDC_URL,
                client_id_lists=["sts.amazonaws.com"],
                thumbprint_lists=GITHUB_THUMBPRINTS,
                opts=child,
            ).arn
        self.role = aws.iam.Role(
            f"{name}-deploy",
            description=f"GitHub Actions deploys of {args.github_repository}",
            assume_role_policy=pulumi.Output.json_dumps(trust_policy(provider_arn, args)),
            max_session_duration=3600,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-deploy",
            role=self.role.id,
            policy=pulumi.Output.json_dumps(
                {"Version": "2012-10-17", "Statement": deploy_statements(args)}
            ),
            opts=child,
        )
        self.deploy_role_arn = self.role.arn
        self.register_outputs({"deploy_role_arn": self.deploy_role_arn})


def trust_policy(provider_arn: pulumi.Input[str], args: CiAccessArgs) -> dict:
    repo = args.github_repository
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com"},
                    "StringLike": {
                        f"{GITHUB_OIDC_HOST}:sub": [
                            f"repo:{repo}:ref:refs/heads/main",
                            f"repo:{repo}:environment:{args.deploy_environment}",
                        ]
                    },
                },
            }
        ],
    }


def deploy_statements(args: CiAccessArgs) -> list[dict]:
    account = aws.get_caller_identity_output().account_id
    region = aws.get_region_output().region
    cluster_name = pulumi.Output.from_input(args.cluster_arn).apply(lambda a: a.split("/")[-1])
    statements: list[dict] = [
        {"Effect": "Allow", "Action": UNSCOPED_ACTIONS, "Resource": "*"},
        {"Effect": "Allow", "Action": ECR_PUSH_ACTIONS, "Resource": list(args.repository_arns)},
        {
            "Effect": "Allow",
            "Action": ["ecs:RunTask"],
            "Resource": "*",
            # Only in this stack's cluster: the migration task and nothing elsewhere.
            "Condition": {"ArnEquals": {"ecs:cluster": args.cluster_arn}},
        },
        {
            "Effect": "Allow",
            "Action": ["ecs:DescribeTasks", "ecs:StopTask"],
            "Resource": pulumi.Output.format(
                "arn:aws:ecs:{0}:{1}:task/{2}/*", region, account, cluster_name
            ),
        },
        {
            "Effect": "Allow",
            "Action": ["ecs:DescribeServices", "ecs:UpdateService"],
            "Resource": list(args.service_arns),
        },
        {
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": list(args.pass_role_arns),
            "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        },
        {
            "Effect": "Allow",
            "Action": ["logs:FilterLogEvents", "logs:GetLogEvents"],
            "Resource": pulumi.Output.format(
                "arn:aws:logs:{0}:{1}:log-group:{2}:*", region, account, args.log_group_name
            ),
        },
    ]
    if args.state_bucket_name:
        bucket = f"arn:aws:s3:::{args.state_bucket_name}"
        statements += [
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": bucket},
            {
                "Effect": "Allow",
                "Action": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
                "Resource": f"{bucket}/*",
            },
        ]
    if args.secrets_kms_key_arn:
        statements.append(
            {
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                "Resource": args.secrets_kms_key_arn,
            }
        )
    return statements
