"""End-to-end tests against a running service, from the outside, over HTTP.

BASE_URL is the service (`make e2e` against docker compose, or a deployed stack); without it
these tests skip. PROMETHEUS_URL is a Prometheus that scrapes it; without it the Prometheus
checks skip. Run them with `make e2e`; the unit run (`make test`) leaves them out.
{%- if cookiecutter.auth == "jwt" %}

Tokens come from the issuer (AUTH_TOKEN_URL, AUTH_CLIENT_ID, AUTH_CLIENT_SECRET: the deployed
stack's Cognito client), else they are signed with .env's local key (docker compose trusts it).
{%- endif %}
"""

import os
from collections.abc import Iterator

import httpx
import pytest
{%- if cookiecutter.auth == "jwt" %}

from scripts.token import e2e_token
{%- endif %}


def _url(variable: str) -> str:
    url = os.environ.get(variable, "").rstrip("/")
    if not url:
        pytest.skip(f"{variable} is not set")
    return url


@pytest.fixture(scope="session")
def client() -> Iterator[httpx.Client]:
{%- if cookiecutter.auth == "jwt" %}
    base_url = _url("BASE_URL")
    headers = {"Authorization": f"Bearer {e2e_token(['items:read', 'items:write'])}"}
    with httpx.Client(base_url=base_url, timeout=10, headers=headers) as client:
        yield client
{%- else %}
    with httpx.Client(base_url=_url("BASE_URL"), timeout=10) as client:
        yield client
{%- endif %}


@pytest.fixture(scope="session")
def prometheus() -> Iterator[httpx.Client]:
    with httpx.Client(base_url=_url("PROMETHEUS_URL"), timeout=10) as prometheus:
        yield prometheus
