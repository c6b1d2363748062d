"""Typed view of the stack's Pulumi config: every option the program reads, validated in one place.

Defaults live in Pulumi.yaml (rendered from the cookiecutter answers); a stack file overrides them.
"""

from __future__ import annotations

{% if cookiecutter.monitoring == "prometheus_grafana" -%}
import ipaddress
{% endif -%}
import re
from dataclasses import dataclass
{%- if cookiecutter.auth == "jwt" %}
from urllib.parse import urlsplit
{%- endif %}

import pulumi

NAT_GATEWAY_MODES = ("single", "one_per_az", "none")
DEPLOYMENT_STRATEGIES = ("rolling", "blue_green", "canary")  # components/service.py STRATEGIES

# AWS caps ALB and target group names at 32 characters. Pulumi auto-naming appends "-" and
# 7 hex characters (8 in all), and the longest suffix the program adds to the slug is "-graf"
# (5), so the slug may be at most 32 - 8 - 5 = 19 characters. The pre-gen hook enforces it too.
AWS_LB_NAME_MAX = 32
PULUMI_AUTONAME_SUFFIX = 8
LONGEST_NAME_SUFFIX = 5
SLUG_MAX = AWS_LB_NAME_MAX - PULUMI_AUTONAME_SUFFIX - LONGEST_NAME_SUFFIX

# The tag the stack runs before the first deploy has pushed an image.
BOOTSTRAP_IMAGE_TAG = "bootstrap"
# Stack names whose "auto" safeguards (deletion protection, flow logs, access logs) are off:
# disposable stacks, destroyed and re-created at will.
DISPOSABLE_STACKS = ("dev",)

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
{%- if cookiecutter.auth == "jwt" %}
# Cognito's rules for a prefix domain (<prefix>.auth.<region>.amazoncognito.com): the
# CreateUserPoolDomain pattern, and words AWS reserves.
_COGNITO_DOMAIN_PREFIX = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
COGNITO_RESERVED_WORDS = ("aws", "amazon", "cognito")
{%- endif %}
{%- if cookiecutter.internal_packages %}
# CodeArtifact's CreateDomain and CreateRepository name patterns, and an AWS account id.
_CODEARTIFACT_DOMAIN = re.compile(r"^[a-z][a-z0-9-]{0,48}[a-z0-9]$")
_CODEARTIFACT_REPOSITORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,99}$")
_ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
{%- endif %}


class ConfigError(ValueError):
    """A config value breaks a rule; the message names the key, the value and the rule."""


@dataclass(frozen=True)
class StackConfig:
    """Every option of the stack, already validated."""

    slug: str
    stack: str
    aws_region: str
    app_environment: str
    log_level: str
    image_tag: str
    web_concurrency: int
    app_cpu: int
    app_memory: int
    use_fargate_spot: bool
    nat_gateway: str
    autoscaling: bool
    min_tasks: int
    max_tasks: int
    cpu_target_percent: int
    requests_per_target: int
    deployment_strategy: str
    deployment_bake_minutes: int
    canary_percent: int
    canary_bake_minutes: int
    domain_name: str
    hosted_zone_name: str
    use_waf: bool
    alert_email: str
    monthly_budget_usd: int
    log_retention_days: int
    vpc_cidr: str
    db_name: str
    db_username: str
    db_app_username: str
    db_instance_class: str
    db_allocated_storage_gb: int
    db_max_allocated_storage_gb: int
    db_multi_az: bool
    db_backup_retention_days: int
    backup_retention_days: int
    dr_region: str
    dr_backup_retention_days: int
    dns_routing: str
    postgres_image: str
    deletion_protection: bool
    vpc_flow_logs: bool
    alb_access_logs: bool
    github_repository: str
    deploy_environment: str
    github_oidc_provider_arn: str
    state_bucket_name: str
    secrets_kms_key_arn: str
{%- if cookiecutter.feature_flags == "unleash" %}
    # An Unleash the app reads (components/feature_flags.py); "" = every flag's default.
    unleash_url: str = ""
    unleash_environment: str = "production"
{%- endif %}
{%- if cookiecutter.cache == "redis" %}
    # ElastiCache for Valkey: "" = serverless, within these limits; a node type = nodes.
    cache_node_type: str = ""
    cache_max_data_gb: int = 1
    cache_max_ecpu_per_second: int = 5000
{%- endif %}
{%- if cookiecutter.monitoring == "prometheus_grafana" %}
    # Without a domain (plain HTTP), Grafana is reachable only from these; empty = not at all.
    grafana_allowed_cidrs: tuple[str, ...] = ()
{%- endif %}
{%- if cookiecutter.auth == "jwt" %}
    # Who issues the app's bearer tokens (components/auth.py): "" = a Cognito user pool of this
    # stack; else an external OIDC issuer, with the aud values (or client ids) it accepts.
    auth_issuer: str = ""
    auth_audience: tuple[str, ...] = ()
    auth_scope_prefix: str = ""
    auth_jwks_url: str = ""
    auth_token_url: str = ""
    # Cognito's hosted domain prefix; "" = auth_domain_default.
    auth_domain_prefix: str = ""
{%- endif %}
{%- if cookiecutter.internal_packages %}
    # The CodeArtifact index of the internal packages (components/packages.py): created here, or
    # an existing domain and repository reused (of the account codeartifact_domain_owner, "" =
    # this one). Domain "" = codeartifact_domain_default.
    codeartifact_create: bool = True
    codeartifact_domain_name: str = ""
    codeartifact_repository: str = "internal"
    codeartifact_domain_owner: str = ""
{%- endif %}

    @property
    def https(self) -> bool:
        return bool(self.domain_name)

    @property
    def tasks_in_public_subnets(self) -> bool:
        """Without NAT, tasks reach ECR and CloudWatch through a public IP instead."""
        return self.nat_gateway == "none"
{%- if cookiecutter.internal_packages %}

    @property
    def codeartifact_domain(self) -> str:
        """codeartifactDomain, else one named after the owner of the GitHub repository."""
        return self.codeartifact_domain_name or codeartifact_domain_default(self.github_repository)
{%- endif %}
{%- if cookiecutter.auth == "jwt" %}

    @property
    def auth_domain(self) -> str:
        """The Cognito domain prefix: authDomainPrefix, else one made of the slug and stack."""
        return self.auth_domain_prefix or auth_domain_default(self.slug, self.stack)


def auth_domain_default(slug: str, stack: str) -> str:
    """`<slug>-<stack>` in the characters Cognito allows (stack names may hold `_` and `.`)."""
    return re.sub(r"[^a-z0-9]+", "-", f"{slug}-{stack}".lower()).strip("-")[:63].rstrip("-")
{%- endif %}
{%- if cookiecutter.internal_packages %}


def codeartifact_domain_default(github_repository: str) -> str:
    """The organisation's name in the characters a CodeArtifact domain allows (GitHub owners may
    hold capitals, start with a digit, or be one character)."""
    owner = github_repository.split("/")[0]
    name = re.sub(r"[^a-z0-9]+", "-", owner.lower()).strip("-")
    if not name[:1].isalpha() or len(name) < 2:
        name = f"org-{name}".rstrip("-")
    return name[:50].rstrip("-")
{%- endif %}


def derive_hosted_zone(domain_name: str) -> str:
    """`api.example.com` lives in `example.com`; a two-label domain is its own zone."""
    labels = domain_name.split(".")
    return ".".join(labels[1:]) if len(labels) > 2 else domain_name


def validate(cfg: StackConfig) -> StackConfig:
    """Raise ConfigError for the first broken rule; return cfg unchanged otherwise."""
    rules = [
        ("slug", cfg.slug, len(cfg.slug) <= SLUG_MAX, f"at most {SLUG_MAX} characters"),
        ("natGateway", cfg.nat_gateway, cfg.nat_gateway in NAT_GATEWAY_MODES, "a known mode"),
        ("minTasks", cfg.min_tasks, cfg.min_tasks >= 1, "at least 1"),
        (
            "dbAppUsername",
            cfg.db_app_username,
            bool(_ROLE.match(cfg.db_app_username)) and cfg.db_app_username != cfg.db_username,
            "a lowercase PostgreSQL role name other than dbUsername (the master)",
        ),
        ("maxTasks", cfg.max_tasks, cfg.max_tasks >= cfg.min_tasks, "at least minTasks"),
        (
            "deploymentStrategy",
            cfg.deployment_strategy,
            cfg.deployment_strategy in DEPLOYMENT_STRATEGIES,
            "one of " + ", ".join(DEPLOYMENT_STRATEGIES),
        ),
        (
            "deploymentBakeMinutes",
            cfg.deployment_bake_minutes,
            0 <= cfg.deployment_bake_minutes <= 1440,
            "0-1440 (ECS's limit)",
        ),
        ("canaryPercent", cfg.canary_percent, 1 <= cfg.canary_percent <= 99, "1-99"),
        (
            "canaryBakeMinutes",
            cfg.canary_bake_minutes,
            0 <= cfg.canary_bake_minutes <= 1440,
            "0-1440 (ECS's limit)",
        ),
        (
            "domainName",
            cfg.domain_name,
            not cfg.domain_name or bool(_DOMAIN.match(cfg.domain_name)),
            "a lowercase DNS name such as api.example.com",
        ),
        (
            "alertEmail",
            cfg.alert_email,
            not cfg.alert_email or bool(_EMAIL.match(cfg.alert_email)),
            "an e-mail address or empty",
        ),
        ("monthlyBudgetUsd", cfg.monthly_budget_usd, cfg.monthly_budget_usd > 0, "positive"),
        (
            "backupRetentionDays",
            cfg.backup_retention_days,
            1 <= cfg.backup_retention_days <= 36500,
            "1-36500 days",
        ),
        (
            "drRegion",
            cfg.dr_region,
            not cfg.dr_region
            or (bool(_REGION.match(cfg.dr_region)) and cfg.dr_region != cfg.aws_region),
            'empty (no copies) or an AWS region other than the stack\'s, e.g. "us-west-2"',
        ),
        (
            "dnsRouting",
            cfg.dns_routing,
            cfg.dns_routing in ("simple", "latency"),
            "simple (one stack answers for domainName) or latency (one record per region)",
        ),
        (
            "drBackupRetentionDays",
            cfg.dr_backup_retention_days,
            1 <= cfg.dr_backup_retention_days <= 36500,
            "1-36500 days",
        ),
{%- if cookiecutter.feature_flags == "unleash" %}
        (
            "unleashUrl",
            cfg.unleash_url,
            not cfg.unleash_url or cfg.unleash_url.startswith("https://"),
            "empty (no Unleash: every flag has its default) or an https:// URL of Unleash's API",
        ),
{%- endif %}
{%- if cookiecutter.cache == "redis" %}
        (
            "cacheNodeType",
            cfg.cache_node_type,
            not cfg.cache_node_type or cfg.cache_node_type.startswith("cache."),
            'empty (serverless) or an ElastiCache node type such as "cache.t4g.micro"',
        ),
        ("cacheMaxDataGb", cfg.cache_max_data_gb, 1 <= cfg.cache_max_data_gb <= 5000, "1-5000"),
        (
            "cacheMaxEcpuPerSecond",
            cfg.cache_max_ecpu_per_second,
            1000 <= cfg.cache_max_ecpu_per_second <= 15_000_000,
            "1000-15000000",
        ),
{%- endif %}
        (
            "githubRepository",
            cfg.github_repository,
            cfg.github_repository.count("/") == 1,
            "owner/name",
        ),
    ]
{%- if cookiecutter.monitoring == "prometheus_grafana" %}
    rules += grafana_cidr_rules(cfg.grafana_allowed_cidrs)
{%- endif %}
{%- if cookiecutter.auth == "jwt" %}
    rules += auth_rules(cfg)
{%- endif %}
{%- if cookiecutter.internal_packages %}
    rules += codeartifact_rules(cfg)
{%- endif %}
    for key, value, ok, rule in rules:
        if not ok:
            raise ConfigError(f"config {key}={value!r} must be {rule}")
    return cfg


{% if cookiecutter.monitoring == "prometheus_grafana" -%}
# An ALB rule takes at most 5 condition values; Grafana's path condition uses 2.
GRAFANA_CIDRS_MAX = 3


def grafana_cidr_rules(cidrs: tuple[str, ...]) -> list[tuple[str, object, bool, str]]:
    """The rules of grafanaAllowedCidrs: a few real CIDRs (host bits zero)."""
    count = (
        "grafanaAllowedCidrs",
        list(cidrs),
        len(cidrs) <= GRAFANA_CIDRS_MAX,
        f"at most {GRAFANA_CIDRS_MAX} CIDRs (an ALB rule takes 5 condition values)",
    )
    each = [
        ("grafanaAllowedCidrs", cidr, _is_cidr(cidr), "IPv4/IPv6 CIDRs such as 203.0.113.0/24")
        for cidr in cidrs
    ]
    return [count, *each]


def _is_cidr(value: object) -> bool:
    if not isinstance(value, str) or "/" not in value:
        return False
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        return False
    return True


{% endif -%}
{% if cookiecutter.auth == "jwt" -%}
def auth_rules(cfg: StackConfig) -> list[tuple[str, object, bool, str]]:
    """The rules of the auth keys: an external issuer (authIssuer) comes with its audience and
    https URLs; without one, Cognito derives them all and needs a valid domain prefix."""
    if not cfg.auth_issuer:
        derived = "empty without authIssuer (this stack's Cognito user pool derives it)"
        return [
            ("authAudience", list(cfg.auth_audience), not cfg.auth_audience, derived),
            ("authScopePrefix", cfg.auth_scope_prefix, not cfg.auth_scope_prefix, derived),
            ("authJwksUrl", cfg.auth_jwks_url, not cfg.auth_jwks_url, derived),
            ("authTokenUrl", cfg.auth_token_url, not cfg.auth_token_url, derived),
            (
                "authDomainPrefix",
                cfg.auth_domain,
                _is_cognito_domain_prefix(cfg.auth_domain),
                "1-63 lowercase letters, digits and hyphens, no hyphen first or last, without "
                + ", ".join(f"{word!r}" for word in COGNITO_RESERVED_WORDS)
                + " (Cognito's rules; the default is <project>-<stack>)",
            ),
        ]
    optional_url = "empty or an https:// URL"
    return [
        (
            "authIssuer",
            cfg.auth_issuer,
            _is_https_url(cfg.auth_issuer),
            "an https:// URL, exactly the iss claim of the issuer's tokens (empty = Cognito)",
        ),
        (
            "authAudience",
            list(cfg.auth_audience),
            bool(cfg.auth_audience)
            and all(isinstance(a, str) and a and a == a.strip() for a in cfg.auth_audience),
            "a non-empty list of the accepted aud values (or client ids) when authIssuer is set, "
            "e.g. pulumi config set --path 'authAudience[0]' https://api.example.com",
        ),
        (
            "authScopePrefix",
            cfg.auth_scope_prefix,
            not any(c.isspace() for c in cfg.auth_scope_prefix),
            "without whitespace (what the issuer puts before items:read, often empty)",
        ),
        ("authJwksUrl", cfg.auth_jwks_url, _is_optional_https_url(cfg.auth_jwks_url), optional_url),
        (
            "authTokenUrl",
            cfg.auth_token_url,
            _is_optional_https_url(cfg.auth_token_url),
            optional_url,
        ),
    ]


def _is_https_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme == "https" and bool(parts.hostname) and not any(c.isspace() for c in value)


def _is_optional_https_url(value: str) -> bool:
    return not value or _is_https_url(value)


def _is_cognito_domain_prefix(value: str) -> bool:
    return bool(_COGNITO_DOMAIN_PREFIX.match(value)) and not any(
        word in value for word in COGNITO_RESERVED_WORDS
    )


def _string_list(config: pulumi.Config, key: str) -> tuple[str, ...]:
    """A list-valued key (`pulumi config set --path '<key>[0]' ...`); a bare string is refused
    rather than read as a list of characters."""
    try:
        value = config.get_object(key)
    except pulumi.ConfigTypeError:  # not JSON at all: a plain string
        value = config.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        rule = f"a list, e.g. pulumi config set --path '{key}[0]' <value>"
        raise ConfigError(f"config {key}={value!r} must be {rule}")
    return tuple(value)


{% endif -%}
{% if cookiecutter.internal_packages -%}
def codeartifact_rules(cfg: StackConfig) -> list[tuple[str, object, bool, str]]:
    """CodeArtifact's naming rules, and a domain owner only for a domain this stack reuses."""
    return [
        (
            "codeartifactDomain",
            cfg.codeartifact_domain,
            bool(_CODEARTIFACT_DOMAIN.match(cfg.codeartifact_domain)),
            "2-50 lowercase letters, digits and hyphens, starting with a letter and ending with a "
            "letter or digit (CodeArtifact's rule for domain names)",
        ),
        (
            "codeartifactRepository",
            cfg.codeartifact_repository,
            bool(_CODEARTIFACT_REPOSITORY.match(cfg.codeartifact_repository)),
            "2-100 letters, digits, '.', '-' and '_', starting with a letter or digit "
            "(CodeArtifact's rule for repository names)",
        ),
        (
            "codeartifactDomainOwner",
            cfg.codeartifact_domain_owner,
            not cfg.codeartifact_domain_owner
            or bool(_ACCOUNT_ID.match(cfg.codeartifact_domain_owner)),
            "empty (this account) or a 12-digit AWS account id",
        ),
        (
            "codeartifactDomainOwner",
            cfg.codeartifact_domain_owner,
            not (cfg.codeartifact_create and cfg.codeartifact_domain_owner),
            "empty while codeartifactCreate is true (a stack creates the domain in its own "
            "account; set codeartifactCreate to false to reuse another account's)",
        ),
    ]


{% endif -%}
def _int(config: pulumi.Config, key: str, default: int) -> int:
    value = config.get_int(key)
    return default if value is None else value


def _bool(config: pulumi.Config, key: str) -> bool:
    return bool(config.get_bool(key))


def _auto(config: pulumi.Config, key: str, stack: str) -> bool:
    """A safeguard set to "true", "false" or "auto" (on for every stack but a disposable one)."""
    value = (config.get(key) or "auto").lower()
    if value not in ("auto", "true", "false"):
        raise ConfigError(f"config {key}={value!r} must be auto|true|false")
    return stack not in DISPOSABLE_STACKS if value == "auto" else value == "true"


def running_image_tag(configured: str) -> pulumi.Output[str]:
    """`imageTag` when set; else the tag this stack exported on its last update (so an
    administrator's `pulumi up` keeps the deployed image); else the bootstrap placeholder."""
    if configured:
        return pulumi.Output.from_input(configured)
    self_reference = pulumi.StackReference(
        f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
    )
    return self_reference.get_output("image_tag").apply(
        lambda tag: tag if isinstance(tag, str) and tag else BOOTSTRAP_IMAGE_TAG
    )


def load() -> StackConfig:
    """Read the stack config; Pulumi.yaml declares every key with its default."""
    config = pulumi.Config()
    slug = pulumi.get_project()
    stack = pulumi.get_stack()
    domain_name = config.get("domainName") or ""
    return validate(
        StackConfig(
            slug=slug,
            stack=stack,
            aws_region=pulumi.Config("aws").get("region") or "",
            app_environment=config.get("appEnvironment") or "production",
            log_level=config.get("logLevel") or "INFO",
            # "" = the running tag (running_image_tag).
            image_tag=config.get("imageTag") or "",
            web_concurrency=_int(config, "webConcurrency", 1),
            app_cpu=_int(config, "appCpu", 512),
            app_memory=_int(config, "appMemory", 1024),
            use_fargate_spot=_bool(config, "useFargateSpot"),
            nat_gateway=config.get("natGateway") or "single",
            autoscaling=_bool(config, "autoscaling"),
            min_tasks=_int(config, "minTasks", 1),
            max_tasks=_int(config, "maxTasks", 1),
            cpu_target_percent=_int(config, "cpuTargetPercent", 60),
            requests_per_target=_int(config, "requestsPerTarget", 1000),
            deployment_strategy=config.get("deploymentStrategy") or "rolling",
            deployment_bake_minutes=_int(config, "deploymentBakeMinutes", 10),
            canary_percent=_int(config, "canaryPercent", 10),
            canary_bake_minutes=_int(config, "canaryBakeMinutes", 5),
            domain_name=domain_name,
            hosted_zone_name=config.get("hostedZoneName") or derive_hosted_zone(domain_name),
            use_waf=_bool(config, "useWaf"),
            alert_email=config.get("alertEmail") or "",
            monthly_budget_usd=_int(config, "monthlyBudgetUsd", 0),
            log_retention_days=_int(config, "logRetentionDays", 30),
            vpc_cidr=config.get("vpcCidr") or "10.0.0.0/16",
            db_name=config.get("dbName") or "app",
            db_username=config.get("dbUsername") or "app",
            db_app_username=config.get("dbAppUsername") or "app_login",
            db_instance_class=config.get("dbInstanceClass") or "db.t4g.micro",
            db_allocated_storage_gb=_int(config, "dbAllocatedStorageGb", 20),
            db_max_allocated_storage_gb=_int(config, "dbMaxAllocatedStorageGb", 100),
            # A standby in a second AZ: production outlives an AZ outage; dev need not.
            db_multi_az=_auto(config, "dbMultiAz", stack),
            db_backup_retention_days=_int(config, "dbBackupRetentionDays", 7),
            backup_retention_days=_int(config, "backupRetentionDays", 35),
            dr_region=config.get("drRegion") or "",
            dr_backup_retention_days=_int(config, "drBackupRetentionDays", 35),
            dns_routing=config.get("dnsRouting") or "simple",
            postgres_image=config.get("postgresImage")
            or "public.ecr.aws/docker/library/postgres:16",
            # Only the dev stack may be destroyed in one command; every other stack keeps its data.
            deletion_protection=_auto(config, "deletionProtection", stack),
            vpc_flow_logs=_auto(config, "vpcFlowLogs", stack),
            alb_access_logs=_auto(config, "albAccessLogs", stack),
            github_repository=config.get("githubRepository") or f"example/{slug}",
            deploy_environment=config.get("deployEnvironment") or stack,
            github_oidc_provider_arn=config.get("githubOidcProviderArn") or "",
            state_bucket_name=config.get("stateBucketName") or "",
            secrets_kms_key_arn=config.get("secretsKmsKeyArn") or "",
{%- if cookiecutter.feature_flags == "unleash" %}
            unleash_url=config.get("unleashUrl") or "",
            unleash_environment=config.get("unleashEnvironment") or "production",
{%- endif %}
{%- if cookiecutter.cache == "redis" %}
            cache_node_type=config.get("cacheNodeType") or "",
            cache_max_data_gb=_int(config, "cacheMaxDataGb", 1),
            cache_max_ecpu_per_second=_int(config, "cacheMaxEcpuPerSecond", 5000),
{%- endif %}
{%- if cookiecutter.monitoring == "prometheus_grafana" %}
            grafana_allowed_cidrs=tuple(config.get_object("grafanaAllowedCidrs") or ()),
{%- endif %}
{%- if cookiecutter.auth == "jwt" %}
            auth_issuer=config.get("authIssuer") or "",
            auth_audience=_string_list(config, "authAudience"),
            auth_scope_prefix=config.get("authScopePrefix") or "",
            auth_jwks_url=config.get("authJwksUrl") or "",
            auth_token_url=config.get("authTokenUrl") or "",
            auth_domain_prefix=config.get("authDomainPrefix") or "",
{%- endif %}
{%- if cookiecutter.internal_packages %}
            codeartifact_create=_bool(config, "codeartifactCreate"),
            codeartifact_domain_name=config.get("codeartifactDomain") or "",
            codeartifact_repository=config.get("codeartifactRepository") or "internal",
            codeartifact_domain_owner=config.get("codeartifactDomainOwner") or "",
{%- endif %}
        )
    )
