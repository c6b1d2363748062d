"""GitHub Actions access: the OIDC provider, an image-push role and a deploy role.

The push role (trusted by the main branch) only pushes images to this stack's ECR repositories.
The deploy role (trusted only by the stack's GitHub environment, so its required reviewers and
branch rules always apply) ships an image: the migration task, `pulumi up` replacing task
definitions and updating services. Changing the infrastructure itself stays with an
administrator's credentials; widen the role deliberately if CI should own that too.
`deploy_api_calls.py` lists every AWS call a deploy makes; the infra tests evaluate it against
these policies.
{%- if cookiecutter.internal_packages %}
`packages.py` adds the CodeArtifact roles, trusted by the same provider, and lets the push role
read the internal packages its image build installs.
{%- endif %}
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
# The deploy only checks that the images exist; pushing is the push role's job.
ECR_READ_ACTIONS = ["ecr:DescribeImages"]
# Actions AWS offers no resource-level permissions for; they can only be granted on "*".
UNSCOPED_ACTIONS = [
    "ec2:DescribeAvailabilityZones",
    "ecs:DeregisterTaskDefinition",
    "ecs:DescribeTaskDefinition",
    "ecs:RegisterTaskDefinition",
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
    # The Route 53 zone the program looks up on every run (domainName set), else None.
    hosted_zone_id: pulumi.Input[str] | None = None
    # blue_green / canary: deploy.yml follows the app's deployment and may roll it back.
    staged_service_arn: pulumi.Input[str] | None = None
{%- if cookiecutter.auth == "jwt" %}
    # Cognito: the secret with the M2M client's credentials, which the workflows testing the
    # deployed stack exchange for a token. None = an external issuer (no such secret here).
    auth_client_secret_arn: pulumi.Input[str] | None = None
{%- endif %}


class CiAccess(pulumi.ComponentResource):
    """Push role: `repo:<owner>/<name>` on main. Deploy role: only its GitHub environment."""

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
        # Other components' GitHub roles trust the same provider.
        self.oidc_provider_arn = provider_arn
        repo = args.github_repository
        self.role = github_role(
            f"{name}-deploy",
            f"GitHub Actions deploys of {repo} (environment {args.deploy_environment})",
            trust_policy(provider_arn, f"repo:{repo}:environment:{args.deploy_environment}"),
            deploy_statements(args),
            child,
        )
        self.push_role = github_role(
            f"{name}-push",
            f"GitHub Actions image pushes of {repo} (main branch)",
            trust_policy(provider_arn, f"repo:{repo}:ref:refs/heads/main"),
            push_statements(args),
            child,
        )
        self.deploy_role_arn = self.role.arn
        self.push_role_arn = self.push_role.arn
        self.register_outputs(
            {"deploy_role_arn": self.deploy_role_arn, "push_role_arn": self.push_role_arn}
        )


def github_role(
    name: str,
    description: str,
    trust: dict,
    statements: list[dict],
    opts: pulumi.ResourceOptions,
) -> aws.iam.Role:
    """A role for GitHub Actions jobs: one inline policy of `statements`, 1-hour sessions."""
    role = aws.iam.Role(
        name,
        description=description,
        assume_role_policy=pulumi.Output.json_dumps(trust),
        max_session_duration=3600,
        opts=opts,
    )
    aws.iam.RolePolicy(
        name,
        role=role.id,
        policy=pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": statements}),
        opts=opts,
    )
    return role


def trust_policy(provider_arn: pulumi.Input[str], subject: str, *, pattern: bool = False) -> dict:
    """Only GitHub tokens of exactly `subject` (one branch, or one environment) may assume; with
    `pattern`, tokens whose subject matches it (`*` and `?` wildcards: every run of a repository,
    a tag pattern)."""
    audience = {f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com"}
    sub = {f"{GITHUB_OIDC_HOST}:sub": subject}
    if pattern:
        condition = {"StringEquals": audience, "StringLike": sub}
    else:
        condition = {"StringEquals": {**audience, **sub}}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": condition,
            }
        ],
    }


def _account_and_region() -> tuple[pulumi.Output[str], pulumi.Output[str]]:
    return aws.get_caller_identity_output().account_id, aws.get_region_output().region


def deploy_statements(args: CiAccessArgs) -> list[dict]:
    account, region = _account_and_region()
    cluster_name = pulumi.Output.from_input(args.cluster_arn).apply(lambda a: a.split("/")[-1])
    statements: list[dict] = [
        {"Effect": "Allow", "Action": UNSCOPED_ACTIONS, "Resource": "*"},
        {
            "Effect": "Allow",
            # aws:defaultTags (Pulumi.yaml) go with every RegisterTaskDefinition, and ECS then
            # authorises ecs:TagResource too; only as part of that registration.
            "Action": ["ecs:TagResource"],
            "Resource": pulumi.Output.format(
                "arn:aws:ecs:{0}:{1}:task-definition/*", region, account
            ),
            "Condition": {"StringEquals": {"ecs:CreateAction": "RegisterTaskDefinition"}},
        },
        {"Effect": "Allow", "Action": ECR_READ_ACTIONS, "Resource": list(args.repository_arns)},
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
    if args.staged_service_arn is not None:
        statements += [
            {
                "Effect": "Allow",
                "Action": ["ecs:ListServiceDeployments"],
                "Resource": args.staged_service_arn,
            },
            {
                "Effect": "Allow",
                "Action": ["ecs:DescribeServiceDeployments", "ecs:StopServiceDeployment"],
                "Resource": pulumi.Output.format(
                    "arn:aws:ecs:{0}:{1}:service-deployment/{2}/{3}/*",
                    region,
                    account,
                    cluster_name,
                    pulumi.Output.from_input(args.staged_service_arn).apply(
                        lambda arn: arn.split("/")[-1]
                    ),
                ),
            },
        ]
{%- if cookiecutter.auth == "jwt" %}
    if args.auth_client_secret_arn is not None:
        # That one secret; it uses the account's aws/secretsmanager key, so no KMS grant.
        statements.append(
            {
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue"],
                "Resource": args.auth_client_secret_arn,
            }
        )
{%- endif %}
    if args.hosted_zone_id is not None:
        # route53.get_zone (dns.py) runs on every `pulumi up`: ListHostedZones to find the zone
        # by name, then GetHostedZone and ListTagsForResource on it.
        statements += [
            {"Effect": "Allow", "Action": ["route53:ListHostedZones"], "Resource": "*"},
            {
                "Effect": "Allow",
                "Action": ["route53:GetHostedZone", "route53:ListTagsForResource"],
                "Resource": pulumi.Output.concat(
                    "arn:aws:route53:::hostedzone/", args.hosted_zone_id
                ),
            },
        ]
    return statements + state_statements(args, write=True)


def push_statements(args: CiAccessArgs) -> list[dict]:
    """Push images to this stack's repositories and read the stack's outputs; nothing else."""
    return [
        {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
        {"Effect": "Allow", "Action": ECR_PUSH_ACTIONS, "Resource": list(args.repository_arns)},
        *state_statements(args, write=False),
    ]


def state_statements(args: CiAccessArgs, *, write: bool) -> list[dict]:
    """The S3 state backend and the KMS secrets provider, when the stack config names them."""
    statements: list[dict] = []
    if args.state_bucket_name:
        bucket = f"arn:aws:s3:::{args.state_bucket_name}"
        objects = ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"] if write else ["s3:GetObject"]
        statements += [
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": bucket},
            {"Effect": "Allow", "Action": objects, "Resource": f"{bucket}/*"},
        ]
    if args.secrets_kms_key_arn:
        keys = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"] if write else ["kms:Decrypt"]
        statements.append({"Effect": "Allow", "Action": keys, "Resource": args.secrets_kms_key_arn})
    return statements
