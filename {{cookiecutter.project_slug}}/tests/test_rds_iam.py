"""RDS IAM authentication: a token, signed by the real botocore, for each new connection."""

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import certifi
import pytest

from app.config import Settings
from app.db_credentials import RdsIamToken, password_provider

HOST = "orders.abcdefghijkl.us-east-1.rds.amazonaws.com"


@pytest.fixture(autouse=True)
def task_role_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """What ECS gives a task (as environment credentials here: signing needs no AWS call)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "TESTINGACCESSKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


async def test_a_token_is_a_presigned_rds_connect_for_the_user() -> None:
    provider = RdsIamToken(host=HOST, port=5432, user="app_login", region=None)
    token = await provider()
    url = urlsplit(f"https://{token}")
    query = parse_qs(url.query)
    assert (url.hostname, url.port) == (HOST, 5432)
    assert query["Action"] == ["connect"]
    assert query["DBUser"] == ["app_login"]
    assert query["X-Amz-Credential"][0].startswith("TESTINGACCESSKEY/")
    assert "/us-east-1/rds-db/aws4_request" in query["X-Amz-Credential"][0]
    assert query["X-Amz-Expires"] == ["900"]
    assert len(query["X-Amz-Signature"][0]) == 64


def test_the_settings_select_iam_tokens_for_the_url_user() -> None:
    settings = Settings(
        _env_file=None,
        environment="production",
        postgres_host=HOST,
        postgres_user="app_login",
        db_auth="rds_iam",
        db_ssl_root_cert=Path(certifi.where()),  # any file: the RDS bundle is in the image
    )
    provider = password_provider(settings)
    assert isinstance(provider, RdsIamToken)
    assert (provider.host, provider.port, provider.user) == (HOST, 5432, "app_login")
