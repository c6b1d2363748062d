"""Optional WAF on the ALB: AWS managed rule groups plus a per-IP rate limit, logged to
CloudWatch Logs (credentials and cookies redacted)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.naming import type_token

MANAGED_RULE_GROUPS = (
    "AWSManagedRulesAmazonIpReputationList",
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
)
# Requests per IP per 5 minutes before WAF blocks; generous for an API, stops a single flooder.
RATE_LIMIT = 2000
# WAF only logs to log groups whose name starts with this.
WAF_LOG_GROUP_PREFIX = "aws-waf-logs-"
REDACTED_HEADERS = ("authorization", "cookie")


@dataclass
class WafArgs:
    load_balancer_arn: pulumi.Input[str]
    log_retention_days: int = 30


def _visibility(metric: str) -> dict:
    return {
        "cloudwatch_metrics_enabled": True,
        "metric_name": metric,
        "sampled_requests_enabled": True,
    }


class Waf(pulumi.ComponentResource):
    """Managed groups block what they match, except the body-size rule (see below), which counts."""

    def __init__(self, name: str, args: WafArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("Waf"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        rules = []
        for priority, group in enumerate(MANAGED_RULE_GROUPS):
            statement: dict = {"name": group, "vendor_name": "AWS"}
            if group == "AWSManagedRulesCommonRuleSet":
                # Bodies over the rule's 8 KB are counted, not blocked: the services behind the
                # ALB set their own limits, and legitimate uploads (dashboards) exceed 8 KB.
                statement["rule_action_overrides"] = [
                    {"name": "SizeRestrictions_BODY", "action_to_use": {"count": {}}}
                ]
            rules.append(
                {
                    "name": group,
                    "priority": priority,
                    "override_action": {"none": {}},
                    "statement": {"managed_rule_group_statement": statement},
                    "visibility_config": _visibility(group),
                }
            )
        rules.append(
            {
                "name": "rate-limit-per-ip",
                "priority": len(MANAGED_RULE_GROUPS),
                "action": {"block": {}},
                "statement": {
                    "rate_based_statement": {"limit": RATE_LIMIT, "aggregate_key_type": "IP"}
                },
                "visibility_config": _visibility("rate-limit-per-ip"),
            }
        )
        self.web_acl = aws.wafv2.WebAcl(
            f"{name}-acl",
            scope="REGIONAL",
            default_action={"allow": {}},
            rules=rules,
            visibility_config=_visibility(name),
            opts=child,
        )
        aws.wafv2.WebAclAssociation(
            f"{name}-alb",
            resource_arn=args.load_balancer_arn,
            web_acl_arn=self.web_acl.arn,
            opts=child,
        )
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"{WAF_LOG_GROUP_PREFIX}{pulumi.get_project()}-{pulumi.get_stack()}",
            retention_in_days=args.log_retention_days,
            opts=child,
        )
        aws.wafv2.WebAclLoggingConfiguration(
            f"{name}-logs",
            resource_arn=self.web_acl.arn,
            log_destination_configs=[log_group.arn],
            redacted_fields=[{"single_header": {"name": header}} for header in REDACTED_HEADERS],
            opts=child,
        )
        self.web_acl_arn = self.web_acl.arn
        self.register_outputs({"web_acl_arn": self.web_acl_arn})
