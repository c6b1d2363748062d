"""Authentication on AWS: who issues the bearer tokens the app accepts, and what its task is told.

Default: a Cognito user pool of this stack, for machine-to-machine clients (OAuth 2.0 client
credentials). A resource server defines the app's scopes (`<identifier>/items:read` and
`/items:write`); one app client may request both; its secret lives only in Secrets Manager.
With `authIssuer` in the stack config, an external OIDC issuer (Auth0, Okta, Entra ID, ...)
issues the tokens instead and no Cognito resource exists: its issuer, audience and scope prefix
are passed through. Either way the app gets AUTH_ISSUER, AUTH_AUDIENCE (a JSON list),
AUTH_SCOPE_PREFIX and, when known, AUTH_JWKS_URL as plain environment values: none is a secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.naming import type_token
from components.tasks import json_secret

# The scopes the app's routes require (app/auth.py), after AUTH_SCOPE_PREFIX.
SCOPES = {"items:read": "Read items", "items:write": "Create, change and delete items"}
ACCESS_TOKEN_MINUTES = 60


@dataclass
class AuthArgs:
    resource_server_identifier: str  # Cognito: scopes are "<identifier>/items:read"
    domain_prefix: str  # Cognito: https://<prefix>.auth.<region>.amazoncognito.com
    deletion_protection: bool
    issuer: str = ""  # "" = Cognito; else the external issuer's exact `iss`
    audience: Sequence[str] = ()  # external issuer: accepted `aud` values (or client ids)
    scope_prefix: str = ""  # external issuer: what precedes items:read in its `scope` claim
    jwks_url: str = ""  # external issuer: "" = found through its openid-configuration
    token_url: str = ""  # external issuer: its token endpoint, if clients should be told
    access_token_minutes: int = ACCESS_TOKEN_MINUTES


class Auth(pulumi.ComponentResource):
    """The token issuer of the app: Cognito of this stack, or an external one passed through."""

    def __init__(self, name: str, args: AuthArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("Auth"), name, None, opts)
        self.client_secret_arn: pulumi.Output[str] | None = None
        if args.issuer:
            self.issuer = pulumi.Output.from_input(args.issuer)
            self.audience = pulumi.Output.from_input(list(args.audience))
            self.scope_prefix = pulumi.Output.from_input(args.scope_prefix)
            self.jwks_url = pulumi.Output.from_input(args.jwks_url)
            self.token_url = pulumi.Output.from_input(args.token_url)
        else:
            self._cognito(name, args)
        self.app_environment: dict[str, pulumi.Input[str]] = {
            "AUTH_ISSUER": self.issuer,
            "AUTH_AUDIENCE": pulumi.Output.json_dumps(self.audience),
            "AUTH_SCOPE_PREFIX": self.scope_prefix,
        }
        if args.jwks_url or not args.issuer:
            self.app_environment["AUTH_JWKS_URL"] = self.jwks_url
        self.register_outputs(
            {
                "issuer": self.issuer,
                "audience": self.audience,
                "scope_prefix": self.scope_prefix,
                "token_url": self.token_url,
            }
        )

    def _cognito(self, name: str, args: AuthArgs) -> None:
        child = pulumi.ResourceOptions(parent=self)
        region = aws.get_region_output().region
        pool = aws.cognito.UserPool(
            f"{name}-pool",
            # No self sign-up: the pool holds app clients, not people. MFA is a user sign-in
            # feature; client credentials have no user to ask.
            admin_create_user_config=aws.cognito.UserPoolAdminCreateUserConfigArgs(
                allow_admin_create_user_only=True
            ),
            mfa_configuration="OFF",
            deletion_protection="ACTIVE" if args.deletion_protection else "INACTIVE",
            opts=child,
        )
        identifier = args.resource_server_identifier
        resource_server = aws.cognito.ResourceServer(
            f"{name}-api",
            user_pool_id=pool.id,
            identifier=identifier,
            name=identifier,
            scopes=[
                aws.cognito.ResourceServerScopeArgs(scope_name=scope, scope_description=description)
                for scope, description in SCOPES.items()
            ],
            opts=child,
        )
        client = aws.cognito.UserPoolClient(
            f"{name}-m2m",
            user_pool_id=pool.id,
            generate_secret=True,
            allowed_oauth_flows=["client_credentials"],
            allowed_oauth_flows_user_pool_client=True,
            allowed_oauth_scopes=[f"{identifier}/{scope}" for scope in SCOPES],
            supported_identity_providers=["COGNITO"],
            # No user sign-in through this client (AWS's default list adds SRP and custom auth).
            explicit_auth_flows=["ALLOW_REFRESH_TOKEN_AUTH"],
            access_token_validity=args.access_token_minutes,
            token_validity_units=aws.cognito.UserPoolClientTokenValidityUnitsArgs(
                access_token="minutes"
            ),
            enable_token_revocation=True,
            prevent_user_existence_errors="ENABLED",
            # The scopes must exist before a client may be allowed them.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[resource_server]),
        )
        domain = aws.cognito.UserPoolDomain(
            f"{name}-domain", user_pool_id=pool.id, domain=args.domain_prefix, opts=child
        )
        secret = json_secret(
            f"{name}-client",
            description="Client credentials of the app's machine-to-machine Cognito client",
            values={
                "client_id": client.id,
                "client_secret": pulumi.Output.secret(client.client_secret),
            },
            parent=self,
        )
        self.issuer = pulumi.Output.format(
            "https://cognito-idp.{0}.amazonaws.com/{1}", region, pool.id
        )
        # Cognito's access tokens carry no `aud`: the app checks their client_id instead.
        self.audience = pulumi.Output.from_input([client.id])
        self.scope_prefix = pulumi.Output.from_input(f"{identifier}/")
        self.jwks_url = pulumi.Output.concat(self.issuer, "/.well-known/jwks.json")
        self.token_url = pulumi.Output.format(
            "https://{0}.auth.{1}.amazoncognito.com/oauth2/token", domain.domain, region
        )
        self.client_secret_arn = secret.arn
