"""CI access component: GitHub OIDC trust and the deploy role's scope."""

from __future__ import annotations

from conftest import PROJECT
from policy_helpers import as_list
from variants import GITHUB_OIDC_PROVIDER_ARN

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
PROVIDER = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"


def deploy_role(deployment):
    return deployment.one(ROLE, "-ci-deploy")


def push_role(deployment):
    return deployment.one(ROLE, "-ci-push")


def subjects(role) -> list[str]:
    (statement,) = role.json("assumeRolePolicy")["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert set(statement["Condition"]) == {"StringEquals"}, "no wildcard subjects (StringLike)"
    conditions = statement["Condition"]["StringEquals"]
    assert conditions["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    return as_list(conditions["token.actions.githubusercontent.com:sub"])


def test_deploy_role_trusts_only_the_environment_and_push_role_only_main(variant):
    """A job on main without the environment (and its required reviewers) cannot deploy."""
    repo = variant.cfg("githubRepository")
    environment = variant.cfg("deployEnvironment") or variant.stack
    assert subjects(deploy_role(variant)) == [f"repo:{repo}:environment:{environment}"]
    assert subjects(push_role(variant)) == [f"repo:{repo}:ref:refs/heads/main"]


def test_push_role_may_only_push_images_and_read_state(variant):
    policy = variant.one("aws:iam/rolePolicy:RolePolicy", "-ci-push").json("policy")
    actions = {a for statement in policy["Statement"] for a in as_list(statement["Action"])}
    assert "ecr:PutImage" in actions
    assert {a.split(":")[0] for a in actions} <= {"ecr", "s3", "kms"}
    assert not actions & {"s3:PutObject", "s3:DeleteObject", "kms:Encrypt"}
    deploy = variant.one("aws:iam/rolePolicy:RolePolicy", "-ci-deploy").json("policy")
    deploy_actions = {a for statement in deploy["Statement"] for a in as_list(statement["Action"])}
    assert "ecr:PutImage" not in deploy_actions


def test_the_push_role_has_no_other_policy(variant):
    role = push_role(variant)
    slug = PROJECT["name"]
    inline = {p.name for p in variant.of_type(ROLE_POLICY) if p.get("role") == role.id}
    assert not [a.name for a in variant.of_type(ATTACHMENT) if a.get("role") == role.id]
{%- if cookiecutter.internal_packages %}
    # components/packages.py: its image build installs the internal packages.
    assert inline == {f"{slug}-ci-push", f"{slug}-packages-push-read"}
{%- else %}
    assert inline == {f"{slug}-ci-push"}
{%- endif %}


def test_an_existing_oidc_provider_is_reused(recorder):
    arn = GITHUB_OIDC_PROVIDER_ARN
    deployment = recorder.get({"githubOidcProviderArn": arn})
    assert not deployment.of_type(PROVIDER)
    for role in (deploy_role(deployment), push_role(deployment)):
        (statement,) = role.json("assumeRolePolicy")["Statement"]
        assert statement["Principal"]["Federated"] == arn


def test_deploy_role_is_scoped_to_this_stack(default):
    policy = default.one("aws:iam/rolePolicy:RolePolicy", "-ci-deploy").json("policy")
    by_action = {
        action: statement
        for statement in policy["Statement"]
        for action in as_list(statement["Action"])
    }
    assert by_action["iam:PassRole"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }
    assert all(":role/" in arn for arn in by_action["iam:PassRole"]["Resource"])
    assert by_action["ecs:RunTask"]["Condition"]["ArnEquals"]["ecs:cluster"].startswith(
        "arn:aws:ecs:"
    )
    assert all(":repository/" in arn for arn in by_action["ecr:DescribeImages"]["Resource"])
    assert all(":service/" in arn for arn in by_action["ecs:UpdateService"]["Resource"])


def test_state_backend_access_only_when_configured(recorder):
    deployment = recorder.get({"stateBucketName": "my-state", "secretsKmsKeyArn": "arn:aws:kms:k"})
    policy = deployment.one("aws:iam/rolePolicy:RolePolicy", "-ci-deploy").json("policy")
    resources = [r for statement in policy["Statement"] for r in as_list(statement["Resource"])]
    assert "arn:aws:s3:::my-state/*" in resources
    assert "arn:aws:kms:k" in resources
    default_policy = recorder.get().one("aws:iam/rolePolicy:RolePolicy", "-ci-deploy")
    assert "s3:" not in default_policy.get("policy")
