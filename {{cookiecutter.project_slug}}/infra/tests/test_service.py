"""App service component: task definition contract, migration task, ALB wiring, autoscaling."""

from __future__ import annotations

import json

from policy_helpers import containers

TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
APP_ENV = {
    "ENVIRONMENT",
    "LOG_LEVEL",
    "GIT_SHA",
    "WEB_CONCURRENCY",
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_DB",
    "POSTGRES_USER",
}


def app_container(deployment, suffix="-app-task"):
    (container,) = containers(deployment.one(TASK_DEFINITION, suffix))
    return container


def test_app_container_gets_the_agreed_settings_and_secret(recorder):
    deployment = recorder.get({"imageTag": "0123abc", "appEnvironment": "staging"})
    container = app_container(deployment)
    env = {e["name"]: e["value"] for e in container["environment"]}
    # Plus how it logs in to the database: test_database_rds.py / test_database_efs.py.
    assert set(env) >= APP_ENV
    assert env["GIT_SHA"] == "0123abc"
    assert env["ENVIRONMENT"] == "staging"
    assert env["POSTGRES_PORT"] == "5432"
    assert container["image"].endswith(":0123abc")
    assert container["portMappings"] == [{"containerPort": 8000, "protocol": "tcp"}]
    assert container["stopTimeout"] == 30
    assert container["logConfiguration"]["logDriver"] == "awslogs"


def test_migration_task_runs_alembic_with_the_same_image_and_settings(default):
    app = app_container(default)
    migration = app_container(default, "-app-migrate")
    assert migration["command"] == ["alembic", "upgrade", "head"]
    assert migration["image"] == app["image"]
    shared = APP_ENV - {"POSTGRES_USER"}
    app_env, migration_env = (
        {e["name"]: e["value"] for e in c["environment"] if e["name"] in shared}
        for c in (app, migration)
    )
    assert migration_env == app_env  # the login may differ: test_database_*.py
    assert "portMappings" not in migration
    definition = default.one(TASK_DEFINITION, "-app-migrate")
    assert default.outputs["migration_task_definition_family"] == definition.get("family")
    for key in ("cluster_name", "task_subnet_ids", "app_security_group_id", "deploy_role_arn"):
        assert default.outputs[key]


def test_target_group_checks_liveness_and_drains_before_stop(default):
    group = default.one("aws:lb/targetGroup:TargetGroup", "-app")
    assert group.get("healthCheck")["path"] == "/health"
    assert group.get("targetType") == "ip"
    assert group.get("port") == 8000
    assert group.get("deregistrationDelay") == 20


def test_service_rolls_back_failed_deployments_and_registers_in_cloud_map(default):
    service = default.one("aws:ecs/service:Service", "-app-service")
    assert service.get("deploymentCircuitBreaker") == {"enable": True, "rollback": True}
    assert service.get("deploymentMinimumHealthyPercent") == 100
    registry = service.get("serviceRegistries")["registryArn"]
    (discovery,) = [
        d for d in default.of_type("aws:servicediscovery/service:Service") if d.get("name") == "app"
    ]
    assert registry.endswith("/app")
    assert discovery.get("dnsConfig")["dnsRecords"] == [{"type": "A", "ttl": 10}]


def test_autoscaling_tracks_cpu_and_requests_with_cooldowns(recorder):
    deployment = recorder.get({"autoscaling": True, "minTasks": 2, "maxTasks": 10})
    service = deployment.one("aws:ecs/service:Service", "-app-service")
    assert service.get("desiredCount") == 2
    for policy in deployment.of_type("aws:appautoscaling/policy:Policy"):
        tracking = policy.get("targetTrackingScalingPolicyConfiguration")
        assert tracking["scaleInCooldown"] > tracking["scaleOutCooldown"] > 0
    requests = deployment.one("aws:appautoscaling/policy:Policy", "-requests")
    label = requests.get("targetTrackingScalingPolicyConfiguration")[
        "predefinedMetricSpecification"
    ]["resourceLabel"]
    assert label.startswith("app/") and "/targetgroup/" in label


def test_fixed_count_without_autoscaling(recorder):
    deployment = recorder.get({"autoscaling": False, "minTasks": 2, "maxTasks": 2})
    assert deployment.one("aws:ecs/service:Service", "-app-service").get("desiredCount") == 2


def test_app_task_role_grants_at_most_its_database_login(default):
    role_policies = default.of_type("aws:iam/rolePolicy:RolePolicy")
    for policy in role_policies:
        if policy.name.endswith("-app-task-policy"):
            statements = json.loads(policy.get("policy"))["Statement"]
            assert [s["Action"] for s in statements] == [["rds-db:connect"]]
