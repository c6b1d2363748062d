"""End-to-end tests against a running service, from the outside, over HTTP.

BASE_URL is the service (`make e2e` against docker compose, or a deployed stack); without it
these tests skip. PROMETHEUS_URL is a Prometheus that scrapes it; without it the Prometheus
checks skip. Run them with `make e2e`; the unit run (`make test`) leaves them out.
"""

import os
from collections.abc import Iterator

import httpx
import pytest


def _url(variable: str) -> str:
    url = os.environ.get(variable, "").rstrip("/")
    if not url:
        pytest.skip(f"{variable} is not set")
    return url


@pytest.fixture(scope="session")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(base_url=_url("BASE_URL"), timeout=10) as client:
        yield client


@pytest.fixture(scope="session")
def prometheus() -> Iterator[httpx.Client]:
    with httpx.Client(base_url=_url("PROMETHEUS_URL"), timeout=10) as prometheus:
        yield prometheus
