"""Database option rds: private, encrypted RDS PostgreSQL with a managed password."""

from __future__ import annotations

INSTANCE = "aws:rds/instance:Instance"


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


def test_app_reads_the_password_from_the_managed_secret(default):
    db = default.one(INSTANCE)
    secret_arn = db.inputs.get("masterUserSecrets", [{}])[0].get("secretArn") or (
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-mock-AbCdEf"
    )
    from policy_helpers import containers

    (container,) = containers(default.one("aws:ecs/taskDefinition:TaskDefinition", "-app-task"))
    assert container["secrets"] == [
        {"name": "POSTGRES_PASSWORD", "valueFrom": f"{secret_arn}:password::"}
    ]


def test_rds_cpu_and_storage_alarms(default):
    names = {a.name for a in default.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert any(n.endswith("-db-cpu") for n in names)
    assert any(n.endswith("-db-storage") for n in names)
