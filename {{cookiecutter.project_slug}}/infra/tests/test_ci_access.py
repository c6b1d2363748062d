"""CI access component: GitHub OIDC trust and the deploy role's scope."""

from __future__ import annotations

from policy_helpers import as_list
from variants import GITHUB_OIDC_PROVIDER_ARN

ROLE = "aws:iam/role:Role"
PROVIDER = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"


def deploy_role(deployment):
    return deployment.one(ROLE, "-ci-deploy")


def test_only_this_repository_on_main_or_its_environment_may_assume(default):
    repo = default.cfg("githubRepository")
    (statement,) = deploy_role(default).json("assumeRolePolicy")["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    conditions = statement["Condition"]
    assert conditions["StringEquals"] == {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com"
    }
    subjects = conditions["StringLike"]["token.actions.githubusercontent.com:sub"]
    assert subjects == [
        f"repo:{repo}:ref:refs/heads/main",
        f"repo:{repo}:environment:{default.stack}",
    ]
    assert all("*" not in subject for subject in subjects)


def test_an_existing_oidc_provider_is_reused(recorder):
    arn = GITHUB_OIDC_PROVIDER_ARN
    deployment = recorder.get({"githubOidcProviderArn": arn})
    assert not deployment.of_type(PROVIDER)
    (statement,) = deploy_role(deployment).json("assumeRolePolicy")["Statement"]
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
    assert all(":repository/" in arn for arn in by_action["ecr:PutImage"]["Resource"])
    assert all(":service/" in arn for arn in by_action["ecs:UpdateService"]["Resource"])


def test_state_backend_access_only_when_configured(recorder):
    deployment = recorder.get({"stateBucketName": "my-state", "secretsKmsKeyArn": "arn:aws:kms:k"})
    policy = deployment.one("aws:iam/rolePolicy:RolePolicy", "-ci-deploy").json("policy")
    resources = [r for statement in policy["Statement"] for r in as_list(statement["Resource"])]
    assert "arn:aws:s3:::my-state/*" in resources
    assert "arn:aws:kms:k" in resources
    default_policy = recorder.get().one("aws:iam/rolePolicy:RolePolicy", "-ci-deploy")
    assert "s3:" not in default_policy.get("policy")
