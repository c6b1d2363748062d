"""Database option rds: private, encrypted RDS PostgreSQL with a managed password."""

from __future__ import annotations

import json
{%- if cookiecutter.cache == "redis" %}
from unittest.mock import ANY
{%- endif %}

from components.database_rds import CA_BUNDLE_PATH
from conftest import INFRA
from mocks import ACCOUNT_ID, AUTONAME_SUFFIX, RDS_RESOURCE_ID, RDS_SECRET_ARN, REGION
from policy_helpers import containers

INSTANCE = "aws:rds/instance:Instance"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"


def test_postgres_16_encrypted_private_with_managed_password(default):
    db = default.one(INSTANCE)
    assert db.get("engine") == "postgres"
    assert db.get("engineVersion").startswith("16")
    assert db.get("storageEncrypted") is True
    assert db.get("publiclyAccessible") is False
    assert db.get("manageMasterUserPassword") is True
    assert "password" not in db.inputs
    assert db.get("backupRetentionPeriod") >= 1


def test_database_lives_in_private_subnets_behind_the_app_group(default):
    private = {s.id for s in default.of_type("aws:ec2/subnet:Subnet") if "-private-" in s.name}
    group = default.one("aws:rds/subnetGroup:SubnetGroup")
    assert set(group.get("subnetIds")) == private
    (sg,) = default.one(INSTANCE).get("vpcSecurityGroupIds")
    rules = [
        r
        for r in default.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.get("securityGroupId") == sg
    ]
    assert [(r.get("fromPort"), r.get("referencedSecurityGroupId")) for r in rules] == [
        (5432, default.outputs["app_security_group_id"])
    ]


def test_deletion_protection_everywhere_but_dev(recorder):
    prod = recorder.get(stack="prod").one(INSTANCE)
    assert prod.get("deletionProtection") is True
    assert prod.get("skipFinalSnapshot") is False
    dev = recorder.get(stack="dev").one(INSTANCE)
    assert dev.get("deletionProtection") is False
    assert dev.get("skipFinalSnapshot") is True


def env_of(container):
    return {e["name"]: e["value"] for e in container["environment"]}


def test_the_app_logs_in_as_its_own_role_with_iam_tokens_over_verified_tls(default):
    (app,) = containers(default.one(TASK_DEFINITION, "-app-task"))
    env = env_of(app)
    assert env["POSTGRES_USER"] == "app_login" != default.config["dbUsername"]
    assert env["DB_AUTH"] == "rds_iam"
    assert env["DB_SSL_ROOT_CERT"] == CA_BUNDLE_PATH
    # No password at all: not the master's, which rotates under it every 7 days.
{%- if cookiecutter.cache == "redis" %}
    assert [s["name"] for s in app["secrets"]] == ["REDIS_PASSWORD"]  # the cache's (test_cache)
{%- else %}
    assert app["secrets"] == []
{%- endif %}
    assert "DB_APP_USER" not in env


def test_the_migrations_read_the_rotated_master_password_at_each_run(default):
    secret_arn = RDS_SECRET_ARN
    (migration,) = containers(default.one(TASK_DEFINITION, "-app-migrate"))
    env = env_of(migration)
    assert env["POSTGRES_USER"] == default.config["dbUsername"]
    assert env["DB_AUTH"] == "password"
    assert env["DB_APP_USER"] == "app_login"  # they create and grant the app's role
    assert env["DB_SSL_ROOT_CERT"] == CA_BUNDLE_PATH
    # Injected by ECS when the one-off task starts: the current password, never a stale one.
{%- if cookiecutter.cache == "redis" %}
    assert migration["secrets"] == [
        {"name": "POSTGRES_PASSWORD", "valueFrom": f"{secret_arn}:password::"},
        {"name": "REDIS_PASSWORD", "valueFrom": ANY},  # the app's settings, the cache's too
    ]
{%- else %}
    assert migration["secrets"] == [
        {"name": "POSTGRES_PASSWORD", "valueFrom": f"{secret_arn}:password::"}
    ]
{%- endif %}
    execution = default.one("aws:iam/rolePolicy:RolePolicy", "-app-execution-policy")
    readable = [
        resource
        for statement in json.loads(execution.get("policy"))["Statement"]
        if statement["Action"] == ["secretsmanager:GetSecretValue"]
        for resource in statement["Resource"]
    ]
{%- if cookiecutter.cache == "redis" %}
    assert readable[0] == secret_arn and len(readable) == 2  # and the cache's (test_cache)
{%- else %}
    assert readable == [secret_arn]
{%- endif %}


def test_the_task_role_may_connect_exactly_as_the_app_role(default):
    db = default.one(INSTANCE)
    assert db.get("iamDatabaseAuthenticationEnabled") is True
    policy = default.one("aws:iam/rolePolicy:RolePolicy", "-app-task-policy")
    (statement,) = json.loads(policy.get("policy"))["Statement"]
    assert statement["Action"] == ["rds-db:connect"]
    assert statement["Resource"] == [
        f"arn:aws:rds-db:{REGION}:{ACCOUNT_ID}:dbuser:{RDS_RESOURCE_ID}/app_login"
    ]


def test_tls_is_forced_by_the_server_and_verified_with_the_bundle_in_the_image(default):
    group = default.one("aws:rds/parameterGroup:ParameterGroup")
    assert group.get("family") == f"postgres{default.one(INSTANCE).get('engineVersion')}"
    assert {p["name"]: p["value"] for p in group.get("parameters")}["rds.force_ssl"] == "1"
    assert default.one(INSTANCE).get("parameterGroupName") == group.name + AUTONAME_SUFFIX
    # The image holds the bundle where the task definitions point DB_SSL_ROOT_CERT.
    dockerfile = (INFRA.parent / "Dockerfile").read_text()
    assert "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem" in dockerfile
    (copy,) = [line for line in dockerfile.splitlines() if line.endswith(f" {CA_BUNDLE_PATH}")]
    assert copy.startswith("COPY --from=builder --chmod=444 ")  # readable by the app's user


def test_insights_logs_and_a_standby_in_production(recorder):
    prod = recorder.get(stack="prod").one(INSTANCE)
    assert prod.get("performanceInsightsEnabled") is True
    assert prod.get("performanceInsightsRetentionPeriod") == 7
    assert prod.get("enabledCloudwatchLogsExports") == ["postgresql", "upgrade"]
    assert prod.get("multiAz") is True
    assert recorder.get(stack="dev").one(INSTANCE).get("multiAz") is False
    assert recorder.get({"dbMultiAz": "false"}).one(INSTANCE).get("multiAz") is False
    assert recorder.get({"dbMultiAz": True}, stack="dev").one(INSTANCE).get("multiAz") is True


def test_rds_cpu_and_storage_alarms(default):
    names = {a.name for a in default.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert any(n.endswith("-db-cpu") for n in names)
    assert any(n.endswith("-db-storage") for n in names)
