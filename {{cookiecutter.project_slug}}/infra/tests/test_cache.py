"""Cache option redis: ElastiCache for Valkey, private, encrypted, reached only by the app,
which logs in as its own user with a password from Secrets Manager."""

from __future__ import annotations

import json

import pytest
from components.cache import APP_USER_NAME, PORT
from conftest import PROJECT
from iam_evaluator import allows
from mocks import RANDOM_PASSWORD
from policy_helpers import containers, is_secret_wrapped

SERVERLESS = "aws:elasticache/serverlessCache:ServerlessCache"
REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
USER = "aws:elasticache/user:User"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
NODE_BASED = {"cacheNodeType": "cache.t4g.small"}


def app_container(deployment):
    (container,) = containers(deployment.one(TASK_DEFINITION, "-app-task"))
    return container


def cache_secret_arn(deployment) -> str:
    return deployment.one("aws:secretsmanager/secret:Secret", "-cache-password").state["arn"]


def test_serverless_valkey_by_default_in_the_private_subnets(default):
    cache = default.one(SERVERLESS)
    assert cache.get("engine") == "valkey"
    private = {s.id for s in default.of_type("aws:ec2/subnet:Subnet") if "-private-" in s.name}
    assert set(cache.get("subnetIds")) == private
    limits = cache.get("cacheUsageLimits")
    assert limits["dataStorage"] == {"maximum": 1, "unit": "GB"}
    assert default.of_type(REPLICATION_GROUP) == []


def test_node_based_on_request_with_tls_at_rest_encryption_and_a_replica(recorder):
    deployment = recorder.get(NODE_BASED)
    assert deployment.of_type(SERVERLESS) == []
    group = deployment.one(REPLICATION_GROUP)
    assert group.get("engine") == "valkey"
    assert group.get("nodeType") == NODE_BASED["cacheNodeType"]
    assert group.get("transitEncryptionEnabled") is True
    assert group.get("transitEncryptionMode") == "required"
    assert group.get("atRestEncryptionEnabled") is True
    assert group.get("numCacheClusters") == 2
    assert group.get("multiAzEnabled") is True and group.get("automaticFailoverEnabled") is True
    private = {s.id for s in deployment.of_type("aws:ec2/subnet:Subnet") if "-private-" in s.name}
    subnets = deployment.one("aws:elasticache/subnetGroup:SubnetGroup")
    assert set(subnets.get("subnetIds")) == private
    env = {e["name"]: e["value"] for e in app_container(deployment)["environment"]}
    assert env["REDIS_URL"] == f"rediss://{group.state['primaryEndpointAddress']}:{PORT}/0"


@pytest.mark.parametrize("overrides", [{}, NODE_BASED], ids=["serverless", "node-based"])
def test_only_the_app_security_group_reaches_the_cache(recorder, overrides):
    deployment = recorder.get(overrides)
    cache = deployment.of_type(SERVERLESS) or deployment.of_type(REPLICATION_GROUP)
    (group_id,) = cache[0].get("securityGroupIds")
    rules = [
        r
        for r in deployment.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.get("securityGroupId") == group_id
    ]
    assert [
        (r.get("fromPort"), r.get("toPort"), r.get("referencedSecurityGroupId")) for r in rules
    ] == [(PORT, PORT, deployment.outputs["app_security_group_id"])]
    assert all(r.get("cidrIpv4") is None and r.get("cidrIpv6") is None for r in rules)


def test_the_app_logs_in_as_its_own_user_over_tls_with_the_secret(default):
    cache = default.one(SERVERLESS)
    container = app_container(default)
    env = {e["name"]: e["value"] for e in container["environment"]}
    address = cache.state["endpoints"][0]["address"]
    assert env["REDIS_URL"] == f"rediss://{address}:{PORT}/0"  # TLS
    assert env["REDIS_USERNAME"] == APP_USER_NAME
    assert "REDIS_PASSWORD" not in env
    secrets = {s["name"]: s["valueFrom"] for s in container["secrets"]}
    assert secrets["REDIS_PASSWORD"] == f"{cache_secret_arn(default)}:password::"


def test_the_execution_role_reads_the_cache_secret_and_the_task_role_nothing_of_it(default):
    arn = cache_secret_arn(default)
    execution = default.one("aws:iam/rolePolicy:RolePolicy", "-app-execution-policy")
    policy = json.loads(execution.get("policy"))
    assert allows(policy, "secretsmanager:GetSecretValue", arn)
    assert not allows(policy, "secretsmanager:GetSecretValue", arn.replace("cache", "other"))
    assert not allows(policy, "secretsmanager:PutSecretValue", arn)
    for name, task_policy in [
        (p.name, p.get("policy"))
        for p in default.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.name.endswith("-app-task-policy")
    ]:
        assert not allows(json.loads(task_policy), "secretsmanager:GetSecretValue", arn), name


def test_users_the_app_one_scoped_to_its_keys_and_the_default_one_off(default):
    users = {u.get("userName"): u for u in default.of_type(USER)}
    assert set(users) == {APP_USER_NAME, "default"}
    app = users[APP_USER_NAME]
    access = app.get("accessString").split()
    assert access[0] == "on"
    assert access[1] == f"~{PROJECT['name']}:item:*"  # CACHE_KEY_PREFIX's keys only
    assert "-@all" in access and "+@all" not in access and "~*" not in access
    mode = app.inputs["authenticationMode"]
    assert is_secret_wrapped(mode) or is_secret_wrapped(mode.get("passwords"))
    assert RANDOM_PASSWORD in json.dumps(mode)
    assert users["default"].get("accessString").startswith("off ")
    group = default.one("aws:elasticache/userGroup:UserGroup")
    assert sorted(group.get("userIds")) == sorted(u.get("userId") for u in users.values())
    assert default.one(SERVERLESS).get("userGroupId") == group.get("userGroupId")
    # The secret holds the same password the user was given (one draw).
    version = default.one("aws:secretsmanager/secretVersion:SecretVersion", "-cache-password")
    stored = json.loads(version.get("secretString"))
    assert stored == {"username": APP_USER_NAME, "password": RANDOM_PASSWORD}


@pytest.mark.parametrize("overrides", [{}, NODE_BASED], ids=["serverless", "node-based"])
def test_errors_cpu_and_memory_alarms_reach_the_topic(recorder, overrides):
    deployment = recorder.get(overrides)
    topic = deployment.one("aws:sns/topic:Topic").state["arn"]
    alarms = {
        a.name.rsplit("-", 1)[-1]: a
        for a in deployment.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if "-cache-" in a.name
    }
    assert set(alarms) == {"errors", "cpu", "memory"}
    for alarm in alarms.values():
        assert alarm.get("namespace") == "AWS/ElastiCache"
        assert alarm.get("alarmActions") == [topic]
        assert alarm.get("dimensions")


def test_a_bad_node_type_is_refused(recorder):
    with pytest.raises(RuntimeError, match="cacheNodeType"):
        recorder.get({"cacheNodeType": "t4g.small"})
