"""Database option ecs_efs: one Postgres task on encrypted EFS, reached through Cloud Map."""

from __future__ import annotations
{%- if cookiecutter.cache == "redis" %}

from unittest.mock import ANY
{%- endif %}

from policy_helpers import containers, task_definition_of

SERVICE = "aws:ecs/service:Service"


def db_service(deployment):
    return deployment.one(SERVICE, "-db-service")


def test_postgres_runs_as_exactly_one_on_demand_task(variant):
    service = db_service(variant)
    assert service.get("desiredCount") == 1
    assert service.get("deploymentMinimumHealthyPercent") == 0
    assert service.get("deploymentMaximumPercent") == 100
    assert service.get("capacityProviderStrategies") == [
        {"capacityProvider": "FARGATE", "base": 1, "weight": 1}
    ]
    assert "loadBalancers" not in service.inputs


def test_data_directory_is_an_encrypted_efs_access_point_owned_by_postgres(default):
    definition = task_definition_of(default, db_service(default))
    (volume,) = definition.get("volumes")
    assert volume["efsVolumeConfiguration"]["transitEncryption"] == "ENABLED"
    (access_point,) = default.children_of_type("EfsDatabase", "aws:efs/accessPoint:AccessPoint")
    assert access_point.get("posixUser") == {"uid": 999, "gid": 999}
    assert access_point.get("rootDirectory")["path"] == "/postgres"
    (container,) = containers(definition)
    assert container["mountPoints"][0]["containerPath"] == "/var/lib/postgresql/data"
    assert container["user"] == "999:999"


def test_password_is_generated_into_secrets_manager_and_injected_as_a_secret(default):
    (container,) = containers(task_definition_of(default, db_service(default)))
    assert [s["name"] for s in container["secrets"]] == ["POSTGRES_PASSWORD"]
    assert "POSTGRES_PASSWORD" not in {e["name"] for e in container["environment"]}
    version = default.one("aws:secretsmanager/secretVersion:SecretVersion", "-db-password")
    assert "password" in version.get("secretString")


def test_app_finds_the_database_through_cloud_map(default):
    slug = default.one("aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace").get("name")
    app = default.one("aws:ecs/taskDefinition:TaskDefinition", "-app-task")
    (container,) = containers(app)
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env["POSTGRES_HOST"] == f"db.{slug}"
    assert env["POSTGRES_PORT"] == "5432"
    db_discovery = [
        d for d in default.of_type("aws:servicediscovery/service:Service") if d.get("name") == "db"
    ]
    assert len(db_discovery) == 1


def test_only_the_app_group_reaches_postgres(default):
    service = db_service(default)
    (group_id,) = service.get("networkConfiguration")["securityGroups"]
    rules = [
        r
        for r in default.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.get("securityGroupId") == group_id
    ]
    assert [(r.get("fromPort"), r.get("referencedSecurityGroupId")) for r in rules] == [
        (5432, default.outputs["app_security_group_id"])
    ]


def test_no_rds_instance(default):
    assert not default.of_type("aws:rds/instance:Instance")


def test_the_app_logs_in_as_its_own_role_and_only_migrations_as_the_superuser(default):
    app, migration = (
        containers(default.one("aws:ecs/taskDefinition:TaskDefinition", suffix))[0]
        for suffix in ("-app-task", "-app-migrate")
    )
    env = {e["name"]: e["value"] for e in app["environment"]}
    migration_env = {e["name"]: e["value"] for e in migration["environment"]}
    assert env["POSTGRES_USER"] == "app_login" != default.config["dbUsername"]
    assert migration_env["POSTGRES_USER"] == default.config["dbUsername"]
    assert migration_env["DB_APP_USER"] == "app_login"
    db = db_service(default)
    (db_container,) = containers(task_definition_of(default, db))
    (superuser,) = [s["valueFrom"] for s in db_container["secrets"]]
    (app_password,) = [s["valueFrom"] for s in app["secrets"] if s["name"] == "POSTGRES_PASSWORD"]
    assert app_password != superuser
    assert {s["name"]: s["valueFrom"] for s in migration["secrets"]} == {
        "POSTGRES_PASSWORD": superuser,
        "DB_APP_PASSWORD": app_password,  # the migrations set it on the app's role
{%- if cookiecutter.cache == "redis" %}
        "REDIS_PASSWORD": ANY,  # the app's settings, the cache's too
{%- endif %}
    }
    policies = default.of_type("aws:iam/rolePolicy:RolePolicy")
    assert not [p for p in policies if p.name.endswith("-app-task-policy")]
