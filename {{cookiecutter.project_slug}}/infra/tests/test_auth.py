"""Auth option jwt: a Cognito user pool for machine-to-machine clients by default, or an external
issuer passed through; the app's task is told issuer, audience and scope prefix, never a secret."""

from __future__ import annotations

import dataclasses
import json

import pytest
from conftest import PROJECT
from iam_evaluator import allows
from mocks import ACCOUNT_ID, COGNITO_CLIENT_SECRET, RDS_SECRET_ARN, REGION
from policy_helpers import as_list, containers, is_secret_wrapped, strings_in
from stack_config import ConfigError, auth_domain_default, validate
from test_stack_config import VALID
from variants import AUTH_RUNS, VARIANTS

SLUG = PROJECT["name"]
POOL = "aws:cognito/userPool:UserPool"
RESOURCE_SERVER = "aws:cognito/resourceServer:ResourceServer"
CLIENT = "aws:cognito/userPoolClient:UserPoolClient"
DOMAIN = "aws:cognito/userPoolDomain:UserPoolDomain"
SECRET = "aws:secretsmanager/secret:Secret"
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
GET_SECRET = "secretsmanager:GetSecretValue"
# The variant of variants.py with an external issuer (Auth0-like: `iss` ends in a slash) and the
# auth tests' run with every optional key of one.
(EXTERNAL,) = [overrides for name, _, overrides in VARIANTS if name == "auth-external-issuer"]
EXTERNAL_FULL = AUTH_RUNS["every-key"]


def app_environment(deployment) -> dict[str, str]:
    (container,) = containers(deployment.one(TASK_DEFINITION, "-app-task"))
    return {e["name"]: e["value"] for e in container["environment"]}


def deploy_policy(deployment) -> dict:
    return deployment.one(ROLE_POLICY, "-ci-deploy").json("policy")


def client_secret_arn(deployment) -> str:
    return deployment.one(SECRET, "-auth-client").state["arn"]


# --- Cognito (no authIssuer) ------------------------------------------------------------------


def test_the_user_pool_holds_clients_only_and_is_protected_outside_dev(recorder, default):
    pool = default.one(POOL, "-auth-pool")
    assert pool.get("adminCreateUserConfig") == {"allowAdminCreateUserOnly": True}
    assert pool.get("mfaConfiguration") == "OFF"
    assert pool.get("deletionProtection") == "ACTIVE"
    dev = recorder.get(stack="dev").one(POOL, "-auth-pool")
    assert dev.get("deletionProtection") == "INACTIVE"


def test_the_resource_server_defines_exactly_the_two_scopes(default):
    server = default.one(RESOURCE_SERVER, "-auth-api")
    assert server.get("identifier") == SLUG
    assert server.get("userPoolId") == default.one(POOL).id
    assert sorted(s["scopeName"] for s in server.get("scopes")) == ["items:read", "items:write"]


def test_the_client_gets_tokens_only_with_its_credentials_for_the_two_scopes(default):
    client = default.one(CLIENT, "-auth-m2m")
    assert client.get("userPoolId") == default.one(POOL).id
    assert client.get("generateSecret") is True
    assert client.get("allowedOauthFlows") == ["client_credentials"]
    assert client.get("allowedOauthFlowsUserPoolClient") is True
    assert sorted(client.get("allowedOauthScopes")) == [f"{SLUG}/items:read", f"{SLUG}/items:write"]
    assert client.get("supportedIdentityProviders") == ["COGNITO"]
    assert client.get("explicitAuthFlows") == ["ALLOW_REFRESH_TOKEN_AUTH"]  # no user sign-in
    assert not client.get("callbackUrls")
    assert client.get("accessTokenValidity") == 60
    assert client.get("tokenValidityUnits")["accessToken"] == "minutes"
    # Allowed scopes must exist first: the client waits for the resource server.
    assert default.one(RESOURCE_SERVER).urn in client.dependencies


def test_the_domain_prefix_is_the_project_and_stack_unless_configured(recorder, default):
    domain = default.one(DOMAIN, "-auth-domain")
    assert domain.get("domain") == f"{SLUG}-prod"
    assert domain.get("userPoolId") == default.one(POOL).id
    configured = recorder.get(AUTH_RUNS["domain-prefix"]).one(DOMAIN)
    assert configured.get("domain") == AUTH_RUNS["domain-prefix"]["authDomainPrefix"]


def test_the_client_secret_lives_only_in_its_secret_version(default):
    holders = [
        (resource, key, value)
        for resource in default.resources
        for key, value in resource.inputs.items()
        if any(COGNITO_CLIENT_SECRET in text for text in strings_in(value))
    ]
    assert [(r.type, key) for r, key, _ in holders] == [(SECRET_VERSION, "secretString")]
    ((version, _, value),) = holders
    assert is_secret_wrapped(value), "the secret string is not a Pulumi secret"
    assert version.get("secretId") == default.one(SECRET, "-auth-client").id
    client = default.one(CLIENT)
    assert json.loads(version.get("secretString")) == {
        "client_id": client.id,
        "client_secret": COGNITO_CLIENT_SECRET,
    }
    assert not any(COGNITO_CLIENT_SECRET in text for text in strings_in(default.outputs))


def test_the_app_is_told_the_issuer_the_client_id_and_the_scope_prefix(default):
    env = app_environment(default)
    issuer = f"https://cognito-idp.{REGION}.amazonaws.com/{default.one(POOL).id}"
    assert env["AUTH_ISSUER"] == issuer
    assert json.loads(env["AUTH_AUDIENCE"]) == [default.one(CLIENT).id]
    assert env["AUTH_SCOPE_PREFIX"] == f"{SLUG}/"
    assert env["AUTH_JWKS_URL"] == f"{issuer}/.well-known/jwks.json"
    definition = default.one(TASK_DEFINITION, "-app-task")
    assert COGNITO_CLIENT_SECRET not in definition.get("containerDefinitions")
    (container,) = containers(definition)
    assert not [s for s in container.get("secrets", []) if s["name"].startswith("AUTH_")]


def test_the_outputs_tell_a_client_where_to_get_a_token_but_not_the_secret(default):
    outputs = default.outputs
    assert outputs["auth_issuer"] == app_environment(default)["AUTH_ISSUER"]
    assert outputs["auth_audience"] == [default.one(CLIENT).id]
    assert outputs["auth_scope_prefix"] == f"{SLUG}/"
    assert outputs["auth_token_url"] == (
        f"https://{SLUG}-prod.auth.{REGION}.amazoncognito.com/oauth2/token"
    )
    assert outputs["auth_client_secret_arn"] == client_secret_arn(default)
    assert outputs["auth_client_secret_arn"].startswith(f"arn:aws:secretsmanager:{REGION}:")


def test_only_the_deploy_role_may_read_the_client_secret_and_no_other(default):
    arn = client_secret_arn(default)
    policy = deploy_policy(default)
    assert allows(policy, GET_SECRET, arn)
    for other in (
        RDS_SECRET_ARN,
        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:other-AbCdEf",
        f"{arn}-other",
    ):
        assert not allows(policy, GET_SECRET, other), other
    granting = [s for s in policy["Statement"] if GET_SECRET in as_list(s["Action"])]
    assert [(as_list(s["Action"]), s["Resource"]) for s in granting] == [([GET_SECRET], arn)]
    readers = [
        r.name for r in default.of_type(ROLE_POLICY) if allows(r.json("policy"), GET_SECRET, arn)
    ]
    assert readers == [f"{SLUG}-ci-deploy"], "the app and the push role must not read it"


# --- An external issuer (authIssuer) -----------------------------------------------------------


@pytest.mark.parametrize("overrides", [EXTERNAL, EXTERNAL_FULL], ids=["minimal", "every-key"])
def test_an_external_issuer_creates_no_cognito_resource_and_passes_through(recorder, overrides):
    deployment = recorder.get(overrides)
    assert not [r.name for r in deployment.resources if r.type.startswith("aws:cognito/")]
    assert not [r.name for r in deployment.of_type(SECRET) if "-auth-" in r.name]
    env = app_environment(deployment)
    assert env["AUTH_ISSUER"] == overrides["authIssuer"]
    assert json.loads(env["AUTH_AUDIENCE"]) == overrides["authAudience"]
    assert env["AUTH_SCOPE_PREFIX"] == overrides.get("authScopePrefix", "")
    if "authJwksUrl" in overrides:
        assert env["AUTH_JWKS_URL"] == overrides["authJwksUrl"]
    else:
        assert "AUTH_JWKS_URL" not in env  # the app finds it through the issuer's discovery
    outputs = deployment.outputs
    assert outputs["auth_issuer"] == overrides["authIssuer"]
    assert outputs["auth_audience"] == overrides["authAudience"]
    assert outputs["auth_token_url"] == overrides.get("authTokenUrl", "")
    assert outputs["auth_client_secret_arn"] == ""  # deploy.yml reads it: empty, no client
    actions = {a for s in deploy_policy(deployment)["Statement"] for a in as_list(s["Action"])}
    assert GET_SECRET not in actions


# --- Stack config rules ------------------------------------------------------------------------

ISSUER = {"auth_issuer": "https://issuer.example.com/", "auth_audience": ("api",)}


@pytest.mark.parametrize(
    ("fields", "key", "rule"),
    [
        ({**ISSUER, "auth_issuer": "http://issuer.example.com/"}, "authIssuer", "https://"),
        ({**ISSUER, "auth_issuer": "issuer.example.com"}, "authIssuer", "https://"),
        ({**ISSUER, "auth_audience": ()}, "authAudience", "non-empty list"),
        ({**ISSUER, "auth_audience": ("api", "")}, "authAudience", "non-empty list"),
        ({**ISSUER, "auth_jwks_url": "http://issuer.example.com/keys"}, "authJwksUrl", "https://"),
        ({**ISSUER, "auth_token_url": "ftp://issuer.example.com/t"}, "authTokenUrl", "https://"),
        ({**ISSUER, "auth_scope_prefix": "api /"}, "authScopePrefix", "whitespace"),
        ({"auth_audience": ("api",)}, "authAudience", "without authIssuer"),
        ({"auth_scope_prefix": "api/"}, "authScopePrefix", "without authIssuer"),
        ({"auth_domain_prefix": "orders-aws-prod"}, "authDomainPrefix", "'aws'"),
        ({"auth_domain_prefix": "amazon-orders"}, "authDomainPrefix", "'amazon'"),
        ({"auth_domain_prefix": "my-cognito"}, "authDomainPrefix", "'cognito'"),
        ({"auth_domain_prefix": "Orders-Prod"}, "authDomainPrefix", "lowercase"),
        ({"auth_domain_prefix": "-orders"}, "authDomainPrefix", "no hyphen first or last"),
        ({"auth_domain_prefix": "orders.prod"}, "authDomainPrefix", "lowercase"),
        ({"auth_domain_prefix": "a" * 64}, "authDomainPrefix", "1-63"),
        # The default prefix follows the same rules: a slug with "aws" needs authDomainPrefix.
        ({"slug": "aws-orders"}, "authDomainPrefix", "'aws'"),
    ],
)
def test_each_auth_rule_rejects_with_the_key_and_the_rule_in_the_message(fields, key, rule):
    with pytest.raises(ConfigError, match=key) as error:
        validate(dataclasses.replace(VALID, **fields))
    assert rule in str(error.value)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"auth_domain_prefix": "orders-tokens-1"},
        ISSUER,
        {**ISSUER, "auth_scope_prefix": "api://orders/", "auth_jwks_url": "https://i.example/k"},
    ],
)
def test_valid_auth_configs_pass(fields):
    config = dataclasses.replace(VALID, **fields)
    assert validate(config) is config


@pytest.mark.parametrize(
    ("slug", "stack", "prefix"),
    [
        ("orders-service", "prod", "orders-service-prod"),
        ("orders-service", "Staging_EU.1", "orders-service-staging-eu-1"),
        ("orders-service", "x" * 60, ("orders-service-" + "x" * 60)[:63]),
        ("orders", "a" * 55 + "_b", "orders-" + "a" * 55),  # cut where a hyphen would end it
    ],
)
def test_the_default_domain_prefix_follows_cognitos_rules(slug, stack, prefix):
    assert auth_domain_default(slug, stack) == prefix
    assert dataclasses.replace(VALID, slug=slug, stack=stack).auth_domain == prefix


def test_a_bad_auth_config_fails_the_program_naming_the_key(recorder):
    with pytest.raises(RuntimeError, match="authIssuer"):
        recorder.get(AUTH_RUNS["http-issuer"])


def test_a_bare_string_audience_is_refused_not_split_into_characters(recorder):
    with pytest.raises(RuntimeError, match=r"authAudience=.*must be a list"):
        recorder.get(AUTH_RUNS["bare-audience"])
