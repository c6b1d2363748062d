"""The API from the outside: health, the item round trip, the error shape, /metrics."""

import uuid

import httpx
import pytest
{%- if cookiecutter.auth == "jwt" %}

from scripts.token import e2e_token
{%- endif %}

pytestmark = pytest.mark.e2e


def test_liveness_and_readiness(client: httpx.Client) -> None:
    assert client.get("/health").status_code == 200
    assert client.get("/health/ready").status_code == 200


def test_service_info_and_docs(client: httpx.Client) -> None:
    assert client.get("/").status_code == 200
    assert client.get("/docs").status_code == 200
    assert "/items" in client.get("/openapi.json").json()["paths"]


def test_item_round_trip(client: httpx.Client) -> None:
    name = f"e2e-{uuid.uuid4().hex[:12]}"
    created = client.post("/items", json={"name": name, "description": "e2e", "price": "12.50"})
    assert created.status_code == 201, created.text
    item = created.json()
    assert item["name"] == name
    fetched = client.get(f"/items/{item['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == item
    page = client.get("/items", params={"limit": 1})
    assert page.status_code == 200
    assert page.json()["limit"] == 1


def test_errors_have_one_shape_with_the_request_id(client: httpx.Client) -> None:
    missing = client.get(f"/items/{2**63 - 1}")
    assert missing.status_code == 404
    error = missing.json()["error"]
    assert error["code"] == "not_found"
    assert error["request_id"] == missing.headers["x-request-id"]
    invalid = client.post("/items", json={"name": "", "price": "-1"})
    assert invalid.status_code == 422
    assert invalid.json()["error"]["code"] == "validation_error"

{%- if cookiecutter.auth == "jwt" %}


def test_items_need_a_token_with_the_scope(client: httpx.Client) -> None:
    anonymous = httpx.get(f"{client.base_url}/items", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    reader = {"Authorization": f"Bearer {e2e_token(['items:read'])}"}
    assert client.get("/items", headers=reader).status_code == 200
    refused = client.post("/items", json={"name": "e2e", "price": "1"}, headers=reader)
    assert refused.status_code == 403
    assert "items:write" in refused.json()["error"]["message"]
    garbage = client.get("/items", headers={"Authorization": "Bearer not.a.token"})
    assert garbage.status_code == 401
{%- endif %}


def test_metrics_are_exposed(client: httpx.Client) -> None:
    client.post("/items", json={"name": f"e2e-{uuid.uuid4().hex[:12]}", "price": "1"})
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "http_requests_total" in metrics.text
    assert "items_created_total" in metrics.text
