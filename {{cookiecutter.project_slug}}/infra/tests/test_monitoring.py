"""Monitoring on AWS: Prometheus, Alertmanager and Grafana as one single-task service.

Grafana is on the ALB only over HTTPS or from allowed CIDRs; Prometheus discovers the app's tasks
through the ECS API; Alertmanager publishes to the alarm topic.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from mocks import AUTONAME_SUFFIX
from policy_helpers import ECS_SERVICE, containers, ingress_rules, task_definition_of
from stack_config import ConfigError, validate
from test_stack_config import VALID

PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000
LISTENER_RULE = "aws:lb/listenerRule:ListenerRule"
LISTENER = "aws:lb/listener:Listener"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
OFFICE = ["203.0.113.0/24", "2001:db8::/32"]


def monitoring_service(deployment):
    return deployment.one(ECS_SERVICE, "-mon-service")


def monitoring_group_id(deployment):
    (group_id,) = monitoring_service(deployment).get("networkConfiguration")["securityGroups"]
    return group_id


def test_one_task_never_two(variant):
    service = monitoring_service(variant)
    assert service.get("desiredCount") == 1
    assert service.get("deploymentMinimumHealthyPercent") == 0
    assert service.get("deploymentMaximumPercent") == 100


def test_task_runs_both_images_from_this_stacks_registry_with_persistent_volumes(recorder):
    deployment = recorder.get({"imageTag": "0123abc", "appEnvironment": "staging"})
    definition = task_definition_of(deployment, monitoring_service(deployment))
    by_name = {c["name"]: c for c in containers(definition)}
    assert set(by_name) == {"prometheus", "alertmanager", "grafana"}
    urls = deployment.outputs["ecr_repository_urls"]
    assert by_name["prometheus"]["image"] == f"{urls['prometheus']}:0123abc"
    # Alertmanager ships in the Prometheus image: no repository or build of its own.
    assert by_name["alertmanager"]["image"] == f"{urls['prometheus']}:0123abc"
    assert by_name["grafana"]["image"] == f"{urls['grafana']}:0123abc"
    mounts = {c: by_name[c]["mountPoints"][0]["containerPath"] for c in ("prometheus", "grafana")}
    assert mounts == {"prometheus": "/prometheus", "grafana": "/var/lib/grafana"}
    assert {v["name"] for v in definition.get("volumes")} == {"prometheus", "grafana"}


def container_env(deployment, name):
    definition = task_definition_of(deployment, monitoring_service(deployment))
    container = next(c for c in containers(definition) if c["name"] == name)
    return container, {e["name"]: e["value"] for e in container.get("environment", [])}


@pytest.mark.parametrize(
    ("overrides", "root_url"),
    [
        ({"domainName": ""}, "http://{alb}/grafana/"),
        ({"domainName": "api.example.com"}, "https://api.example.com/grafana/"),
    ],
    ids=["no-domain", "domain"],
)
def test_grafana_root_url_is_its_public_url(recorder, overrides, root_url):
    deployment = recorder.get(overrides)
    grafana, env = container_env(deployment, "grafana")
    expected = root_url.format(alb=deployment.outputs["alb_dns_name"])
    assert env["GF_SERVER_ROOT_URL"] == expected
    assert env["GF_SERVER_SERVE_FROM_SUB_PATH"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["PROMETHEUS_URL"] == "http://localhost:9090"
    (secret,) = grafana["secrets"]
    assert secret["name"] == "GF_SECURITY_ADMIN_PASSWORD"
    assert secret["valueFrom"].startswith("arn:aws:secretsmanager:")


def grafana_routes(deployment):
    return [r for r in deployment.of_type(LISTENER_RULE) if r.name.endswith("-grafana-route")]


def listener_of(deployment, rule):
    physical = rule.get("listenerArn").rsplit("/", 1)[-1]
    (listener,) = [
        r for r in deployment.of_type(LISTENER) if f"{r.name}{AUTONAME_SUFFIX}" == physical
    ]
    return listener


def test_without_a_domain_grafana_is_not_on_the_public_alb(recorder):
    """The admin login must not cross the internet in plain HTTP (default: no CIDRs)."""
    deployment = recorder.get({"domainName": ""})
    assert grafana_routes(deployment) == []
    assert not [g for g in deployment.of_type("aws:lb/targetGroup:TargetGroup") if "graf" in g.name]
    assert not monitoring_service(deployment).get("loadBalancers")
    group = monitoring_group_id(deployment)
    assert [
        r for r in ingress_rules(deployment) if r["group_id"] == group and r["from"] == 3000
    ] == []
    assert "grafana_url" not in deployment.outputs


def test_without_a_domain_grafana_is_reachable_from_the_allowed_cidrs_only(recorder):
    deployment = recorder.get({"domainName": "", "grafanaAllowedCidrs": OFFICE})
    (rule,) = grafana_routes(deployment)
    assert rule.get("conditions") == [
        {"pathPattern": {"values": ["/grafana", "/grafana/*"]}},
        {"sourceIp": {"values": OFFICE}},
    ]
    assert listener_of(deployment, rule).get("protocol") == "HTTP"
    assert deployment.outputs["grafana_url"] == deployment.outputs["url"] + "/grafana/"


@pytest.mark.parametrize("cidrs", [[], OFFICE[:1]], ids=["any-source", "cidrs"])
def test_with_a_domain_grafana_is_only_on_the_https_listener(recorder, cidrs):
    deployment = recorder.get({"domainName": "api.example.com", "grafanaAllowedCidrs": cidrs})
    (rule,) = grafana_routes(deployment)
    assert listener_of(deployment, rule).get("protocol") == "HTTPS"
    conditions = rule.get("conditions")
    assert conditions[0] == {"pathPattern": {"values": ["/grafana", "/grafana/*"]}}
    assert conditions[1:] == ([{"sourceIp": {"values": cidrs}}] if cidrs else [])
    # Plain HTTP on that ALB only redirects to HTTPS.
    http = [r for r in deployment.of_type(LISTENER) if r.get("protocol") == "HTTP"]
    assert [r.get("defaultActions")[0]["type"] for r in http] == ["redirect"]
    assert deployment.outputs["grafana_url"] == "https://api.example.com/grafana/"


@pytest.mark.parametrize(
    ("cidrs", "message"),
    [
        (["10.0.0.1/8"], "config grafanaAllowedCidrs='10.0.0.1/8' must be IPv4/IPv6 CIDRs"),
        (["office"], "config grafanaAllowedCidrs='office' must be IPv4/IPv6 CIDRs"),
        (["10.0.0.1"], "config grafanaAllowedCidrs='10.0.0.1' must be IPv4/IPv6 CIDRs"),
        (["10.0.0.0/8"] * 4, "must be at most 3 CIDRs"),
    ],
)
def test_bad_grafana_cidrs_are_refused_naming_the_key(cidrs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        validate(dataclasses.replace(VALID, grafana_allowed_cidrs=tuple(cidrs)))
    assert validate(dataclasses.replace(VALID, grafana_allowed_cidrs=tuple(OFFICE)))


def test_grafana_only_through_its_alb_rule(recorder):
    deployment = recorder.get({"domainName": "api.example.com"})
    (rule,) = grafana_routes(deployment)
    app_rule = deployment.one(LISTENER_RULE, "-app-route")
    assert rule.get("priority") < app_rule.get("priority")
    group = deployment.one("aws:lb/targetGroup:TargetGroup", "-graf")
    assert group.get("port") == GRAFANA_PORT
    assert group.get("healthCheck")["path"] == "/grafana/api/health"
    albs = {
        g
        for alb in deployment.of_type("aws:lb/loadBalancer:LoadBalancer")
        for g in alb.get("securityGroups")
    }
    into_monitoring = [
        r for r in ingress_rules(deployment) if r["group_id"] == monitoring_group_id(deployment)
    ]
    from_alb = [r for r in into_monitoring if r["source_group"] in albs]
    assert [(r["from"], r["to"]) for r in from_alb] == [(GRAFANA_PORT, GRAFANA_PORT)]


def task_role_statements(deployment):
    (policy,) = [p for p in deployment.of_type(ROLE_POLICY) if p.name.endswith("-mon-task-policy")]
    return json.loads(policy.get("policy"))["Statement"]


def alert_topic_arn(deployment):
    return deployment.one("aws:sns/topicPolicy:TopicPolicy").get("arn")


def test_task_role_allows_exactly_ecs_discovery_of_this_cluster_and_publishing_alerts(default):
    """ECS service discovery (every task, not Cloud Map's 8 DNS records) with read-only calls
    on this stack's cluster, and sns:Publish to the alarm topic only."""
    cluster_arn = monitoring_service(default).get("cluster")
    cluster_name = default.outputs["cluster_name"]
    assert cluster_arn.endswith(f":cluster/{cluster_name}")
    ecs = cluster_arn.rsplit(":", 1)[0]
    by_action = {}
    for statement in task_role_statements(default):
        assert statement["Effect"] == "Allow"
        for action in statement["Action"]:
            by_action[action] = (statement["Resource"], statement.get("Condition"))
    efs = {a for a in by_action if a.startswith("elasticfilesystem:")}
    assert set(by_action) - efs == {
        "ecs:DescribeClusters",
        "ecs:ListServices",
        "ecs:ListTasks",
        "ecs:DescribeServices",
        "ecs:DescribeTasks",
        "ec2:DescribeNetworkInterfaces",
        "sns:Publish",
    }
    # Prometheus probes its credentials with DescribeClusters on the `default` cluster.
    assert by_action["ecs:DescribeClusters"] == ([cluster_arn, f"{ecs}:cluster/default"], None)
    only_this_cluster = {"ArnEquals": {"ecs:cluster": cluster_arn}}
    assert by_action["ecs:ListServices"] == ("*", only_this_cluster)
    assert by_action["ecs:ListTasks"] == ("*", only_this_cluster)
    assert by_action["ecs:DescribeServices"] == ([f"{ecs}:service/{cluster_name}/*"], None)
    assert by_action["ecs:DescribeTasks"] == ([f"{ecs}:task/{cluster_name}/*"], None)
    # No resource-level permissions exist for it; read-only.
    assert by_action["ec2:DescribeNetworkInterfaces"] == ("*", None)
    assert by_action["sns:Publish"] == ([alert_topic_arn(default)], None)


def test_prometheus_discovers_the_app_service_of_this_cluster(default):
    _, env = container_env(default, "prometheus")
    assert env["ECS_CLUSTER"] == default.outputs["cluster_name"]
    assert env["APP_SERVICE"] == default.outputs["service_name"]
    assert env["AWS_REGION"] == default.outputs["aws_region"]


def test_alertmanager_publishes_to_the_alarm_topic_and_listens_on_loopback(default):
    alertmanager, env = container_env(default, "alertmanager")
    assert env["ALERT_TOPIC_ARN"] == alert_topic_arn(default)
    assert env["AWS_REGION"] == default.outputs["aws_region"]
    assert alertmanager["entryPoint"][0] == "/bin/render-config"
    assert "--web.listen-address=127.0.0.1:9093" in alertmanager["command"]
    assert not alertmanager.get("portMappings")


def test_prometheus_is_reachable_only_inside_its_own_group(variant):
    group_id = monitoring_group_id(variant)
    for rule in ingress_rules(variant):
        if rule["group_id"] == group_id and rule["from"] == PROMETHEUS_PORT:
            assert rule["source_group"] == group_id
            assert not rule["cidrs"]
    prometheus_discovery = [
        d
        for d in variant.of_type("aws:servicediscovery/service:Service")
        if d.get("name") == "prometheus"
    ]
    assert len(prometheus_discovery) == 1


def test_app_admits_the_scraper_on_its_port(default):
    app_group = default.outputs["app_security_group_id"]
    sources = {
        r["source_group"]
        for r in ingress_rules(default)
        if r["group_id"] == app_group and r["from"] == 8000
    }
    assert monitoring_group_id(default) in sources
