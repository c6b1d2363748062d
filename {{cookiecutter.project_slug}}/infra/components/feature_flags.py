"""Feature flags on AWS: the app reads an Unleash server that is not part of this stack.

Default and the reason: an external Unleash (`unleashUrl` in the stack config; Unleash's hosted
service or one the organisation runs for all its services). Self-hosting it here would add a
service, a database and an admin UI to operate and secure for every service that wants flags;
one Unleash serves many services, each reading its own project and environment with its own
client token. Without `unleashUrl` no client runs and every flag has its default (app/flags.py).

The client token is a stack secret (`pulumi config set --secret unleashApiToken ...`) kept in
Secrets Manager and injected into the app's task as UNLEASH_API_TOKEN; it is never a plain
environment value or a stack output.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.naming import type_token
from components.tasks import json_secret, secret_value_from

TOKEN_JSON_KEY = "token"


@dataclass
class FeatureFlagsArgs:
    unleash_url: str  # "" = no Unleash: every flag has its default
    api_token: pulumi.Input[str] | None  # the client token (a Pulumi secret)
    environment: str = "production"


class FeatureFlags(pulumi.ComponentResource):
    """What the app's task needs to reach Unleash: its URL, and the token from a secret."""

    def __init__(
        self, name: str, args: FeatureFlagsArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(type_token("FeatureFlags"), name, None, opts)
        self.app_environment: dict[str, pulumi.Input[str]] = {}
        self.app_secrets: dict[str, pulumi.Input[str]] = {}
        self.secret_arns: list[pulumi.Input[str]] = []
        if args.unleash_url:
            self.app_environment = {
                "UNLEASH_URL": args.unleash_url,
                "UNLEASH_ENVIRONMENT": args.environment,
            }
            if args.api_token is not None:
                secret = json_secret(
                    f"{name}-unleash-token",
                    description="Unleash client API token of the app (UNLEASH_API_TOKEN)",
                    values={TOKEN_JSON_KEY: args.api_token},
                    parent=self,
                )
                self.app_secrets = {
                    "UNLEASH_API_TOKEN": secret_value_from(secret.arn, TOKEN_JSON_KEY)
                }
                self.secret_arns = [secret.arn]
        self.register_outputs({"unleash_url": args.unleash_url})
