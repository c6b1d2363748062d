"""Internal packages on AWS CodeArtifact: the index the API client is published to and installs
read from, and the GitHub Actions roles that read it and publish the client.

The repository has public PyPI as its external connection, so one index serves the internal
packages and every public one. A stack creates the domain and the repository, or (stack config
`codeartifactCreate: false`) reuses existing ones by name and declares no CodeArtifact resource:
an organisation keeps one domain, possibly in another account (`codeartifactDomainOwner`), that
every service shares. Content is encrypted with the AWS-managed key (aws/codeartifact).

Both roles trust the GitHub OIDC provider of ci_access.py:
* read: any workflow run of the repository (pull requests too: CI installs from the index);
* publish: only runs for a `client-v*` tag; reading, and publishing versions of this service's
  client package alone.
The image push role of ci_access.py may read too: its image build installs from the index.
`deploy_api_calls.py` (PACKAGE_API_CALLS) lists the calls each makes; the infra tests evaluate
them against these policies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.ci_access import github_role, trust_policy
from components.naming import type_token

PYPI_EXTERNAL_CONNECTION = "public:pypi"
# The git tags whose workflow runs may publish the client (.github/workflows/packages.yml).
PUBLISH_TAG_PATTERN = "client-v*"


@dataclass
class PackagesArgs:
    domain: str  # CodeArtifact domain name
    repository: str  # repository in that domain, public PyPI as its upstream
    client_package: str  # the client's distribution name, PyPI-normalised: <slug>-client
    github_repository: str  # "owner/name" whose workflows read and publish
    oidc_provider_arn: pulumi.Input[str]  # ci_access.py's GitHub provider
    create: bool = True  # False: reuse the named domain and repository, declare none
    domain_owner: str = ""  # account id of a reused domain; "" = this account
    # Roles of this stack that read the index too (their names, i.e. ids), by a short key that
    # names the policy attached to each: {"push": <push role>} gives "<component>-push-read".
    readers: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    # Refuse to delete the domain and repository: they hold every published version.
    deletion_protection: bool = True


class Packages(pulumi.ComponentResource):
    """The package index (created or reused) and the GitHub roles that read and publish."""

    def __init__(self, name: str, args: PackagesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("Packages"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        region = aws.get_region_output().region
        self.domain_owner = pulumi.Output.from_input(
            args.domain_owner or aws.get_caller_identity_output().account_id
        )
        if args.create:
            self.domain, self.repository = self._create_index(name, args)
        else:
            self.domain = pulumi.Output.from_input(args.domain)
            self.repository = pulumi.Output.from_input(args.repository)
        prefix = pulumi.Output.format("arn:aws:codeartifact:{0}:{1}", region, self.domain_owner)
        domain_arn = pulumi.Output.format("{0}:domain/{1}", prefix, self.domain)
        repository_arn = pulumi.Output.format(
            "{0}:repository/{1}/{2}", prefix, self.domain, self.repository
        )
        # PyPI packages have no namespace: its segment of the ARN is empty.
        package_arn = pulumi.Output.format(
            "{0}:package/{1}/{2}/pypi//{3}",
            prefix,
            self.domain,
            self.repository,
            args.client_package,
        )
        read = read_statements(domain_arn, repository_arn)
        repo = args.github_repository
        self.read_role = github_role(
            f"{name}-read",
            f"GitHub Actions installs from the internal package index ({repo}, every run)",
            trust_policy(args.oidc_provider_arn, f"repo:{repo}:*", pattern=True),
            read,
            child,
        )
        self.publish_role = github_role(
            f"{name}-publish",
            f"GitHub Actions publishing of {args.client_package} ({repo}, tags "
            f"{PUBLISH_TAG_PATTERN})",
            trust_policy(
                args.oidc_provider_arn,
                f"repo:{repo}:ref:refs/tags/{PUBLISH_TAG_PATTERN}",
                pattern=True,
            ),
            [*read, publish_statement(package_arn)],
            child,
        )
        for key, role_name in args.readers.items():
            aws.iam.RolePolicy(
                f"{name}-{key}-read",
                role=role_name,
                policy=pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": read}),
                opts=child,
            )
        self.register_outputs(
            {
                "domain": self.domain,
                "domain_owner": self.domain_owner,
                "repository": self.repository,
                "read_role_arn": self.read_role.arn,
                "publish_role_arn": self.publish_role.arn,
            }
        )

    def _create_index(
        self, name: str, args: PackagesArgs
    ) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        # `pulumi destroy` (or a rename, which replaces) would delete every published version.
        kept = pulumi.ResourceOptions(parent=self, protect=args.deletion_protection)
        domain = aws.codeartifact.Domain(f"{name}-domain", domain=args.domain, opts=kept)
        repository = aws.codeartifact.Repository(
            f"{name}-repo",
            domain=domain.domain,
            repository=args.repository,
            description="Internal Python packages; public PyPI as the upstream",
            external_connections=aws.codeartifact.RepositoryExternalConnectionsArgs(
                external_connection_name=PYPI_EXTERNAL_CONNECTION
            ),
            opts=kept,
        )
        return domain.domain, repository.repository


def read_statements(domain_arn: pulumi.Input[str], repository_arn: pulumi.Input[str]) -> list[dict]:
    """`aws codeartifact get-authorization-token` and `get-repository-endpoint`, and installs from
    the index (public packages too, fetched through the external connection); nothing else."""
    return [
        {
            "Effect": "Allow",
            "Action": ["codeartifact:GetAuthorizationToken"],
            "Resource": domain_arn,
        },
        {
            "Effect": "Allow",
            # GetAuthorizationToken returns an STS bearer token of the caller for CodeArtifact.
            "Action": ["sts:GetServiceBearerToken"],
            "Resource": "*",
            "Condition": {"StringEquals": {"sts:AWSServiceName": "codeartifact.amazonaws.com"}},
        },
        {
            "Effect": "Allow",
            "Action": ["codeartifact:GetRepositoryEndpoint", "codeartifact:ReadFromRepository"],
            "Resource": repository_arn,
        },
    ]


def publish_statement(package_arn: pulumi.Input[str]) -> dict:
    """`uv publish` (twine's upload API) of versions of one package. PyPI uploads need only
    PublishPackageVersion; PutPackageMetadata is Maven's (CodeArtifact's publishing permissions)."""
    return {
        "Effect": "Allow",
        "Action": ["codeartifact:PublishPackageVersion"],
        "Resource": package_arn,
    }
