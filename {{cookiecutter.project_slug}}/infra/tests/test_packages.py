"""Internal packages: the CodeArtifact index (created, or reused by name) with public PyPI as its
upstream, and the GitHub roles that read it (every run; the image push role too) and publish the
client (only client-v* tags), each allowed exactly what its calls need."""

from __future__ import annotations

import dataclasses

import pytest
from components.deploy_api_calls import PACKAGE_API_CALLS
from conftest import PROJECT
from deployment import Deployment, Resource
from iam_evaluator import allows, is_known_action
from mocks import ACCOUNT_ID, REGION
from stack_config import ConfigError, codeartifact_domain_default, validate
from test_deploy_api_calls import base_values, fill
from test_stack_config import VALID
from variants import PACKAGES_RUNS, VARIANTS

SLUG = PROJECT["name"]
CLIENT = f"{SLUG}-client"
DOMAIN = "aws:codeartifact/domain:Domain"
REPOSITORY = "aws:codeartifact/repository:Repository"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
OIDC = "token.actions.githubusercontent.com"
(REUSED,) = [overrides for name, _, overrides in VARIANTS if name == "codeartifact-reused"]
OUTPUTS = (
    "codeartifact_domain",
    "codeartifact_domain_owner",
    "codeartifact_repository",
    "packages_read_role_arn",
    "packages_publish_role_arn",
)


def read_role(deployment: Deployment) -> Resource:
    return deployment.one(ROLE, "-packages-read")


def publish_role(deployment: Deployment) -> Resource:
    return deployment.one(ROLE, "-packages-publish")


def push_role(deployment: Deployment) -> Resource:
    return deployment.one(ROLE, "-ci-push")


def policies_of(deployment: Deployment, role: Resource) -> list[dict]:
    """Every inline policy attached to `role`, whichever component attached it."""
    return [p.json("policy") for p in deployment.of_type(ROLE_POLICY) if p.get("role") == role.id]


def merged(policies: list[dict]) -> dict:
    """A role's inline policies as one document (IAM allows what any of them allows)."""
    return {"Statement": [s for policy in policies for s in policy["Statement"]]}


def may_assume(role: Resource, subject: str) -> bool:
    """Would a GitHub OIDC token with this `sub` (and STS's audience) be let in?"""
    (statement,) = role.json("assumeRolePolicy")["Statement"]
    as_request = {**statement, "Resource": "*"}
    del as_request["Principal"]
    context = {f"{OIDC}:aud": "sts.amazonaws.com", f"{OIDC}:sub": subject}
    return allows({"Statement": [as_request]}, statement["Action"], "*", context)


def expected_read(deployment: Deployment) -> list[dict]:
    """The read statements, written out: a token for the domain, and the repository."""
    outputs = deployment.outputs
    prefix = f"arn:aws:codeartifact:{REGION}:{outputs['codeartifact_domain_owner']}"
    domain, repository = outputs["codeartifact_domain"], outputs["codeartifact_repository"]
    return [
        {
            "Effect": "Allow",
            "Action": ["codeartifact:GetAuthorizationToken"],
            "Resource": f"{prefix}:domain/{domain}",
        },
        {
            "Effect": "Allow",
            "Action": ["sts:GetServiceBearerToken"],
            "Resource": "*",
            "Condition": {"StringEquals": {"sts:AWSServiceName": "codeartifact.amazonaws.com"}},
        },
        {
            "Effect": "Allow",
            "Action": ["codeartifact:GetRepositoryEndpoint", "codeartifact:ReadFromRepository"],
            "Resource": f"{prefix}:repository/{domain}/{repository}",
        },
    ]


def expected_publish(deployment: Deployment) -> dict:
    outputs = deployment.outputs
    return {
        "Effect": "Allow",
        "Action": ["codeartifact:PublishPackageVersion"],
        "Resource": (
            f"arn:aws:codeartifact:{REGION}:{outputs['codeartifact_domain_owner']}:package/"
            f"{outputs['codeartifact_domain']}/{outputs['codeartifact_repository']}/pypi//{CLIENT}"
        ),
    }


# --- The index ---------------------------------------------------------------------------------


def test_the_index_is_a_domain_and_a_repository_with_public_pypi_upstream(default):
    domain = default.one(DOMAIN, "-packages-domain")
    expected_domain = codeartifact_domain_default(default.cfg("githubRepository"))
    assert domain.get("domain") == expected_domain
    assert domain.get("encryptionKey") is None  # the AWS-managed aws/codeartifact key
    repository = default.one(REPOSITORY, "-packages-repo")
    assert repository.get("domain") == expected_domain
    assert repository.get("repository") == "internal"
    assert repository.get("externalConnections") == {"externalConnectionName": "public:pypi"}
    assert not repository.get("upstreams")
    assert not repository.get("domainOwner")
    component = default.component("Packages")
    assert {r.urn for r in default.descendants(component)} >= {domain.urn, repository.urn}


def test_the_index_refuses_deletion_except_on_a_disposable_stack(default, recorder):
    for resource in (default.one(DOMAIN), default.one(REPOSITORY)):
        assert resource.protect, f"{resource.name} would go with every published version"
    dev = recorder.get(stack="dev")
    assert not dev.one(DOMAIN).protect and not dev.one(REPOSITORY).protect


def test_configured_names_are_created(recorder):
    overrides = PACKAGES_RUNS["named"]
    deployment = recorder.get(overrides)
    assert deployment.one(DOMAIN).get("domain") == overrides["codeartifactDomain"]
    assert deployment.one(REPOSITORY).get("repository") == overrides["codeartifactRepository"]
    assert deployment.outputs["codeartifact_domain"] == overrides["codeartifactDomain"]
    assert deployment.outputs["codeartifact_repository"] == overrides["codeartifactRepository"]


@pytest.mark.parametrize(
    ("overrides", "owner"),
    [(REUSED, REUSED["codeartifactDomainOwner"]), (PACKAGES_RUNS["reused-here"], ACCOUNT_ID)],
    ids=["other-account", "this-account"],
)
def test_a_reused_index_declares_no_codeartifact_resource(recorder, overrides, owner):
    deployment = recorder.get(overrides)
    assert not [r.name for r in deployment.resources if r.type.startswith("aws:codeartifact/")]
    assert deployment.outputs["codeartifact_domain"] == overrides["codeartifactDomain"]
    assert deployment.outputs["codeartifact_domain_owner"] == owner
    assert deployment.outputs["codeartifact_repository"] == overrides.get(
        "codeartifactRepository", "internal"
    )
    domain_arn = f"arn:aws:codeartifact:{REGION}:{owner}:domain/{overrides['codeartifactDomain']}"
    (token,) = [
        s
        for s in policies_of(deployment, read_role(deployment))[0]["Statement"]
        if s["Action"] == ["codeartifact:GetAuthorizationToken"]
    ]
    assert token["Resource"] == domain_arn


def test_the_outputs_name_the_index_and_the_roles(default):
    outputs = default.outputs
    assert outputs["codeartifact_domain"] == default.one(DOMAIN).get("domain")
    assert outputs["codeartifact_domain_owner"] == ACCOUNT_ID
    assert outputs["codeartifact_repository"] == "internal"
    assert outputs["packages_read_role_arn"] == read_role(default).state["arn"]
    assert outputs["packages_publish_role_arn"] == publish_role(default).state["arn"]


def test_every_variant_exports_the_outputs_the_workflows_read(variant: Deployment):
    assert all(variant.outputs.get(name) for name in OUTPUTS), variant.outputs


# --- Who may assume the roles ------------------------------------------------------------------


def test_the_roles_trust_only_the_github_provider_with_stss_audience(variant: Deployment):
    providers = variant.of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    provider_arn = providers[0].state["arn"] if providers else variant.cfg("githubOidcProviderArn")
    repo = variant.cfg("githubRepository")
    for role, subject in [
        (read_role(variant), f"repo:{repo}:*"),
        (publish_role(variant), f"repo:{repo}:ref:refs/tags/client-v*"),
    ]:
        (statement,) = role.json("assumeRolePolicy")["Statement"]
        assert statement["Principal"] == {"Federated": provider_arn}
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert statement["Condition"] == {
            "StringEquals": {f"{OIDC}:aud": "sts.amazonaws.com"},
            "StringLike": {f"{OIDC}:sub": subject},
        }
        assert role.get("maxSessionDuration") == 3600


SUBJECTS = {
    "pull request": "repo:{repo}:pull_request",
    "main": "repo:{repo}:ref:refs/heads/main",
    "a branch named like a client tag": "repo:{repo}:ref:refs/heads/client-v1.2.0",
    "the deploy environment": "repo:{repo}:environment:prod",
    "an app release tag": "repo:{repo}:ref:refs/tags/v1.2.0",
    "a client tag": "repo:{repo}:ref:refs/tags/client-v1.2.0",
    "another repository": "repo:{owner}/other:ref:refs/tags/client-v1.2.0",
    "a repository with this name as prefix": "repo:{repo}-fork:ref:refs/tags/client-v1.2.0",
}
READERS = set(SUBJECTS) - {"another repository", "a repository with this name as prefix"}
PUBLISHERS = {"a client tag"}


@pytest.mark.parametrize("who", SUBJECTS)
def test_every_run_of_the_repository_may_read_and_only_client_tags_publish(default, who):
    repo = default.cfg("githubRepository")
    subject = SUBJECTS[who].format(repo=repo, owner=repo.split("/")[0])
    assert may_assume(read_role(default), subject) is (who in READERS)
    assert may_assume(publish_role(default), subject) is (who in PUBLISHERS)


# --- What the roles may do ---------------------------------------------------------------------


def test_each_role_is_allowed_exactly_its_statements(variant: Deployment):
    read = expected_read(variant)
    assert policies_of(variant, read_role(variant)) == [
        {"Version": "2012-10-17", "Statement": read}
    ]
    assert policies_of(variant, publish_role(variant)) == [
        {"Version": "2012-10-17", "Statement": [*read, expected_publish(variant)]}
    ]
    # The push role: its own policy (test_ci_access.py) and exactly the read statements.
    push_read = variant.one(ROLE_POLICY, "-packages-push-read")
    assert push_read.get("role") == push_role(variant).id
    assert push_read.json("policy") == {"Version": "2012-10-17", "Statement": read}


def requests(deployment: Deployment) -> list[tuple[str, str, str, dict[str, str]]]:
    """(source, action, resource, context) of every row of PACKAGE_API_CALLS, filled in."""
    values = base_values(deployment)
    return [
        (
            row.source,
            row.action,
            fill(row.resource, values),
            {k: fill(v, values) for k, v in row.context.items()},
        )
        for row in PACKAGE_API_CALLS
    ]


def test_each_role_allows_the_calls_it_makes_and_only_the_publish_role_publishes(variant):
    roles = {
        "read": read_role(variant),
        "publish": publish_role(variant),
        "push": push_role(variant),
    }
    policies = {name: merged(policies_of(variant, role)) for name, role in roles.items()}
    wrong = [
        f"{name}: {action} on {resource} {context or ''} ({source})"
        for source, action, resource, context in requests(variant)
        for name, policy in policies.items()
        if allows(policy, action, resource, context)
        is not (source == "packages:read" or name == "publish")
    ]
    assert not wrong, "allowed, or refused, wrongly:\n" + "\n".join(wrong)


def test_the_table_names_real_actions_for_both_kinds_of_job():
    assert {row.source for row in PACKAGE_API_CALLS} == {"packages:read", "packages:publish"}
    assert all(row.action and is_known_action(row.action) for row in PACKAGE_API_CALLS)


def refusals(deployment: Deployment) -> list[tuple[str, str, dict[str, str]]]:
    outputs = deployment.outputs
    prefix = f"arn:aws:codeartifact:{REGION}:{outputs['codeartifact_domain_owner']}"
    index = f"{outputs['codeartifact_domain']}/{outputs['codeartifact_repository']}"
    repository = f"{prefix}:repository/{index}"
    return [
        # Another package, or the client in another repository or domain.
        ("codeartifact:PublishPackageVersion", f"{prefix}:package/{index}/pypi//requests", {}),
        ("codeartifact:PublishPackageVersion", f"{prefix}:package/{index}/pypi//{CLIENT}x", {}),
        (
            "codeartifact:PublishPackageVersion",
            f"{prefix}:package/{outputs['codeartifact_domain']}/other/pypi//{CLIENT}",
            {},
        ),
        ("codeartifact:PublishPackageVersion", f"{prefix}:package/{index}/npm//{CLIENT}", {}),
        # Changing what was published, or the index itself.
        ("codeartifact:DeletePackageVersions", f"{prefix}:package/{index}/pypi//{CLIENT}", {}),
        ("codeartifact:PutPackageMetadata", f"{prefix}:package/{index}/pypi//{CLIENT}", {}),
        ("codeartifact:PutPackageOriginConfiguration", f"{prefix}:package/{index}/pypi//x", {}),
        ("codeartifact:PutRepositoryPermissionsPolicy", repository, {}),
        ("codeartifact:AssociateExternalConnection", repository, {}),
        ("codeartifact:ListPackages", repository, {}),
        # Other repositories and domains.
        ("codeartifact:ReadFromRepository", f"{prefix}:repository/{index}-other", {}),
        ("codeartifact:GetAuthorizationToken", f"{prefix}:domain/other", {}),
        # Bearer tokens of other services.
        ("sts:GetServiceBearerToken", "*", {"sts:AWSServiceName": "other.amazonaws.com"}),
    ]


def test_no_role_may_do_more(variant: Deployment):
    for role in (read_role(variant), publish_role(variant), push_role(variant)):
        policy = merged(policies_of(variant, role))
        allowed = [r for r in refusals(variant) if allows(policy, *r)]
        assert not allowed, f"{role.name} may {allowed}"


# --- Stack config ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "key", "rule"),
    [
        ({"codeartifact_domain_name": "Acme"}, "codeartifactDomain", "lowercase"),
        ({"codeartifact_domain_name": "acme_packages"}, "codeartifactDomain", "hyphens"),
        ({"codeartifact_domain_name": "1acme"}, "codeartifactDomain", "starting with a letter"),
        ({"codeartifact_domain_name": "acme-"}, "codeartifactDomain", "ending with a letter"),
        ({"codeartifact_domain_name": "a"}, "codeartifactDomain", "2-50"),
        ({"codeartifact_domain_name": "a" * 51}, "codeartifactDomain", "2-50"),
        ({"codeartifact_repository": "x"}, "codeartifactRepository", "2-100"),
        ({"codeartifact_repository": "r" * 101}, "codeartifactRepository", "2-100"),
        ({"codeartifact_repository": "_internal"}, "codeartifactRepository", "letter or digit"),
        ({"codeartifact_repository": "in ternal"}, "codeartifactRepository", "'.', '-' and '_'"),
        ({"codeartifact_repository": "internal/x"}, "codeartifactRepository", "'.', '-' and '_'"),
        (
            {"codeartifact_create": False, "codeartifact_domain_owner": "12345"},
            "codeartifactDomainOwner",
            "12-digit AWS account id",
        ),
        (
            {"codeartifact_create": False, "codeartifact_domain_owner": "arn:aws:iam::1:root"},
            "codeartifactDomainOwner",
            "12-digit AWS account id",
        ),
        (
            {"codeartifact_domain_owner": "210987654321"},
            "codeartifactDomainOwner",
            "empty while codeartifactCreate is true",
        ),
    ],
)
def test_each_codeartifact_rule_rejects_with_the_key_and_the_rule(fields, key, rule):
    with pytest.raises(ConfigError, match=key) as error:
        validate(dataclasses.replace(VALID, **fields))
    assert rule in str(error.value)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"codeartifact_domain_name": "ab", "codeartifact_repository": "9.python_internal-x"},
        {"codeartifact_domain_name": "a" * 50, "codeartifact_repository": "R" * 100},
        {"codeartifact_create": False, "codeartifact_domain_owner": "210987654321"},
    ],
)
def test_valid_codeartifact_configs_pass(fields):
    config = dataclasses.replace(VALID, **fields)
    assert validate(config) is config


@pytest.mark.parametrize(
    ("github_repository", "domain"),
    [
        ("my-org/orders-service", "my-org"),
        ("Acme-Corp/orders", "acme-corp"),
        ("1password/x", "org-1password"),  # a domain starts with a letter
        ("x/orders", "org-x"),  # and has two characters at least
        ("a-" * 30 + "b/orders", ("a-" * 25).rstrip("-")),  # at most 50, no hyphen last
    ],
)
def test_the_default_domain_is_the_github_owner_as_a_valid_name(github_repository, domain):
    assert codeartifact_domain_default(github_repository) == domain
    config = dataclasses.replace(VALID, github_repository=github_repository)
    assert config.codeartifact_domain == domain
    assert validate(config) is config


@pytest.mark.parametrize(
    ("run", "message"),
    [
        ("bad-domain", r"codeartifactDomain='acme_packages' must be 2-50 lowercase"),
        ("owner-while-creating", r"codeartifactDomainOwner=.* while codeartifactCreate is true"),
    ],
)
def test_a_bad_codeartifact_config_fails_the_program_naming_the_key(recorder, run, message):
    with pytest.raises(RuntimeError, match=message):
        recorder.get(PACKAGES_RUNS[run])
