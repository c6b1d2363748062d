"""Issue 13's hardening, for every variant: what the ALB refuses, the read-only app, and the
safeguards that are on in every stack but a disposable one (flow logs, ALB access logs and
deletion protection, WAF logging, ECR force_delete, the EFS file-system policy)."""

from __future__ import annotations

import fnmatch

from deployment import Deployment, Resource
from policy_helpers import LISTENER, LISTENER_RULE, LOAD_BALANCER, TASK_DEFINITION, containers
from stack_config import DISPOSABLE_STACKS


def on(variant: Deployment, key: str) -> bool:
    value = str(variant.cfg(key)).lower()
    return variant.stack not in DISPOSABLE_STACKS if value == "auto" else value == "true"


def serving_listener(variant: Deployment) -> Resource:
    """The HTTPS listener with a domain, else the HTTP one (the other only redirects)."""
    listeners = variant.of_type(LISTENER)
    return next(x for x in listeners if x.get("port") == (443 if len(listeners) > 1 else 80))


def route(
    variant: Deployment, listener: Resource, path: str, headers: dict[str, str] | None = None
) -> dict:
    """The action the ALB takes for `path` (and `headers`): rules by priority, each matching when
    all its conditions do (path patterns are case-sensitive globs, header names are not case
    sensitive), then the listener's default action."""
    sent = {name.lower() for name in headers or {}}
    arn = listener.state["arn"]
    rules = [r for r in variant.of_type(LISTENER_RULE) if r.get("listenerArn") == arn]
    assert rules, f"no rules on {listener.name}"

    def matches(condition: dict) -> bool:
        if "httpHeader" in condition:  # every test-route value is "*": presence is enough
            return condition["httpHeader"]["httpHeaderName"].lower() in sent
        patterns = condition["pathPattern"]["values"]
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)

    for rule in sorted(rules, key=lambda r: r.get("priority")):
        if all(matches(condition) for condition in rule.get("conditions")):
            return rule.get("actions")[0]
    return listener.get("defaultActions")[0]


def test_metrics_are_refused_at_the_alb_and_the_api_still_routes(variant: Deployment):
    listener = serving_listener(variant)
    for path in ("/metrics", "/metrics/", "/metrics/anything"):
        action = route(variant, listener, path)
        assert action["type"] == "fixed-response", f"{path} reaches {action}"
        assert action["fixedResponse"]["statusCode"] == "404"
    for path in ("/", "/health", "/items/1", "/docs", "/metricsx"):
        assert route(variant, listener, path)["type"] == "forward", path


def test_app_containers_run_read_only_with_a_scratch_tmp(variant: Deployment):
    app_definitions = [d for d in variant.of_type(TASK_DEFINITION) if "-app-" in d.name]
    assert len(app_definitions) == 2, "the app and the migration task"
    for definition in app_definitions:
        volumes = {v["name"] for v in definition.get("volumes") or []}
        for container in containers(definition):
            assert container["readonlyRootFilesystem"] is True, definition.name
            mounts = {m["containerPath"]: m["sourceVolume"] for m in container["mountPoints"]}
            assert mounts.get("/tmp") in volumes, definition.name


def test_vpc_flow_logs_follow_the_option(variant: Deployment):
    logs = variant.of_type("aws:ec2/flowLog:FlowLog")
    if not on(variant, "vpcFlowLogs"):
        assert not logs
        return
    (flow_log,) = logs
    (vpc,) = variant.of_type("aws:ec2/vpc:Vpc")
    assert flow_log.get("vpcId") == vpc.id
    assert flow_log.get("trafficType") == "ALL"
    assert flow_log.get("logDestinationType") == "cloud-watch-logs"


def test_alb_deletion_protection_and_access_logs_follow_the_options(variant: Deployment):
    (alb,) = variant.of_type(LOAD_BALANCER)
    assert alb.get("enableDeletionProtection") is on(variant, "deletionProtection")
    buckets = variant.of_type("aws:s3/bucket:Bucket")
    if not on(variant, "albAccessLogs"):
        assert not alb.get("accessLogs") and not buckets
        return
    (bucket,) = buckets
    assert alb.get("accessLogs") == {"bucket": bucket.id, "enabled": True}
    (block,) = variant.of_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(
        block.get(key) is True
        for key in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
    )
    (encryption,) = variant.of_type(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    (rule,) = encryption.get("rules")
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    (policy,) = variant.of_type("aws:s3/bucketPolicy:BucketPolicy")
    statements = policy.json("policy")["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )
    assert bucket.get("forceDestroy") is not on(variant, "deletionProtection")


def test_waf_logs_with_credentials_redacted(variant: Deployment):
    configs = variant.of_type("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration")
    if not variant.cfg("useWaf"):
        assert not configs
        return
    (config,) = configs
    (destination,) = config.get("logDestinationConfigs")
    groups = {g.state["arn"]: g for g in variant.of_type("aws:cloudwatch/logGroup:LogGroup")}
    assert groups[destination].get("name").startswith("aws-waf-logs-")
    redacted = {field["singleHeader"]["name"] for field in config.get("redactedFields")}
    assert redacted == {"authorization", "cookie"}


def test_only_disposable_stacks_delete_repositories_with_their_images(variant: Deployment):
    for repository in variant.of_type("aws:ecr/repository:Repository"):
        assert repository.get("forceDelete") is not on(variant, "deletionProtection")


def test_every_efs_file_system_refuses_clients_without_tls_or_iam(variant: Deployment):
    policies = {
        p.get("fileSystemId"): p.json("policy")
        for p in variant.of_type("aws:efs/fileSystemPolicy:FileSystemPolicy")
    }
    for file_system in variant.of_type("aws:efs/fileSystem:FileSystem"):
        statements = policies[file_system.id]["Statement"]
        assert any(
            s["Effect"] == "Deny"
            and s["Action"] == "*"
            and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )
        for statement in statements:
            if statement["Effect"] == "Allow":
                assert statement["Principal"] != "*" and statement["Principal"]["AWS"] != "*"
                assert statement["Principal"]["AWS"].endswith(":root")
