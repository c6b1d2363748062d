"""Config variants every policy test runs against, on top of Pulumi.yaml's defaults.

The database and monitoring options are chosen when the project is generated (their files are
pruned); everything else is stack config, so one rendered project can prove all of these.
"""

from __future__ import annotations

from typing import Any

GITHUB_OIDC_PROVIDER_ARN = (
    "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
)

# (id, stack name, config overrides)
VARIANTS: list[tuple[str, str, dict[str, Any]]] = [
    ("defaults", "prod", {}),
    ("dev-stack", "dev", {}),
    ("never-deployed", "fresh", {}),  # the first `pulumi up`: no previous outputs
    ("spot-off", "prod", {"useFargateSpot": False}),
    ("spot-on", "prod", {"useFargateSpot": True}),
    ("nat-none", "prod", {"natGateway": "none"}),
    ("nat-one-per-az", "prod", {"natGateway": "one_per_az"}),
    ("nat-single", "prod", {"natGateway": "single"}),
    ("autoscaling-off", "prod", {"autoscaling": False, "minTasks": 2, "maxTasks": 2}),
    ("autoscaling-on", "prod", {"autoscaling": True, "minTasks": 2, "maxTasks": 10}),
    ("domain", "prod", {"domainName": "api.example.com"}),
    ("waf", "prod", {"useWaf": True}),
    ("alerts", "prod", {"alertEmail": "ops@example.com", "monthlyBudgetUsd": 250}),
    (
        "spot-natnone-domain-waf-alerts",
        "prod",
        {
            "useFargateSpot": True,
            "natGateway": "none",
            "domainName": "example.org",
            "useWaf": True,
            "alertEmail": "ops@example.org",
        },
    ),
    ("image-tag", "prod", {"imageTag": "0123abc", "appEnvironment": "staging"}),
    ("no-alert-email", "prod", {"alertEmail": ""}),
    ("waf-off", "prod", {"useWaf": False}),
    ("log-retention", "prod", {"logRetentionDays": 14}),
    ("rolling", "prod", {"deploymentStrategy": "rolling"}),
    ("blue-green", "prod", {"deploymentStrategy": "blue_green"}),
    ("canary", "prod", {"deploymentStrategy": "canary", "canaryPercent": 25}),
    ("existing-oidc-provider", "prod", {"githubOidcProviderArn": GITHUB_OIDC_PROVIDER_ARN}),
    (
        "state-backend-access",
        "prod",
        {"stateBucketName": "my-state", "secretsKmsKeyArn": "arn:aws:kms:k"},
    ),
{%- if cookiecutter.auth == "jwt" %}
    (
        "auth-external-issuer",
        "prod",
        {
            "authIssuer": "https://example.eu.auth0.com/",
            "authAudience": ["https://api.example.com"],
            "authTokenUrl": "https://example.eu.auth0.com/oauth/token",
        },
    ),
{%- endif %}
{%- if cookiecutter.internal_packages %}
    # The organisation's CodeArtifact domain, in another account (tests/test_packages.py).
    (
        "codeartifact-reused",
        "prod",
        {
            "codeartifactCreate": False,
            "codeartifactDomain": "acme-packages",
            "codeartifactRepository": "shared.python",
            "codeartifactDomainOwner": "210987654321",
        },
    ),
{%- endif %}
    (
        "ha-no-autoscaling",
        "prod",
        {
            "natGateway": "one_per_az",
            "autoscaling": False,
            "dbMultiAz": True,
            "minTasks": 3,
            "maxTasks": 3,
        },
    ),
]

VARIANT_IDS = [variant_id for variant_id, _, _ in VARIANTS]

# Runs only the component tests ask for by name; recorded in parallel with the variants
# (a run missing from this list still works, just serially).
COMPONENT_RUNS: list[tuple[str, dict[str, Any]]] = [
    ("prod", {"minTasks": 3, "maxTasks": 2}),  # invalid on purpose
    ("prod", {"imageTag": "next0456"}),  # a deploy: what a new image changes
]
NEXT_IMAGE_TAG = "next0456"
{%- if cookiecutter.auth == "jwt" %}

# The auth tests' own runs (tests/test_auth.py), by name.
AUTH_RUNS: dict[str, dict[str, Any]] = {
    # An external issuer with every optional key: two audiences, a scope prefix, both URLs.
    "every-key": {
        "authIssuer": "https://login.example.com/tenant-id/v2.0",
        "authAudience": ["api://orders", "0a1b2c3d-client-id"],
        "authScopePrefix": "api://orders/",
        "authJwksUrl": "https://login.example.com/tenant-id/discovery/v2.0/keys",
        "authTokenUrl": "https://login.example.com/tenant-id/oauth2/v2.0/token",
    },
    "domain-prefix": {"authDomainPrefix": "orders-tokens"},
    # Invalid on purpose: a plain-HTTP issuer; an audience that is a string, not a list.
    "http-issuer": {"authIssuer": "http://issuer.example.com", "authAudience": ["api"]},
    "bare-audience": {"authIssuer": "https://issuer.example.com/", "authAudience": "api"},
}
COMPONENT_RUNS += [("prod", overrides) for overrides in AUTH_RUNS.values()]
{%- endif %}
{%- if cookiecutter.internal_packages %}

# The packages tests' own runs (tests/test_packages.py), by name.
PACKAGES_RUNS: dict[str, dict[str, Any]] = {
    # An existing domain of this account: no codeartifactDomainOwner.
    "reused-here": {"codeartifactCreate": False, "codeartifactDomain": "acme"},
    "named": {"codeartifactDomain": "platform-python", "codeartifactRepository": "python_internal"},
    # Invalid on purpose: an underscore in the domain; an owner while creating the domain.
    "bad-domain": {"codeartifactDomain": "acme_packages"},
    "owner-while-creating": {"codeartifactDomainOwner": "210987654321"},
}
COMPONENT_RUNS += [("prod", overrides) for overrides in PACKAGES_RUNS.values()]
{%- endif %}
