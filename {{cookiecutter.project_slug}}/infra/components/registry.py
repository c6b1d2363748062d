"""ECR repositories: one per image the stack runs (the app, plus monitoring images when enabled)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.naming import type_token

# Deploys tag images with the git SHA; keeping the last 30 leaves room to roll back
# without paying for every image ever built.
KEEP_IMAGES = 30
UNTAGGED_EXPIRY_DAYS = 7

LIFECYCLE_POLICY = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "description": "Drop untagged layers left by re-pushes",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": UNTAGGED_EXPIRY_DAYS,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "description": f"Keep the last {KEEP_IMAGES} images",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": KEEP_IMAGES,
                },
                "action": {"type": "expire"},
            },
        ]
    }
)


@dataclass
class RegistryArgs:
    image_names: Sequence[str]  # one repository each, e.g. "app"
    # A disposable stack (no deletion protection) deletes its repositories with their images.
    force_delete: bool = False


class Registry(pulumi.ComponentResource):
    """Immutable tags (a SHA always names the same image), scan on push, lifecycle policy."""

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("Registry"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.repositories: dict[str, aws.ecr.Repository] = {}
        for image in args.image_names:
            repository = aws.ecr.Repository(
                f"{name}-{image}",
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration={"scan_on_push": True},
                encryption_configurations=[{"encryption_type": "AES256"}],
                force_delete=args.force_delete,
                opts=child,
            )
            aws.ecr.LifecyclePolicy(
                f"{name}-{image}",
                repository=repository.name,
                policy=LIFECYCLE_POLICY,
                opts=child,
            )
            self.repositories[image] = repository
        self.repository_urls = {image: r.repository_url for image, r in self.repositories.items()}
        self.register_outputs({"repository_urls": self.repository_urls})

    def image(self, name: str, tag: pulumi.Input[str]) -> pulumi.Output[str]:
        return pulumi.Output.concat(self.repositories[name].repository_url, ":", tag)
