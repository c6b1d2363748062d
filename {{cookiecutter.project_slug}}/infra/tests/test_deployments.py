"""Deployment strategies (deploymentStrategy): rolling, and ECS's blue/green and canary with their
second target group, test route, role and alarm-driven rollback."""

from __future__ import annotations

import pytest
from deployment import Deployment
from iam_evaluator import allows
from policy_helpers import LISTENER_RULE, TARGET_GROUP, forwarded_target_groups
from test_deploy_api_calls import deploy_policy
from test_hardening import route, serving_listener

SERVICE = "aws:ecs/service:Service"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
ROLE = "aws:iam/role:Role"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
ECS_LB_POLICY = (
    "arn:aws:iam::aws:policy/service-role/AmazonECSInfrastructureRolePolicyForLoadBalancers"
)
STAGED = ["blue_green", "canary"]


def group_arn(group) -> str:
    return f"arn:aws:lb:us-east-1:123456789012:targetgroup/{group.name}-0a1b2c3"


def app_service(deployment: Deployment):
    return deployment.one(SERVICE, "-app-service")


def test_rolling_has_one_target_group_and_the_circuit_breaker_alone(recorder):
    deployment = recorder.get({"deploymentStrategy": "rolling"})
    service = app_service(deployment)
    (balancer,) = service.get("loadBalancers")
    assert "advancedConfiguration" not in balancer
    assert not service.get("deploymentConfiguration")
    assert not service.get("alarms")
    assert service.get("deploymentCircuitBreaker") == {"enable": True, "rollback": True}
    assert [g.name for g in deployment.of_type(TARGET_GROUP) if "-alt" in g.name] == []
    assert not [r for r in deployment.of_type(LISTENER_RULE) if "test-route" in r.name]


@pytest.mark.parametrize("strategy", STAGED)
def test_staged_strategies_give_ecs_both_groups_both_rules_and_a_role(recorder, strategy):
    deployment = recorder.get({"deploymentStrategy": strategy, "deploymentBakeMinutes": 15})
    service = app_service(deployment)
    primary = deployment.one(TARGET_GROUP, "-app")
    alternate = deployment.one(TARGET_GROUP, "-alt")
    (balancer,) = service.get("loadBalancers")
    advanced = balancer["advancedConfiguration"]
    assert balancer["targetGroupArn"] == group_arn(primary)
    assert advanced["alternateTargetGroupArn"] == group_arn(alternate)

    rules = {r.state["arn"]: r for r in deployment.of_type(LISTENER_RULE)}
    production, test = (
        rules[advanced["productionListenerRule"]],
        rules[advanced["testListenerRule"]],
    )
    for rule in (production, test):
        (action,) = rule.get("actions")
        weights = {g["arn"]: g["weight"] for g in action["forward"]["targetGroups"]}
        assert weights == {group_arn(primary): 100, group_arn(alternate): 0}, rule.name
    assert test.get("priority") < production.get("priority")
    headers = [c["httpHeader"] for c in test.get("conditions") if "httpHeader" in c]
    assert headers == [{"httpHeaderName": "X-Deploy-Test", "values": ["*"]}]

    role = next(r for r in deployment.of_type(ROLE) if r.state["arn"] == advanced["roleArn"])
    (statement,) = role.json("assumeRolePolicy")["Statement"]
    assert statement["Principal"] == {"Service": "ecs.amazonaws.com"}
    attachments = deployment.of_type(ATTACHMENT)
    attached = [a.get("policyArn") for a in attachments if a.get("role") == role.state["name"]]
    assert attached == [ECS_LB_POLICY]

    configuration = service.get("deploymentConfiguration")
    assert configuration["strategy"] == strategy.upper()
    assert configuration["bakeTimeInMinutes"] == "15"
    assert service.get("deploymentCircuitBreaker") == {"enable": True, "rollback": True}


def test_ordinary_requests_reach_production_and_the_test_header_the_test_route(recorder):
    deployment = recorder.get({"deploymentStrategy": "blue_green"})
    listener = serving_listener(deployment)
    advanced = app_service(deployment).get("loadBalancers")[0]["advancedConfiguration"]
    rules = {r.state["arn"]: r for r in deployment.of_type(LISTENER_RULE)}
    production = rules[advanced["productionListenerRule"]].get("actions")[0]
    test = rules[advanced["testListenerRule"]].get("actions")[0]
    assert route(deployment, listener, "/items/1") is production
    assert route(deployment, listener, "/items/1", {"x-deploy-test": "1"}) is test
    # The private paths stay private with the header too.
    assert route(deployment, listener, "/metrics", {"X-Deploy-Test": "1"})["type"] == (
        "fixed-response"
    )
    assert set(forwarded_target_groups(test)) == set(forwarded_target_groups(production))


def test_canary_moves_the_configured_share_first(recorder):
    deployment = recorder.get(
        {"deploymentStrategy": "canary", "canaryPercent": 20, "canaryBakeMinutes": 7}
    )
    canary = app_service(deployment).get("deploymentConfiguration")["canaryConfiguration"]
    assert canary == {"canaryPercent": 20, "canaryBakeTimeInMinutes": "7"}
    blue_green = recorder.get({"deploymentStrategy": "blue_green"})
    assert "canaryConfiguration" not in app_service(blue_green).get("deploymentConfiguration")


@pytest.mark.parametrize("strategy", STAGED)
def test_the_deployment_alarms_exist_watch_both_groups_and_roll_back(recorder, strategy):
    deployment = recorder.get({"deploymentStrategy": strategy})
    alarms = app_service(deployment).get("alarms")
    assert alarms["enable"] is True and alarms["rollback"] is True
    by_name = {a.get("name"): a for a in deployment.of_type(ALARM) if a.get("name")}
    suffixes = {
        group_arn(deployment.one(TARGET_GROUP, suffix)).split(":")[-1]
        for suffix in ("-app", "-alt")
    }
    watched = set()
    for name in alarms["alarmNames"]:
        assert name in by_name, f"{name}: the service names an alarm the stack does not create"
        assert "-prod-" in name, "alarm names are per stack"
        queries = by_name[name].get("metricQueries")
        groups = {q["metric"]["dimensions"]["TargetGroup"] for q in queries if q.get("metric")}
        assert len(groups) == 2, f"{name} watches {groups}"
        watched.add(name.rsplit("-", 2)[-2] + "-" + name.rsplit("-", 2)[-1])
    assert watched == {"5xx-rate", "p99-latency", "unhealthy-hosts"}
    assert len(suffixes) == 2


def test_two_stacks_name_their_deployment_alarms_apart(recorder):
    prod = app_service(recorder.get({"deploymentStrategy": "blue_green"}, stack="prod"))
    dev = app_service(recorder.get({"deploymentStrategy": "blue_green"}, stack="dev"))
    assert not set(prod.get("alarms")["alarmNames"]) & set(dev.get("alarms")["alarmNames"])


def test_only_staged_deploys_may_follow_and_stop_service_deployments(recorder):
    service_arn = "arn:aws:ecs:us-east-1:123456789012:service/{cluster}/{service}"
    for strategy, allowed in (("rolling", False), ("blue_green", True), ("canary", True)):
        deployment = recorder.get({"deploymentStrategy": strategy})
        cluster, service = deployment.outputs["cluster_name"], deployment.outputs["service_name"]
        policy = deploy_policy(deployment)
        listing = service_arn.format(cluster=cluster, service=service)
        stopping = f"arn:aws:ecs:us-east-1:123456789012:service-deployment/{cluster}/{service}/x"
        assert allows(policy, "ecs:ListServiceDeployments", listing, {}) is allowed, strategy
        assert allows(policy, "ecs:StopServiceDeployment", stopping, {}) is allowed, strategy
        other = f"arn:aws:ecs:us-east-1:123456789012:service-deployment/{cluster}/other/x"
        assert not allows(policy, "ecs:StopServiceDeployment", other, {}), strategy
