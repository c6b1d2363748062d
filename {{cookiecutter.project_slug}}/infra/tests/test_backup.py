"""Disaster recovery: AWS Backup of the database, copies to drRegion, image replication, and two
stacks of the program in two regions side by side."""

from __future__ import annotations

from deployment import Deployment
from mocks import AUTONAME_SUFFIX

VAULT = "aws:backup/vault:Vault"
PLAN = "aws:backup/plan:Plan"
SELECTION = "aws:backup/selection:Selection"
KEY = "aws:kms/key:Key"
REPLICATION = "aws:ecr/replicationConfiguration:ReplicationConfiguration"
PROVIDER = "pulumi:providers:aws"
# Names that are global to an account (IAM, S3) or to a hosted zone (Route 53 records).
GLOBAL_TYPES = (
    "aws:iam/role:Role",
    "aws:iam/policy:Policy",
    "aws:iam/user:User",
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
    "aws:s3/bucket:Bucket",
    "aws:s3/bucketV2:BucketV2",
    "aws:route53/record:Record",
)


def database_arn(deployment: Deployment) -> str:
    for token in ("aws:rds/instance:Instance", "aws:efs/fileSystem:FileSystem"):
        if found := deployment.of_type(token):
            return found[0].state["arn"]
    raise AssertionError("no database resource")


def test_the_database_is_backed_up_daily_into_an_encrypted_vault(recorder):
    deployment = recorder.get({"backupRetentionDays": 21})
    (vault,) = deployment.of_type(VAULT)
    keys = {k.state["arn"]: k for k in deployment.of_type(KEY)}
    assert keys[vault.get("kmsKeyArn")].get("enableKeyRotation") is True
    (plan,) = deployment.of_type(PLAN)
    (rule,) = plan.get("rules")
    assert rule["schedule"] == "cron(0 5 * * ? *)"
    assert rule["targetVaultName"] == vault.state["name"]
    assert rule["lifecycle"]["deleteAfter"] == 21
    assert not rule.get("copyActions")
    (selection,) = deployment.of_type(SELECTION)
    assert selection.get("resources") == [database_arn(deployment)]
    role = next(
        r
        for r in deployment.of_type("aws:iam/role:Role")
        if r.state["arn"] == selection.get("iamRoleArn")
    )
    assert role.json("assumeRolePolicy")["Statement"][0]["Principal"] == {
        "Service": "backup.amazonaws.com"
    }
    attached = {
        a.get("policyArn")
        for a in deployment.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if a.get("role") == role.state["name"]
    }
    assert attached == {
        "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup",
        "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores",
    }
    assert not deployment.of_type(REPLICATION)


def test_a_dr_region_gets_a_copy_of_every_backup_and_the_images(recorder):
    deployment = recorder.get({"drRegion": "us-west-2", "drBackupRetentionDays": 90})
    vaults = {v.name: v for v in deployment.of_type(VAULT)}
    dr_vault = next(v for name, v in vaults.items() if "-dr-vault" in name)
    (plan,) = deployment.of_type(PLAN)
    (rule,) = plan.get("rules")
    assert rule["copyActions"] == [
        {"destinationVaultArn": dr_vault.state["arn"], "lifecycle": {"deleteAfter": 90}}
    ]
    assert any(p.get("region") == "us-west-2" for p in deployment.of_type(PROVIDER))
    assert len(deployment.of_type(KEY)) >= 2, "each vault has a key in its own region"
    (replication,) = deployment.of_type(REPLICATION)
    (rule,) = replication.get("replicationConfiguration")["rules"]
    assert [d["region"] for d in rule["destinations"]] == ["us-west-2"]
    (repository_filter,) = rule["repositoryFilters"]
    repositories = [r.state["name"] for r in deployment.of_type("aws:ecr/repository:Repository")]
    assert repositories and all(n.startswith(repository_filter["filter"]) for n in repositories)


def explicit_global_names(deployment: Deployment) -> set[tuple[str, str]]:
    """Physical names the program sets itself (auto-names get a random suffix in AWS), except
    records meant to be shared (allowOverwrite: ACM's validation record is the same for a
    domain's certificates in every region)."""
    found = set()
    for resource in deployment.resources:
        if resource.type in GLOBAL_TYPES and not resource.get("allowOverwrite"):
            name = str(resource.state.get("name") or resource.state.get("bucket") or "")
            if name and not name.endswith(AUTONAME_SUFFIX):
                zone = str(resource.state.get("zoneId", ""))
                identifier = str(resource.get("setIdentifier") or "")
                found.add((resource.type, f"{zone}/{name}/{identifier}"))
    return found


def two_regions(routing: str) -> list[tuple[dict, str]]:
    common = {"domainName": "api.example.com", "dnsRouting": routing}
    return [
        ({**common, "aws:region": "us-east-1", "drRegion": "us-west-2"}, "prod-east"),
        ({**common, "aws:region": "us-west-2", "drRegion": "us-east-1"}, "prod-west"),
    ]


def test_one_domain_in_two_regions_needs_latency_routing(recorder):
    east, west = (recorder.get(config, stack=stack) for config, stack in two_regions("simple"))
    collisions = explicit_global_names(east) & explicit_global_names(west)
    assert {kind for kind, _ in collisions} == {"aws:route53/record:Record"}


def test_two_regions_run_side_by_side_without_global_name_collisions(recorder):
    east, west = (recorder.get(config, stack=stack) for config, stack in two_regions("latency"))
    assert east.outputs["aws_region"] == "us-east-1"
    assert west.outputs["aws_region"] == "us-west-2"
    collisions = explicit_global_names(east) & explicit_global_names(west)
    assert not collisions, f"both regions' stacks would create {sorted(collisions)}"
