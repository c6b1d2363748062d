"""Registry and cluster components."""

from __future__ import annotations

import json

REPOSITORY = "aws:ecr/repository:Repository"


def test_repositories_scan_on_push_with_immutable_tags_and_lifecycle(default):
    repositories = default.of_type(REPOSITORY)
    assert repositories
    for repository in repositories:
        assert repository.get("imageScanningConfiguration") == {"scanOnPush": True}
        assert repository.get("imageTagMutability") == "IMMUTABLE"
    policies = default.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    assert len(policies) == len(repositories)
    for policy in policies:
        assert json.loads(policy.get("policy"))["rules"]
    assert default.outputs["ecr_repository_url"] == default.outputs["ecr_repository_urls"]["app"]


def test_cluster_has_container_insights_and_cloud_map(default):
    cluster = default.one("aws:ecs/cluster:Cluster")
    assert {"name": "containerInsights", "value": "enabled"} in cluster.get("settings")
    namespace = default.one("aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace")
    assert namespace.get("name") == f"{default.resources[0].urn.split('::')[1]}.internal"


def test_capacity_providers_follow_the_spot_option(recorder):
    spot = recorder.get({"useFargateSpot": True})
    providers = spot.one("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders")
    assert providers.get("capacityProviders") == ["FARGATE", "FARGATE_SPOT"]
    plain = recorder.get({"useFargateSpot": False})
    providers = plain.one("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders")
    assert providers.get("capacityProviders") == ["FARGATE"]


def test_every_log_group_keeps_logs_for_the_configured_days(recorder):
    deployment = recorder.get({"logRetentionDays": 14})
    for group in deployment.of_type("aws:cloudwatch/logGroup:LogGroup"):
        assert group.get("retentionInDays") == 14
