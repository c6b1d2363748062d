"""Unit tests of the config rules (no Pulumi runtime needed)."""

from __future__ import annotations

import dataclasses

import pytest
from stack_config import SLUG_MAX, ConfigError, StackConfig, derive_hosted_zone, validate

VALID = StackConfig(
    slug="orders-service",
    stack="prod",
    aws_region="us-east-1",
    app_environment="production",
    log_level="INFO",
    image_tag="abc123",
    web_concurrency=1,
    app_cpu=512,
    app_memory=1024,
    use_fargate_spot=True,
    nat_gateway="single",
    autoscaling=True,
    min_tasks=1,
    max_tasks=4,
    cpu_target_percent=60,
    requests_per_target=1000,
    deployment_strategy="rolling",
    deployment_bake_minutes=10,
    canary_percent=10,
    canary_bake_minutes=5,
    domain_name="",
    hosted_zone_name="",
    use_waf=False,
    alert_email="",
    monthly_budget_usd=100,
    log_retention_days=30,
    vpc_cidr="10.0.0.0/16",
    db_name="orders_service",
    db_username="app",
    db_app_username="app_login",
    db_instance_class="db.t4g.micro",
    db_allocated_storage_gb=20,
    db_max_allocated_storage_gb=100,
    db_multi_az=False,
    db_backup_retention_days=7,
    backup_retention_days=35,
    dr_region="",
    dr_backup_retention_days=35,
    dns_routing="simple",
    postgres_image="postgres:16",
    deletion_protection=True,
    vpc_flow_logs=True,
    alb_access_logs=True,
    github_repository="my-org/orders-service",
    deploy_environment="prod",
    github_oidc_provider_arn="",
    state_bucket_name="",
    secrets_kms_key_arn="",
)


def test_a_valid_config_passes():
    assert validate(VALID) is VALID


@pytest.mark.parametrize(
    ("field", "value", "key"),
    [
        ("slug", "a" * (SLUG_MAX + 1), "slug"),
        ("dr_region", "us-east-1", "drRegion"),
        ("dns_routing", "geo", "dnsRouting"),
        ("dr_region", "Mars-1", "drRegion"),
        ("backup_retention_days", 0, "backupRetentionDays"),
        ("dr_backup_retention_days", 0, "drBackupRetentionDays"),
        ("deployment_strategy", "blue-green", "deploymentStrategy"),
        ("deployment_bake_minutes", 1441, "deploymentBakeMinutes"),
        ("canary_percent", 100, "canaryPercent"),
        ("canary_percent", 0, "canaryPercent"),
        ("canary_bake_minutes", -1, "canaryBakeMinutes"),
        ("nat_gateway", "two", "natGateway"),
        ("min_tasks", 0, "minTasks"),
        ("max_tasks", 0, "maxTasks"),
        ("domain_name", "not a domain", "domainName"),
        ("domain_name", "API.Example.com", "domainName"),
        ("alert_email", "nobody", "alertEmail"),
        ("monthly_budget_usd", 0, "monthlyBudgetUsd"),
        ("github_repository", "no-owner", "githubRepository"),
        ("db_app_username", "app", "dbAppUsername"),
        ("db_app_username", "App-Login", "dbAppUsername"),
    ],
)
def test_each_rule_rejects_with_the_key_in_the_message(field, value, key):
    with pytest.raises(ConfigError, match=key):
        validate(dataclasses.replace(VALID, **{field: value}))


def test_slug_limit_leaves_room_for_the_longest_lb_name():
    assert SLUG_MAX + len("-graf") + len("-0a1b2c3") == 32


@pytest.mark.parametrize(
    ("domain", "zone"),
    [
        ("api.example.com", "example.com"),
        ("example.com", "example.com"),
        ("a.b.example.org", "b.example.org"),
    ],
)
def test_hosted_zone_is_the_parent_of_a_subdomain(domain, zone):
    assert derive_hosted_zone(domain) == zone


def test_https_follows_the_domain():
    assert not VALID.https
    assert dataclasses.replace(VALID, domain_name="api.example.com").https


def test_invalid_stack_config_fails_the_program(recorder):
    with pytest.raises(RuntimeError, match="maxTasks"):
        recorder.get({"minTasks": 3, "maxTasks": 2})
