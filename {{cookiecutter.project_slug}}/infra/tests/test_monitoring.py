"""Monitoring on AWS: Prometheus + Grafana as one single-task service; Grafana via the ALB only."""

from __future__ import annotations

from policy_helpers import ECS_SERVICE, containers, ingress_rules, task_definition_of

PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000


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
    assert set(by_name) == {"prometheus", "grafana"}
    urls = deployment.outputs["ecr_repository_urls"]
    assert by_name["prometheus"]["image"] == f"{urls['prometheus']}:0123abc"
    assert by_name["grafana"]["image"] == f"{urls['grafana']}:0123abc"
    mounts = {c: by_name[c]["mountPoints"][0]["containerPath"] for c in by_name}
    assert mounts == {"prometheus": "/prometheus", "grafana": "/var/lib/grafana"}
    assert {v["name"] for v in definition.get("volumes")} == {"prometheus", "grafana"}


def test_grafana_is_served_under_grafana_with_a_secret_admin_password(default):
    definition = task_definition_of(default, monitoring_service(default))
    grafana = next(c for c in containers(definition) if c["name"] == "grafana")
    env = {e["name"]: e["value"] for e in grafana["environment"]}
    assert env["GF_SERVER_ROOT_URL"] == "%(protocol)s://%(domain)s/grafana/"
    assert env["GF_SERVER_SERVE_FROM_SUB_PATH"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["PROMETHEUS_URL"] == "http://localhost:9090"
    (secret,) = grafana["secrets"]
    assert secret["name"] == "GF_SECURITY_ADMIN_PASSWORD"
    assert secret["valueFrom"].startswith("arn:aws:secretsmanager:")
    assert default.outputs["grafana_url"] == default.outputs["url"] + "/grafana/"


def test_grafana_only_through_its_alb_rule(variant):
    rule = variant.one("aws:lb/listenerRule:ListenerRule", "-grafana-route")
    assert rule.get("conditions") == [{"pathPattern": {"values": ["/grafana", "/grafana/*"]}}]
    app_rule = variant.one("aws:lb/listenerRule:ListenerRule", "-app-route")
    assert rule.get("priority") < app_rule.get("priority")
    group = variant.one("aws:lb/targetGroup:TargetGroup", "-graf")
    assert group.get("port") == GRAFANA_PORT
    assert group.get("healthCheck")["path"] == "/grafana/api/health"
    albs = {
        g
        for alb in variant.of_type("aws:lb/loadBalancer:LoadBalancer")
        for g in alb.get("securityGroups")
    }
    into_monitoring = [
        r for r in ingress_rules(variant) if r["group_id"] == monitoring_group_id(variant)
    ]
    from_alb = [r for r in into_monitoring if r["source_group"] in albs]
    assert [(r["from"], r["to"]) for r in from_alb] == [(GRAFANA_PORT, GRAFANA_PORT)]


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
