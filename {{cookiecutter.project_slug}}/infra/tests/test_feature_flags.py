"""Feature flags on AWS: the app reads an external Unleash; its token only through a secret."""

from __future__ import annotations

import json

from policy_helpers import TASK_DEFINITION, containers

SECRET = "aws:secretsmanager/secret:Secret"
TOKEN = "unleash-client-token-value"
URL = "https://unleash.example.com/api"


def app_container(deployment) -> dict:
    (definition,) = [d for d in deployment.of_type(TASK_DEFINITION) if d.name.endswith("-app-task")]
    (container,) = containers(definition)
    return container


def test_without_an_unleash_url_the_app_runs_on_its_defaults(recorder):
    deployment = recorder.get({"unleashUrl": ""})
    names = {e["name"] for e in app_container(deployment)["environment"]}
    assert "UNLEASH_URL" not in names
    assert not [s for s in deployment.of_type(SECRET) if "unleash" in s.name]


def test_the_token_reaches_the_task_only_as_a_secret(recorder):
    deployment = recorder.get({"unleashUrl": URL, "unleashApiToken": TOKEN})
    container = app_container(deployment)
    environment = {e["name"]: e["value"] for e in container["environment"]}
    assert environment["UNLEASH_URL"] == URL
    assert environment["UNLEASH_ENVIRONMENT"] == "production"
    (secret,) = [s for s in deployment.of_type(SECRET) if "unleash" in s.name]
    secrets = {s["name"]: s["valueFrom"] for s in container["secrets"]}
    assert secrets["UNLEASH_API_TOKEN"] == f"{secret.state['arn']}:token::"
    # Never in plain sight: the task definition, the stack outputs.
    assert TOKEN not in json.dumps(container)
    assert TOKEN not in json.dumps(deployment.outputs)
