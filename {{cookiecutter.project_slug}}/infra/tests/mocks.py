"""Pulumi mocks for the infra tests: realistic provider-computed outputs, answered lookups (each
call recorded), and a monitor that records every registered resource with its parent and
explicit dependencies."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.runtime.mocks import MockMonitor

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]
HOSTED_ZONE_ID = "Z0123456789MOCKZONE"
# What the mocked Secrets Manager GetRandomPassword returns: the tests assert it appears in no
# resource but the SecretVersion that stores it, and in no stack output.
RANDOM_PASSWORD = "MockRandomPassword0123456789abcd"
AUTONAME_SUFFIX = "-0a1b2c3"
# The tag the stack exported on its previous update (what its own StackReference reads back);
# a stack named NEVER_DEPLOYED_STACK has no previous update, hence no outputs.
RUNNING_IMAGE_TAG = "running0123"
NEVER_DEPLOYED_STACK = "fresh"
ELB_ACCOUNT_ARN = "arn:aws:iam::127311923021:root"  # us-east-1's ELB log-delivery account
RDS_RESOURCE_ID = "db-ABCDEFGHIJKLMNOPQRSTUVWXY0"
RDS_SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:rds!db-mock-AbCdEf"
{%- if cookiecutter.auth == "jwt" %}
# What Cognito generates as the M2M app client's secret: the tests assert it appears only in the
# SecretVersion that stores it.
COGNITO_CLIENT_SECRET = "MockCognitoClientSecret0123456789abcdefghijklmnop"
{%- endif %}


def _service(type_token: str) -> str:
    return type_token.split(":")[1].split("/")[0]


def _arn(type_token: str, name: str) -> str:
    service = _service(type_token)
    kind = type_token.split(":")[-1].lower()
    if service == "iam":
        return f"arn:aws:iam::{ACCOUNT_ID}:{kind}/{name}"
    return f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:{kind}/{name}"


def _computed(type_token: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs AWS computes for a resource of `type_token`, in the provider's camelCase."""
    physical = inputs.get("name") or f"{name}{AUTONAME_SUFFIX}"
    arn = _arn(type_token, physical)
    state: dict[str, Any] = {"arn": arn, "name": physical}
    if type_token == "aws:lb/loadBalancer:LoadBalancer":
        state |= {
            "arnSuffix": f"app/{physical}/50dc6c495c0c9188",
            "dnsName": f"{physical}-1234567890.{REGION}.elb.amazonaws.com",
            "zoneId": "Z35SXDOTRQ7X7K",
        }
    elif type_token == "aws:lb/targetGroup:TargetGroup":
        state["arnSuffix"] = f"targetgroup/{physical}/73e2d6bc24d8a067"
    elif type_token == "aws:ecr/repository:Repository":
        state["repositoryUrl"] = f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/{physical}"
    elif type_token == "aws:ecs/service:Service":
        cluster = str(inputs.get("cluster", "")).split("/")[-1]
        state["arn"] = f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:service/{cluster}/{physical}"
    elif type_token == "aws:ecs/cluster:Cluster":
        state["arn"] = f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:cluster/{physical}"
    elif type_token == "aws:ecs/taskDefinition:TaskDefinition":
        family = inputs.get("family", physical)
        state |= {
            "revision": 1,
            "arn": f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:task-definition/{family}:1",
            "arnWithoutRevision": f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:task-definition/{family}",
        }
    elif type_token == "aws:rds/instance:Instance":
        address = f"{physical}.abcdefghijkl.{REGION}.rds.amazonaws.com"
        secret = RDS_SECRET_ARN
        state |= {
            "address": address,
            "endpoint": f"{address}:5432",
            "identifier": physical,
            "resourceId": RDS_RESOURCE_ID,
            "masterUserSecrets": [
                {
                    "secretArn": secret,
                    "secretStatus": "active",
                    "kmsKeyId": "alias/aws/secretsmanager",
                }
            ],
        }
    elif type_token == "aws:acm/certificate:Certificate":
        domain = inputs["domainName"]
        state["domainValidationOptions"] = [
            {
                "domainName": domain,
                "resourceRecordName": f"_x1.{domain}.",
                "resourceRecordType": "CNAME",
                "resourceRecordValue": "_x2.acm-validations.aws.",
            }
        ]
    elif type_token == "aws:acm/certificateValidation:CertificateValidation":
        state["certificateArn"] = inputs["certificateArn"]
    elif type_token == "aws:route53/record:Record":
        state["fqdn"] = inputs["name"]
    elif type_token == "aws:sns/topic:Topic":
        state["arn"] = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{physical}"
{%- if cookiecutter.auth == "jwt" %}
    elif type_token == "aws:cognito/userPoolClient:UserPoolClient":
        state["clientSecret"] = COGNITO_CLIENT_SECRET
{%- endif %}
{%- if cookiecutter.cache == "redis" %}
    elif type_token == "aws:elasticache/serverlessCache:ServerlessCache":
        address = f"{physical}-abc123.serverless.use1.cache.amazonaws.com"
        state["endpoints"] = [{"address": address, "port": 6379}]
    elif type_token == "aws:elasticache/replicationGroup:ReplicationGroup":
        state |= {
            "primaryEndpointAddress": f"master.{physical}.abc123.use1.cache.amazonaws.com",
            "memberClusters": [f"{physical}-002", f"{physical}-001"],
        }
{%- endif %}
    return state


class InfraMocks(pulumi.runtime.Mocks):
    """Resources echo their inputs plus computed outputs; lookups answer like us-east-1."""

    def __init__(self) -> None:
        self.inputs: dict[tuple[str, str], dict[str, Any]] = {}
        self.states: dict[tuple[str, str], dict[str, Any]] = {}
        # Every data source (invoke) the program called: {"token", "args", "result"}.
        self.calls: list[dict[str, Any]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.inputs[(args.typ, args.name)] = args.inputs
        resource_id = f"{args.typ.split(':')[-1].lower()}-{args.name}"
        if args.typ == "pulumi:pulumi:StackReference":  # a read: `custom` is unset
            fresh = str(args.inputs.get("name", "")).endswith(f"/{NEVER_DEPLOYED_STACK}")
            outputs = {} if fresh else {"image_tag": RUNNING_IMAGE_TAG}
            return args.name, {**args.inputs, "outputs": outputs, "secretOutputNames": []}
        if not args.custom:
            return resource_id, {}
        state = {**args.inputs, **_computed(args.typ, args.name, args.inputs)}
        self.states[(args.typ, args.name)] = state
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs):
        result = self._answer(args)
        self.calls.append({"token": args.token, "args": dict(args.args), "result": result})
        return result

    def _answer(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        token = args.token
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {"id": REGION, "names": ZONES, "zoneIds": ["use1-az1", "use1-az2", "use1-az4"]}
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "id": ACCOUNT_ID,
                "accountId": ACCOUNT_ID,
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/mock",
                "userId": "AIDAMOCK",
            }
        if token == "aws:index/getRegion:getRegion":
            return {"id": REGION, "name": REGION, "region": REGION, "description": "US East"}
        if token == "aws:index/getPartition:getPartition":
            return {"id": "aws", "partition": "aws", "dnsSuffix": "amazonaws.com"}
        if token == "aws:route53/getZone:getZone":
            return {"id": HOSTED_ZONE_ID, "zoneId": HOSTED_ZONE_ID, "name": args.args["name"]}
        if token == "aws:elb/getServiceAccount:getServiceAccount":
            return {"id": ELB_ACCOUNT_ARN.split(":")[4], "arn": ELB_ACCOUNT_ARN}
        if token == "aws:secretsmanager/getRandomPassword:getRandomPassword":
            return {"id": "mock", "randomPassword": RANDOM_PASSWORD}
        raise NotImplementedError(f"the infra mocks do not answer {token}; add it to mocks.py")


class RecordingMonitor(MockMonitor):
    """Also remembers each resource's parent, explicit dependencies and `protect` option, which
    mocks never see."""

    def __init__(self, mocks: InfraMocks) -> None:
        super().__init__(mocks)
        self.registrations: list[dict[str, Any]] = []
        self.component_outputs: dict[str, list[str]] = {}

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(
                {
                    "urn": response.urn,
                    "type": request.type,
                    "name": request.name,
                    "custom": bool(request.custom),
                    "parent": request.parent,
                    "dependencies": sorted(request.dependencies),
                    "protect": bool(request.protect),
                    "id": response.id,
                }
            )
        return response

    def RegisterResourceOutputs(self, request):
        self.component_outputs[request.urn] = sorted(request.outputs.fields.keys())
        return super().RegisterResourceOutputs(request)
