"""Every AWS API call a deploy makes with the deploy role (ci_access.py), and the provider or
workflow behaviour that makes it. The infra tests evaluate each call against the role's policy
for every variant (tests/test_deploy_api_calls.py), so a permission the deploy needs but the
role lacks fails there, not in a team's first deploy.

`source` says when a row applies:
* `update:<type>`: each resource of that type that a deploy replaces or updates (the tests find
  them by changing `imageTag` and following dependencies);
* `invoke:<token>`: each call of that data source; data sources run on every `pulumi up`, even
  with `--target`;
* `workflow:<type>`: each resource of that type that deploy.yml's AWS CLI steps act on
  (`workflow:migration` is the migration task definition alone; `workflow:service_names` each
  service named by that stack output, as {service}; `workflow:staged_service` the app's service,
  as {service}, when deploymentStrategy is blue_green or canary{% if cookiecutter.auth == "jwt" %};
  `workflow:auth_client_secret` the Cognito client's secret, when the stack exports its ARN{% endif %});
* `backend:state` / `backend:kms`: the S3 state backend and KMS secrets provider, when the stack
  config names them (stateBucketName, secretsKmsKeyArn).

Placeholders in `resource` and `context`: {region}, {account}, {output.<name>} (stack outputs),
{config.<key>}, and {state.<key>} (the resource's inputs and computed outputs, e.g. arn) or
{result.<key>} (the data source's result). `action=None` records a source that needs no
permission, so that every data source is accounted for.
{%- if cookiecutter.internal_packages %}

PACKAGE_API_CALLS does the same for the CodeArtifact index (packages.py): `packages:read` rows
are what every job that installs from it calls (CI's `uv sync` with the read role, the image build
with the push role), `packages:publish` rows what packages.yml's `uv publish` adds with the
publish role. Their placeholders are the stack outputs the workflows pass on as repository
variables, {region} and {project}.
{%- endif %}
"""

from __future__ import annotations

from dataclasses import dataclass, field

TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
SERVICE = "aws:ecs/service:Service"
ECS_TASKS = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}


@dataclass(frozen=True)
class ApiCall:
    source: str
    action: str | None
    resource: str = "*"
    context: dict[str, str] = field(default_factory=dict)
    because: str = ""


DEPLOY_API_CALLS: list[ApiCall] = [
    # --- data sources: every `pulumi up` / `preview` runs them --------------------------------
    ApiCall(
        "invoke:aws:index/getCallerIdentity:getCallerIdentity",
        None,
        because="sts:GetCallerIdentity needs no permission",
    ),
    ApiCall("invoke:aws:index/getRegion:getRegion", None, because="read from the provider config"),
    ApiCall(
        "invoke:aws:index/getPartition:getPartition", None, because="read from the provider config"
    ),
    ApiCall(
        "invoke:aws:elb/getServiceAccount:getServiceAccount",
        None,
        because="a table of regional ELB accounts inside the provider",
    ),
    ApiCall(
        "invoke:aws:index/getAvailabilityZones:getAvailabilityZones",
        "ec2:DescribeAvailabilityZones",
        because="network.py picks the first two available zones",
    ),
    ApiCall(
        "invoke:aws:route53/getZone:getZone",
        "route53:ListHostedZones",
        because="the zone data source finds the zone by name",
    ),
    ApiCall(
        "invoke:aws:route53/getZone:getZone",
        "route53:GetHostedZone",
        "arn:aws:route53:::hostedzone/{result.zoneId}",
        because="the data source then reads the zone (name servers, record count)",
    ),
    ApiCall(
        "invoke:aws:route53/getZone:getZone",
        "route53:ListTagsForResource",
        "arn:aws:route53:::hostedzone/{result.zoneId}",
        because="the data source also returns the zone's tags",
    ),
    ApiCall(
        "invoke:aws:secretsmanager/getRandomPassword:getRandomPassword",
        "secretsmanager:GetRandomPassword",
        because="generated passwords are drawn on every run (and ignored after the first)",
    ),
    # --- what the image change replaces or updates --------------------------------------------
    ApiCall(
        f"update:{TASK_DEFINITION}",
        "ecs:RegisterTaskDefinition",
        "{state.arn}",
        because="task definitions are immutable: a new image is a new revision",
    ),
    ApiCall(
        f"update:{TASK_DEFINITION}",
        "ecs:TagResource",
        "{state.arn}",
        {"ecs:CreateAction": "RegisterTaskDefinition"},
        because="aws:defaultTags (Pulumi.yaml) are sent with the registration; ECS then "
        "authorises ecs:TagResource for the tags on create",
    ),
    ApiCall(
        f"update:{TASK_DEFINITION}",
        "iam:PassRole",
        "{state.executionRoleArn}",
        ECS_TASKS,
        because="registration passes the execution role to ECS",
    ),
    ApiCall(
        f"update:{TASK_DEFINITION}",
        "iam:PassRole",
        "{state.taskRoleArn}",
        ECS_TASKS,
        because="registration passes the task role to ECS",
    ),
    ApiCall(
        f"update:{TASK_DEFINITION}",
        "ecs:DescribeTaskDefinition",
        "{state.arn}",
        because="the provider reads the new revision (with its tags) back",
    ),
    ApiCall(
        f"update:{TASK_DEFINITION}",
        "ecs:DeregisterTaskDefinition",
        "{state.arn}",
        because="the replaced revision is deleted (deregistered) after the new one exists",
    ),
    ApiCall(
        f"update:{SERVICE}",
        "ecs:UpdateService",
        "{state.arn}",
        because="the service moves to the new task definition revision",
    ),
    ApiCall(
        f"update:{SERVICE}",
        "ecs:DescribeServices",
        "{state.arn}",
        because="the provider reads the service back after the update",
    ),
    # --- deploy.yml's own AWS CLI calls -----------------------------------------------------
    ApiCall(
        "workflow:aws:ecr/repository:Repository",
        "ecr:DescribeImages",
        "{state.arn}",
        because="'Require the images in ECR' checks the tag in every repository",
    ),
    ApiCall(
        "workflow:migration",
        "ecs:RunTask",
        "{output.migration_task_definition_arn}",
        {"ecs:cluster": "{output.cluster_arn}"},
        because="'Run the migrations' starts the migration task in the stack's cluster",
    ),
    ApiCall(
        "workflow:migration",
        "iam:PassRole",
        "{state.executionRoleArn}",
        ECS_TASKS,
        because="RunTask passes the task definition's execution role",
    ),
    ApiCall(
        "workflow:migration",
        "iam:PassRole",
        "{state.taskRoleArn}",
        ECS_TASKS,
        because="RunTask passes the task definition's task role",
    ),
    ApiCall(
        "workflow:aws:ecs/cluster:Cluster",
        "ecs:DescribeTasks",
        "arn:aws:ecs:{region}:{account}:task/{state.name}/0123456789abcdef0123456789abcdef",
        because="`aws ecs wait tasks-stopped` and the exit-code check describe the task",
    ),
    ApiCall(
        "workflow:staged_service",
        "ecs:ListServiceDeployments",
        "arn:aws:ecs:{region}:{account}:service/{output.cluster_name}/{service}",
        because="'Follow the deployment' finds the deployment the update started",
    ),
    ApiCall(
        "workflow:staged_service",
        "ecs:DescribeServiceDeployments",
        "arn:aws:ecs:{region}:{account}:service-deployment/{output.cluster_name}/{service}/"
        "AbCdEfGh0123456789",
        because="'Follow the deployment' polls its stage and outcome",
    ),
    ApiCall(
        "workflow:staged_service",
        "ecs:StopServiceDeployment",
        "arn:aws:ecs:{region}:{account}:service-deployment/{output.cluster_name}/{service}/"
        "AbCdEfGh0123456789",
        because="a failed smoke test through the test header rolls the deployment back",
    ),
    ApiCall(
        "workflow:service_names",
        "ecs:DescribeServices",
        "arn:aws:ecs:{region}:{account}:service/{output.cluster_name}/{service}",
        because="`aws ecs wait services-stable` and the image check, for each of service_names",
    ),
    ApiCall(
        f"workflow:{TASK_DEFINITION}",
        "ecs:DescribeTaskDefinition",
        "{state.arn}",
        because="the image check reads the primary deployment's task definition",
    ),
{%- if cookiecutter.auth == "jwt" %}
    ApiCall(
        "workflow:auth_client_secret",
        "secretsmanager:GetSecretValue",
        "{output.auth_client_secret_arn}",
        because="the tests of the deployed stack get a token with the M2M client's credentials",
    ),
{%- endif %}
    # --- the state backend (every pulumi command) ---------------------------------------------
    ApiCall(
        "backend:state",
        "s3:ListBucket",
        "arn:aws:s3:::{config.stateBucketName}",
        because="the S3 backend lists the stack's files",
    ),
    ApiCall(
        "backend:state",
        "s3:GetObject",
        "arn:aws:s3:::{config.stateBucketName}/.pulumi/stacks/{project}/{stack}.json",
        because="reading the checkpoint (and the program's own StackReference: image_tag)",
    ),
    ApiCall(
        "backend:state",
        "s3:PutObject",
        "arn:aws:s3:::{config.stateBucketName}/.pulumi/stacks/{project}/{stack}.json",
        because="writing the checkpoint",
    ),
    ApiCall(
        "backend:state",
        "s3:DeleteObject",
        "arn:aws:s3:::{config.stateBucketName}/.pulumi/locks/{project}/{stack}/lock.json",
        because="releasing the update lock",
    ),
    ApiCall(
        "backend:kms",
        "kms:Decrypt",
        "{config.secretsKmsKeyArn}",
        because="the awskms secrets provider decrypts the stack's data key",
    ),
    ApiCall(
        "backend:kms",
        "kms:Encrypt",
        "{config.secretsKmsKeyArn}",
        because="config set (imageTag) re-encrypts with the stack's secrets provider",
    ),
    ApiCall(
        "backend:kms",
        "kms:GenerateDataKey",
        "{config.secretsKmsKeyArn}",
        because="a new data key when the stack has none yet",
    ),
]
{%- if cookiecutter.internal_packages %}

CODEARTIFACT = "arn:aws:codeartifact:{region}:{output.codeartifact_domain_owner}"
INDEX = "{output.codeartifact_domain}/{output.codeartifact_repository}"
PACKAGE_API_CALLS: list[ApiCall] = [
    ApiCall(
        "packages:read",
        "codeartifact:GetAuthorizationToken",
        CODEARTIFACT + ":domain/{output.codeartifact_domain}",
        because="`aws codeartifact get-authorization-token --domain ... --domain-owner ...`",
    ),
    ApiCall(
        "packages:read",
        "sts:GetServiceBearerToken",
        "*",
        {"sts:AWSServiceName": "codeartifact.amazonaws.com"},
        because="GetAuthorizationToken obtains the token from STS as the caller",
    ),
    ApiCall(
        "packages:read",
        "codeartifact:GetRepositoryEndpoint",
        CODEARTIFACT + ":repository/" + INDEX,
        because="`aws codeartifact get-repository-endpoint --format pypi`: the index URL",
    ),
    ApiCall(
        "packages:read",
        "codeartifact:ReadFromRepository",
        CODEARTIFACT + ":repository/" + INDEX,
        because="uv reads the simple index and downloads files (public ones through the "
        "repository's public:pypi connection)",
    ),
    ApiCall(
        "packages:publish",
        "codeartifact:PublishPackageVersion",
        CODEARTIFACT + ":package/" + INDEX + "/pypi//{project}-client",
        because="`uv publish` uploads the client's wheel and sdist (twine's upload API); PyPI "
        "packages have no namespace, hence the empty segment",
    ),
]
{%- endif %}
