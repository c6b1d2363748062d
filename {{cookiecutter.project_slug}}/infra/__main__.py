"""Pulumi program of {{ cookiecutter.project_slug }}: reads the stack config, wires the components, exports.

Architecture, costs and bootstrap steps: infra/README.md.
"""

from __future__ import annotations

import pulumi
import stack_config
from components.alarms import (
    Alerting,
    AlertingArgs,
    ServiceAlarms,
    ServiceAlarmsArgs,
    deployment_alarm_names,
)
{%- if cookiecutter.auth == "jwt" %}
from components.auth import Auth, AuthArgs
{%- endif %}
from components.backup import BackupArgs, Backups
{%- if cookiecutter.cache == "redis" %}
from components.cache import Cache, CacheArgs
{%- endif %}
from components.ci_access import CiAccess, CiAccessArgs
from components.cluster import Cluster, ClusterArgs
from components.database import DatabaseArgs
{%- if cookiecutter.database == "rds" %}
from components.database_rds import Database
{%- else %}
from components.database_efs import Database
{%- endif %}
from components.dns import AliasRecord, AliasRecordArgs, Certificate, CertificateArgs
{%- if cookiecutter.feature_flags == "unleash" %}
from components.feature_flags import FeatureFlags, FeatureFlagsArgs
{%- endif %}
from components.load_balancer import LoadBalancer, LoadBalancerArgs
{%- if cookiecutter.monitoring == "prometheus_grafana" %}
from components.monitoring import IMAGE_NAMES as MONITORING_IMAGES
from components.monitoring import Monitoring, MonitoringArgs
{%- endif %}
from components.naming import prefixed
from components.network import Network, NetworkArgs
{%- if cookiecutter.internal_packages %}
from components.packages import Packages, PackagesArgs
{%- endif %}
from components.registry import Registry, RegistryArgs
from components.security_groups import SecurityGroups, SecurityGroupsArgs
from components.service import AppService, AppServiceArgs
from components.waf import Waf, WafArgs

cfg = stack_config.load()
slug = cfg.slug
image_tag = stack_config.running_image_tag(cfg.image_tag)
namespace_name = f"{slug}.internal"

network = Network(
    prefixed(slug, "net"),
    NetworkArgs(
        cidr_block=cfg.vpc_cidr,
        nat_gateway=cfg.nat_gateway,
        flow_logs=cfg.vpc_flow_logs,
        log_retention_days=cfg.log_retention_days,
    ),
)
# Without NAT the tasks sit in public subnets with public IPs (to reach ECR and CloudWatch);
# their security groups still admit only the ALB and each other.
task_subnet_ids = (
    network.public_subnet_ids if cfg.tasks_in_public_subnets else network.private_subnet_ids
)
groups = SecurityGroups(prefixed(slug, "sg"), SecurityGroupsArgs(network.vpc_id, cfg.https))
{%- if cookiecutter.monitoring == "prometheus_grafana" %}
image_names = ["app", *MONITORING_IMAGES]
{%- else %}
image_names = ["app"]
{%- endif %}
registry = Registry(
    prefixed(slug, "ecr"),
    RegistryArgs(image_names=image_names, force_delete=not cfg.deletion_protection),
)
cluster = Cluster(
    slug,
    ClusterArgs(
        vpc_id=network.vpc_id,
        use_fargate_spot=cfg.use_fargate_spot,
        log_retention_days=cfg.log_retention_days,
        namespace_name=namespace_name,
    ),
)
alerting = Alerting(
    prefixed(slug, "alerts"),
    AlertingArgs(alert_email=cfg.alert_email, monthly_budget_usd=cfg.monthly_budget_usd),
)

certificate = (
    Certificate(
        prefixed(slug, "tls"),
        CertificateArgs(domain_name=cfg.domain_name, hosted_zone_name=cfg.hosted_zone_name),
    )
    if cfg.https
    else None
)
load_balancer = LoadBalancer(
    prefixed(slug, "lb"),
    LoadBalancerArgs(
        vpc_id=network.vpc_id,
        public_subnet_ids=network.public_subnet_ids,
        security_group_id=groups.alb_security_group_id,
        certificate_arn=certificate.certificate_arn if certificate else None,
        deletion_protection=cfg.deletion_protection,
        access_logs=cfg.alb_access_logs,
    ),
)
if cfg.use_waf:
    Waf(
        prefixed(slug, "waf"),
        WafArgs(load_balancer_arn=load_balancer.alb_arn, log_retention_days=cfg.log_retention_days),
    )

database = Database(
    prefixed(slug, "db"),
    DatabaseArgs(
        vpc_id=network.vpc_id,
        private_subnet_ids=network.private_subnet_ids,
        client_security_group_id=groups.app_security_group_id,
        db_name=cfg.db_name,
        username=cfg.db_username,
        app_username=cfg.db_app_username,
        deletion_protection=cfg.deletion_protection,
        instance_class=cfg.db_instance_class,
        allocated_storage_gb=cfg.db_allocated_storage_gb,
        max_allocated_storage_gb=cfg.db_max_allocated_storage_gb,
        multi_az=cfg.db_multi_az,
        backup_retention_days=cfg.db_backup_retention_days,
        alarm_topic_arn=alerting.topic_arn,
        cluster_arn=cluster.cluster_arn,
        namespace_id=cluster.namespace_id,
        namespace_name=namespace_name,
        log_group_name=cluster.log_group_name,
        task_subnet_ids=task_subnet_ids,
        assign_public_ip=cfg.tasks_in_public_subnets,
        image=cfg.postgres_image,
    ),
)

Backups(
    prefixed(slug, "backup"),
    BackupArgs(
        resource_arns=[database.backup_resource_arn],
        retention_days=cfg.backup_retention_days,
        dr_region=cfg.dr_region,
        dr_retention_days=cfg.dr_backup_retention_days,
        ecr_repository_prefix=prefixed(slug, "ecr") + "-",  # components/registry.py
    ),
)

{%- if cookiecutter.feature_flags == "unleash" %}
flags = FeatureFlags(
    prefixed(slug, "flags"),
    FeatureFlagsArgs(
        unleash_url=cfg.unleash_url,
        api_token=pulumi.Config().get_secret("unleashApiToken"),
        environment=cfg.unleash_environment,
    ),
)
{%- endif %}

{%- if cookiecutter.auth == "jwt" %}
auth = Auth(
    prefixed(slug, "auth"),
    AuthArgs(
        resource_server_identifier=slug,
        domain_prefix=cfg.auth_domain,
        deletion_protection=cfg.deletion_protection,
        issuer=cfg.auth_issuer,
        audience=cfg.auth_audience,
        scope_prefix=cfg.auth_scope_prefix,
        jwks_url=cfg.auth_jwks_url,
        token_url=cfg.auth_token_url,
    ),
)
{%- endif %}

{%- if cookiecutter.cache == "redis" %}
cache = Cache(
    prefixed(slug, "cache"),
    CacheArgs(
        vpc_id=network.vpc_id,
        private_subnet_ids=network.private_subnet_ids,
        client_security_group_id=groups.app_security_group_id,
        key_prefix=f"{slug}:item:",
        alarm_topic_arn=alerting.topic_arn,
        node_type=cfg.cache_node_type,
        max_data_gb=cfg.cache_max_data_gb,
        max_ecpu_per_second=cfg.cache_max_ecpu_per_second,
    ),
)
{%- endif %}

alarms_name = prefixed(slug, "alarms")
app = AppService(
    prefixed(slug, "app"),
    AppServiceArgs(
        cluster_arn=cluster.cluster_arn,
        cluster_name=cluster.cluster_name,
        vpc_id=network.vpc_id,
        task_subnet_ids=task_subnet_ids,
        assign_public_ip=cfg.tasks_in_public_subnets,
        security_group_id=groups.app_security_group_id,
        listener_arn=load_balancer.listener_arn,
        alb_arn_suffix=load_balancer.alb_arn_suffix,
        image=registry.image("app", image_tag),
        repository_arn=registry.repositories["app"].arn,
        log_group_name=cluster.log_group_name,
        namespace_id=cluster.namespace_id,
        environment={
            "ENVIRONMENT": cfg.app_environment,
            "LOG_LEVEL": cfg.log_level,
            "GIT_SHA": image_tag,
            "WEB_CONCURRENCY": str(cfg.web_concurrency),
            "POSTGRES_HOST": database.host,
            "POSTGRES_PORT": database.port.apply(str),
            "POSTGRES_DB": database.db_name,
            **database.access.app_environment,
{%- if cookiecutter.cache == "redis" %}
            **cache.app_environment,
{%- endif %}
{%- if cookiecutter.feature_flags == "unleash" %}
            **flags.app_environment,
{%- endif %}
{%- if cookiecutter.auth == "jwt" %}
            **auth.app_environment,
{%- endif %}
        },
        secrets={
            **database.access.app_secrets,
{%- if cookiecutter.cache == "redis" %}
            **cache.app_secrets,
{%- endif %}
{%- if cookiecutter.feature_flags == "unleash" %}
            **flags.app_secrets,
{%- endif %}
        },
        secret_arns=[
            *database.access.secret_arns,
{%- if cookiecutter.cache == "redis" %}
            *cache.secret_arns,
{%- endif %}
{%- if cookiecutter.feature_flags == "unleash" %}
            *flags.secret_arns,
{%- endif %}
        ],
        migration_environment=database.access.migration_environment,
        migration_secrets=database.access.migration_secrets,
        task_role_statements=database.access.task_role_statements,
        cpu=cfg.app_cpu,
        memory=cfg.app_memory,
        use_fargate_spot=cfg.use_fargate_spot,
        autoscaling=cfg.autoscaling,
        min_tasks=cfg.min_tasks,
        max_tasks=cfg.max_tasks,
        cpu_target_percent=cfg.cpu_target_percent,
        requests_per_target=cfg.requests_per_target,
        deployment_strategy=cfg.deployment_strategy,
        bake_minutes=cfg.deployment_bake_minutes,
        canary_percent=cfg.canary_percent,
        canary_bake_minutes=cfg.canary_bake_minutes,
        deployment_alarm_names=deployment_alarm_names(alarms_name),
    ),
)
ServiceAlarms(
    alarms_name,
    ServiceAlarmsArgs(
        topic_arn=alerting.topic_arn,
        alb_arn_suffix=load_balancer.alb_arn_suffix,
        target_group_arn_suffix=app.target_group_arn_suffix,
        alternate_target_group_arn_suffix=(
            app.target_group_arn_suffixes[1] if cfg.deployment_strategy != "rolling" else None
        ),
    ),
)

if certificate is not None:
    AliasRecord(
        prefixed(slug, "dns"),
        AliasRecordArgs(
            domain_name=cfg.domain_name,
            zone_id=certificate.zone_id,
            target_dns_name=load_balancer.dns_name,
            target_zone_id=load_balancer.zone_id,
            routing=cfg.dns_routing,
            region=cfg.aws_region,
        ),
    )
    url = pulumi.Output.from_input(f"https://{cfg.domain_name}")
else:
    url = pulumi.Output.concat("http://", load_balancer.dns_name)

deployed_services = [app.service_arn]
deployed_roles = list(app.role_arns)
{%- if cookiecutter.monitoring == "prometheus_grafana" %}

monitoring = Monitoring(
    prefixed(slug, "mon"),
    MonitoringArgs(
        cluster_arn=cluster.cluster_arn,
        vpc_id=network.vpc_id,
        private_subnet_ids=network.private_subnet_ids,
        task_subnet_ids=task_subnet_ids,
        assign_public_ip=cfg.tasks_in_public_subnets,
        app_security_group_id=groups.app_security_group_id,
        alb_security_group_id=groups.alb_security_group_id,
        listener_arn=load_balancer.listener_arn,
        log_group_name=cluster.log_group_name,
        namespace_id=cluster.namespace_id,
        prometheus_image=registry.image("prometheus", image_tag),
        grafana_image=registry.image("grafana", image_tag),
        repository_arns=[registry.repositories[name].arn for name in MONITORING_IMAGES],
        cluster_name=cluster.cluster_name,
        app_service_name=app.service_name,
        alert_topic_arn=alerting.topic_arn,
        grafana_root_url=pulumi.Output.concat(url, "/grafana/"),
        listener_is_https=cfg.https,
        grafana_allowed_cidrs=cfg.grafana_allowed_cidrs,
    ),
)
deployed_services.append(monitoring.service_arn)
deployed_roles += monitoring.role_arns
if monitoring.grafana_exposed:
    pulumi.export("grafana_url", pulumi.Output.concat(url, "/grafana/"))
pulumi.export("grafana_admin_secret_arn", monitoring.admin_secret_arn)
{%- endif %}

ci = CiAccess(
    prefixed(slug, "ci"),
    CiAccessArgs(
        github_repository=cfg.github_repository,
        deploy_environment=cfg.deploy_environment,
        existing_oidc_provider_arn=cfg.github_oidc_provider_arn,
        repository_arns=[repository.arn for repository in registry.repositories.values()],
        cluster_arn=cluster.cluster_arn,
        service_arns=deployed_services,
        pass_role_arns=deployed_roles,
        log_group_name=cluster.log_group_name,
        state_bucket_name=cfg.state_bucket_name,
        secrets_kms_key_arn=cfg.secrets_kms_key_arn,
        hosted_zone_id=certificate.zone_id if certificate else None,
        staged_service_arn=app.service_arn if cfg.deployment_strategy != "rolling" else None,
{%- if cookiecutter.auth == "jwt" %}
        auth_client_secret_arn=auth.client_secret_arn,
{%- endif %}
    ),
)
{%- if cookiecutter.internal_packages %}
packages = Packages(
    prefixed(slug, "packages"),
    PackagesArgs(
        domain=cfg.codeartifact_domain,
        repository=cfg.codeartifact_repository,
        client_package=f"{slug}-client",  # packages/{{ cookiecutter.package_name }}_client
        github_repository=cfg.github_repository,
        oidc_provider_arn=ci.oidc_provider_arn,
        create=cfg.codeartifact_create,
        domain_owner=cfg.codeartifact_domain_owner,
        # The image build of the push job installs the internal packages too.
        readers={"push": ci.push_role.id},
        deletion_protection=cfg.deletion_protection,
    ),
)
{%- endif %}

pulumi.export("url", url)
pulumi.export("alb_dns_name", load_balancer.dns_name)
pulumi.export("aws_region", pulumi.Config("aws").get("region"))
pulumi.export("ecr_repository_url", registry.repository_urls["app"])
pulumi.export("ecr_repository_urls", registry.repository_urls)
pulumi.export("cluster_name", cluster.cluster_name)
pulumi.export("cluster_arn", cluster.cluster_arn)
pulumi.export("service_name", app.service_name)
# How deploy.yml follows a deploy: rolling waits for a stable service; blue_green and canary
# smoke-test the new revision through the test header, then wait for ECS's verdict.
pulumi.export("deployment_strategy", cfg.deployment_strategy)
# Every service a deploy rolls; the deploy workflow waits until each is stable on the new image.
pulumi.export(
    "service_names",
    pulumi.Output.all(*deployed_services).apply(lambda arns: [a.split("/")[-1] for a in arns]),
)
# Read back by the next update when imageTag is unset (stack_config.running_image_tag).
pulumi.export("image_tag", image_tag)
pulumi.export("log_group_name", cluster.log_group_name)
pulumi.export("migration_task_definition_arn", app.migration_task_definition.arn)
pulumi.export("migration_task_definition_family", app.migration_task_definition.family)
pulumi.export("migration_task_definition_urn", app.migration_task_definition.urn)
# `aws ecs run-task` of the migration needs where and as what to run.
pulumi.export("task_subnet_ids", task_subnet_ids)
pulumi.export("task_assign_public_ip", "ENABLED" if cfg.tasks_in_public_subnets else "DISABLED")
pulumi.export("private_subnet_ids", network.private_subnet_ids)
pulumi.export("public_subnet_ids", network.public_subnet_ids)
pulumi.export("app_security_group_id", groups.app_security_group_id)
pulumi.export("database_host", database.host)
pulumi.export("deploy_role_arn", ci.deploy_role_arn)
pulumi.export("push_role_arn", ci.push_role_arn)
{%- if cookiecutter.internal_packages %}
# The repository variables the workflows read them from: infra/README.md "Bootstrap".
pulumi.export("codeartifact_domain", packages.domain)
pulumi.export("codeartifact_domain_owner", packages.domain_owner)
pulumi.export("codeartifact_repository", packages.repository)
pulumi.export("packages_read_role_arn", packages.read_role.arn)
pulumi.export("packages_publish_role_arn", packages.publish_role.arn)
{%- endif %}
{%- if cookiecutter.auth == "jwt" %}
# What a client needs to get a token: the token endpoint, the scopes' prefix and, with Cognito,
# the secret holding the M2M client's credentials (its ARN, which the deploy role may read; ""
# with an external issuer).
pulumi.export("auth_issuer", auth.issuer)
pulumi.export("auth_audience", auth.audience)
pulumi.export("auth_scope_prefix", auth.scope_prefix)
pulumi.export("auth_token_url", auth.token_url)
pulumi.export("auth_client_secret_arn", auth.client_secret_arn or "")
{%- endif %}
