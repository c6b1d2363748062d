"""Invariants over EVERY resource the program declares, for every config variant.

Each expectation is computed from the variant's config, so a variant added to variants.py (or
any stack config) is checked the same way.
"""

from __future__ import annotations

import re

from deployment import Deployment, unwrap
from mocks import RANDOM_PASSWORD
from policy_helpers import (
    ECS_SERVICE,
    LISTENER,
    LISTENER_RULE,
    LOAD_BALANCER,
    TARGET_GROUP,
    TASK_DEFINITION,
    WORLD,
    alb_security_group_ids,
    as_list,
    containers,
    efs_volumes,
    forwarded_target_groups,
    ingress_rules,
    is_secret_wrapped,
    policy_documents,
    statements,
    strings_in,
    task_definition_of,
)

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE|API_KEY|ACCESS_KEY", re.IGNORECASE)
PROMETHEUS_PORT = 9090
AZ_COUNT = 2


def test_only_the_alb_is_open_to_the_world_and_only_on_http_ports(variant: Deployment):
    albs = alb_security_group_ids(variant)
    expected_ports = {80, 443} if variant.cfg("domainName") else {80}
    open_ports = set()
    for rule in ingress_rules(variant):
        if rule["cidrs"] & WORLD:
            assert rule["group_id"] in albs, f"{rule['declared_by']} opens a non-ALB group"
            assert rule["from"] == rule["to"], f"{rule['declared_by']} opens a port range"
            open_ports.add(rule["from"])
    assert open_ports == expected_ports


def test_every_non_alb_ingress_comes_from_a_security_group(variant: Deployment):
    albs = alb_security_group_ids(variant)
    for rule in ingress_rules(variant):
        if rule["group_id"] not in albs:
            assert rule["source_group"], f"{rule['declared_by']} admits an address range"
            assert not rule["cidrs"], f"{rule['declared_by']} admits {rule['cidrs']}"


def test_data_stores_are_private_and_encrypted(variant: Deployment):
    for db in variant.of_type("aws:rds/instance:Instance"):
        assert db.get("publiclyAccessible") is False
        assert db.get("storageEncrypted") is True
    for fs in variant.of_type("aws:efs/fileSystem:FileSystem"):
        assert fs.get("encrypted") is True
    for repository in variant.of_type("aws:ecr/repository:Repository"):
        assert repository.get("encryptionConfigurations")
    for log_group in variant.of_type("aws:cloudwatch/logGroup:LogGroup"):
        assert log_group.get("retentionInDays", 0) > 0
    for definition in variant.of_type(TASK_DEFINITION):
        for volume in efs_volumes(definition):
            efs = volume["efsVolumeConfiguration"]
            assert efs["transitEncryption"] == "ENABLED", f"{definition.name} mounts EFS in clear"
            assert efs["authorizationConfig"]["iam"] == "ENABLED"


def test_only_one_load_balancer_and_it_is_the_only_internet_facing_thing(variant: Deployment):
    (alb,) = variant.of_type(LOAD_BALANCER)
    assert alb.get("internal") is False
    for subnet in variant.of_type("aws:ec2/subnet:Subnet"):
        assert not subnet.get("mapPublicIpOnLaunch")


def test_no_plaintext_secret_in_any_task_definition(variant: Deployment):
    for definition in variant.of_type(TASK_DEFINITION):
        for container in containers(definition):
            for env in container.get("environment", []):
                assert not SECRET_NAME.search(env["name"]), (
                    f"{definition.name}/{container['name']} has {env['name']} in plain env"
                )
            for secret in container.get("secrets", []):
                assert secret["valueFrom"].startswith(("arn:aws:secretsmanager:", "arn:aws:ssm:"))
    app = next(d for d in variant.of_type(TASK_DEFINITION) if d.name.endswith("-app-task"))
    (container,) = containers(app)
    env = {e["name"]: e["value"] for e in container["environment"]}
    # The app logs in with an injected secret, or with an IAM token per connection.
    assert "POSTGRES_PASSWORD" in {s["name"] for s in container["secrets"]} or (
        env.get("DB_AUTH") == "rds_iam"
    )


{% if cookiecutter.cache == "redis" -%}
# ...and in the cache's user, which ElastiCache must be given the password of.
PASSWORD_HOLDERS = (
    "aws:secretsmanager/secretVersion:SecretVersion",
    "aws:elasticache/user:User",
)
{% else -%}
PASSWORD_HOLDERS = ("aws:secretsmanager/secretVersion:SecretVersion",)
{% endif %}

def test_generated_passwords_live_only_in_secret_versions(variant: Deployment):
    for resource in variant.resources:
        for key, value in resource.inputs.items():
            if any(RANDOM_PASSWORD in text for text in strings_in(value)):
                assert resource.type in PASSWORD_HOLDERS, (
                    f"{resource.type} {resource.name}.{key} holds a generated password"
                )
                assert is_secret_wrapped(value), f"{resource.name}.{key} is not a Pulumi secret"


def test_no_output_is_or_names_a_password(variant: Deployment):
    assert not variant.secret_outputs
    for key, value in variant.outputs.items():
        assert "password" not in key.lower()
        assert not any(RANDOM_PASSWORD in text for text in strings_in(value))


def test_no_iam_statement_allows_every_action(variant: Deployment):
    for resource, document in policy_documents(variant):
        for statement in statements(document):
            if statement.get("Effect") != "Allow":
                continue
            for action in as_list(statement.get("Action")):
                assert action != "*" and not action.endswith(":*"), (
                    f"{resource.name} allows {action}"
                )
            assert "NotAction" not in statement, f"{resource.name} uses NotAction"


def test_spot_is_present_exactly_when_chosen(variant: Deployment):
    mentions = [
        r.name
        for r in variant.resources
        if any("FARGATE_SPOT" in text for value in r.inputs.values() for text in strings_in(value))
    ]
    if variant.cfg("useFargateSpot"):
        assert mentions
        (app,) = [s for s in variant.of_type(ECS_SERVICE) if s.name.endswith("-app-service")]
        strategy = {s["capacityProvider"]: s for s in app.get("capacityProviderStrategies")}
        assert strategy["FARGATE"]["base"] >= 1, "the first task must be on demand"
        assert strategy["FARGATE_SPOT"]["weight"] > 0
    else:
        assert not mentions


def test_nat_gateways_match_the_option(variant: Deployment):
    mode = variant.cfg("natGateway")
    nats = variant.of_type("aws:ec2/natGateway:NatGateway")
    assert len(nats) == {"none": 0, "single": 1, "one_per_az": AZ_COUNT}[mode]
    public = {s.id for s in variant.of_type("aws:ec2/subnet:Subnet") if "-public-" in s.name}
    for service in variant.of_type(ECS_SERVICE):
        network = service.get("networkConfiguration")
        in_public = set(network["subnets"]) <= public
        assert in_public == (mode == "none"), f"{service.name} is in the wrong subnets"
        assert network.get("assignPublicIp", False) == (mode == "none")


def test_autoscaling_policies_exist_exactly_when_enabled(variant: Deployment):
    policies = variant.of_type("aws:appautoscaling/policy:Policy")
    targets = variant.of_type("aws:appautoscaling/target:Target")
    if not variant.cfg("autoscaling"):
        assert not policies and not targets
        return
    (target,) = targets
    assert target.get("minCapacity") == variant.cfg("minTasks")
    assert target.get("maxCapacity") == variant.cfg("maxTasks")
    metrics = {
        p.get("targetTrackingScalingPolicyConfiguration")["predefinedMetricSpecification"][
            "predefinedMetricType"
        ]
        for p in policies
    }
    assert metrics == {"ECSServiceAverageCPUUtilization", "ALBRequestCountPerTarget"}


def test_https_and_redirect_exactly_when_a_domain_is_set(variant: Deployment):
    listeners = {listener.get("port"): listener for listener in variant.of_type(LISTENER)}
    certificates = variant.of_type("aws:acm/certificate:Certificate")
    if variant.cfg("domainName"):
        assert set(listeners) == {80, 443}
        https = listeners[443]
        assert https.get("protocol") == "HTTPS"
        assert https.get("sslPolicy", "").startswith("ELBSecurityPolicy-TLS13")
        (redirect,) = listeners[80].get("defaultActions")
        assert redirect["type"] == "redirect"
        assert redirect["redirect"]["protocol"] == "HTTPS"
        assert len(certificates) == 1
        assert variant.outputs["url"] == f"https://{variant.cfg('domainName')}"
    else:
        assert set(listeners) == {80}
        assert all(a["type"] != "redirect" for a in listeners[80].get("defaultActions"))
        assert not certificates
        assert variant.outputs["url"].startswith("http://")


def test_single_copy_services_can_never_run_two_tasks(variant: Deployment):
    """Services that mount EFS (containerised Postgres, monitoring) own a data directory."""
    scaled = {t.get("resourceId") for t in variant.of_type("aws:appautoscaling/target:Target")}
    stateful = [
        s for s in variant.of_type(ECS_SERVICE) if efs_volumes(task_definition_of(variant, s))
    ]
    for service in stateful:
        assert service.get("desiredCount") == 1, service.name
        assert service.get("deploymentMaximumPercent") == 100, service.name
        assert service.get("deploymentMinimumHealthyPercent") == 0, service.name
        providers = {s["capacityProvider"] for s in service.get("capacityProviderStrategies")}
        assert providers == {"FARGATE"}, f"{service.name} may run on Spot"
        assert not any(service.name in str(resource_id) for resource_id in scaled)


def test_prometheus_is_never_public(variant: Deployment):
    albs = alb_security_group_ids(variant)
    for rule in ingress_rules(variant):
        if rule["from"] is not None and rule["from"] <= PROMETHEUS_PORT <= rule["to"]:
            assert not rule["cidrs"], f"{rule['declared_by']} opens Prometheus to addresses"
            assert rule["source_group"] not in albs, "the ALB can reach Prometheus"
    for group in variant.of_type(TARGET_GROUP):
        assert group.get("port") != PROMETHEUS_PORT, "Prometheus behind the load balancer"


def test_load_balancer_names_fit_aws_limits(variant: Deployment):
    for resource in variant.of_type(LOAD_BALANCER) + variant.of_type(TARGET_GROUP):
        assert len(resource.name) + len("-0a1b2c3") <= 32, resource.name


def test_listener_rules_forward_only_to_declared_target_groups(variant: Deployment):
    arns = {
        f"arn:aws:lb:us-east-1:123456789012:targetgroup/{g.name}-0a1b2c3"
        for g in variant.of_type(TARGET_GROUP)
    }
    priorities = []
    for rule in variant.of_type(LISTENER_RULE):
        priorities.append(rule.get("priority"))
        for action in rule.get("actions"):
            assert action["type"] in {"forward", "fixed-response"}, rule.name
            if action["type"] == "forward":
                assert set(forwarded_target_groups(action)) <= arns, rule.name
    assert len(priorities) == len(set(priorities))


def test_every_resource_belongs_to_a_component_that_registers_outputs(variant: Deployment):
    components = {c.urn: c for c in variant.components()}
    for resource in variant.resources:
        if resource.custom:
            assert resource.parent in components, f"{resource.name} is not under a component"
    for component in components.values():
        assert component.registered_outputs, f"{component.name} registers no outputs"


def test_graceful_shutdown_contract(variant: Deployment):
    for definition in variant.of_type(TASK_DEFINITION):
        for container in containers(definition):
            assert container["stopTimeout"] == 30
    for group in variant.of_type(TARGET_GROUP):
        assert group.get("deregistrationDelay") < 30


def test_unwrap_sees_through_secrets():
    """Guard for the walkers above: a secret-wrapped input must still be inspected."""
    from deployment import SECRET_SIG

    assert unwrap({SECRET_SIG: "1b47061264138c4ac30d75fd1eb44270", "value": "x"}) == "x"


def test_services_wait_for_capacity_providers_listener_rules_and_mounts(variant: Deployment):
    """ECS rejects a service whose capacity providers, target group or EFS are not ready."""
    capacity = {
        r.urn for r in variant.of_type("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders")
    }
    rules_by_group = {
        group: rule.urn
        for rule in variant.of_type(LISTENER_RULE)
        for action in rule.get("actions")
        if action["type"] == "forward"
        for group in forwarded_target_groups(action)
    }
    for service in variant.of_type(ECS_SERVICE):
        depends = set(service.dependencies)
        assert depends & capacity, f"{service.name} does not wait for the capacity providers"
        for balancer in service.get("loadBalancers") or []:
            assert rules_by_group[balancer["targetGroupArn"]] in depends, (
                f"{service.name} does not wait for its listener rule"
            )
        if efs_volumes(task_definition_of(variant, service)):
            assert any("MountTarget" in urn for urn in depends), (
                f"{service.name} does not wait for its EFS mount targets"
            )
