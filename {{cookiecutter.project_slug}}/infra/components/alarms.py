"""Alerting: an SNS topic (+ e-mail), CloudWatch alarms on the request path, and a budget alert."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.naming import type_token

# Budget notifications: actual spend past 80%, and a forecast past 100%, of the monthly limit.
BUDGET_ACTUAL_PERCENT = 80
BUDGET_FORECAST_PERCENT = 100


@dataclass
class AlertingArgs:
    alert_email: str  # "" = no subscription (the topic still exists for other subscribers)
    monthly_budget_usd: int


class Alerting(pulumi.ComponentResource):
    """One topic every alarm and the budget publish to."""

    def __init__(self, name: str, args: AlertingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("Alerting"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Not KMS-encrypted: CloudWatch and Budgets cannot publish to a topic under the
        # AWS-managed SNS key, and alarm notifications carry no data worth a customer key.
        self.topic = aws.sns.Topic(f"{name}-topic", opts=child)
        aws.sns.TopicPolicy(
            f"{name}-topic-policy",
            arn=self.topic.arn,
            policy=pulumi.Output.json_dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "AlarmsAndBudgetsPublish",
                            "Effect": "Allow",
                            "Principal": {
                                "Service": ["cloudwatch.amazonaws.com", "budgets.amazonaws.com"]
                            },
                            "Action": "SNS:Publish",
                            "Resource": self.topic.arn,
                        }
                    ],
                }
            ),
            opts=child,
        )
        if args.alert_email:
            aws.sns.TopicSubscription(
                f"{name}-email",
                topic=self.topic.arn,
                protocol="email",
                endpoint=args.alert_email,
                opts=child,
            )
        self.budget = aws.budgets.Budget(
            f"{name}-budget",
            budget_type="COST",
            time_unit="MONTHLY",
            limit_amount=str(args.monthly_budget_usd),
            limit_unit="USD",
            notifications=[
                self._notification("ACTUAL", BUDGET_ACTUAL_PERCENT, args.alert_email),
                self._notification("FORECASTED", BUDGET_FORECAST_PERCENT, args.alert_email),
            ],
            opts=child,
        )
        self.topic_arn = self.topic.arn
        self.register_outputs({"topic_arn": self.topic_arn})

    def _notification(self, kind: str, percent: int, email: str) -> dict:
        return {
            "comparison_operator": "GREATER_THAN",
            "notification_type": kind,
            "threshold": percent,
            "threshold_type": "PERCENTAGE",
            "subscriber_sns_topic_arns": [self.topic.arn],
            "subscriber_email_addresses": [email] if email else [],
        }


@dataclass
class ServiceAlarmsArgs:
    topic_arn: pulumi.Input[str]
    alb_arn_suffix: pulumi.Input[str]
    target_group_arn_suffix: pulumi.Input[str]
    error_rate_percent: float = 5.0
    p95_latency_seconds: float = 0.5
    # blue_green / canary: the alternate target group too (the app serves from either), a p99
    # alarm, and names fixed in advance (deployment_alarm_names) for the service to refer to.
    alternate_target_group_arn_suffix: pulumi.Input[str] | None = None
    p99_latency_seconds: float = 1.0


# What a blue/green or canary deployment watches during its bake time; any of them firing
# rolls it back. The ECS service names them before they exist (the alarms watch the service's
# target groups), so their names are fixed: per stack, as CloudWatch names are per region.
DEPLOYMENT_ALARMS = ("5xx-rate", "p99-latency", "unhealthy-hosts")


def deployment_alarm_names(name: str) -> list[str]:
    """The CloudWatch names of ServiceAlarms `name`'s deployment alarms in this stack."""
    return [f"{name}-{pulumi.get_stack()}-{kind}" for kind in DEPLOYMENT_ALARMS]


class ServiceAlarms(pulumi.ComponentResource):
    """What a user notices: 5xx rate, p95 latency, and targets failing their health check."""

    def __init__(
        self, name: str, args: ServiceAlarmsArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(type_token("ServiceAlarms"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        actions = {"alarm_actions": [args.topic_arn], "ok_actions": [args.topic_arn]}
        if args.alternate_target_group_arn_suffix is not None:
            self._staged(name, args, actions, child)
            self.register_outputs({"alarm_arns": self.alarm_arns})
            return
        dimensions = {
            "LoadBalancer": args.alb_arn_suffix,
            "TargetGroup": args.target_group_arn_suffix,
        }

        def metric(query_id: str, metric_name: str) -> dict:
            return {
                "id": query_id,
                "metric": {
                    "namespace": "AWS/ApplicationELB",
                    "metric_name": metric_name,
                    "dimensions": dimensions,
                    "period": 60,
                    "stat": "Sum",
                },
            }

        self.error_rate = aws.cloudwatch.MetricAlarm(
            f"{name}-5xx-rate",
            alarm_description=f"Target 5xx above {args.error_rate_percent}% of requests",
            comparison_operator="GreaterThanThreshold",
            threshold=args.error_rate_percent,
            evaluation_periods=5,
            datapoints_to_alarm=3,
            treat_missing_data="notBreaching",
            metric_queries=[
                metric("errors", "HTTPCode_Target_5XX_Count"),
                metric("requests", "RequestCount"),
                {
                    "id": "rate",
                    "expression": "100 * FILL(errors, 0) / requests",
                    "label": "5xx rate (%)",
                    "return_data": True,
                },
            ],
            **actions,
            opts=child,
        )
        self.latency = aws.cloudwatch.MetricAlarm(
            f"{name}-p95-latency",
            alarm_description=f"Target p95 latency above {args.p95_latency_seconds}s",
            namespace="AWS/ApplicationELB",
            metric_name="TargetResponseTime",
            dimensions=dimensions,
            extended_statistic="p95",
            period=60,
            evaluation_periods=5,
            datapoints_to_alarm=3,
            threshold=args.p95_latency_seconds,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            **actions,
            opts=child,
        )
        self.unhealthy = aws.cloudwatch.MetricAlarm(
            f"{name}-unhealthy-hosts",
            alarm_description="At least one app task failing the ALB health check",
            namespace="AWS/ApplicationELB",
            metric_name="UnHealthyHostCount",
            dimensions=dimensions,
            statistic="Maximum",
            period=60,
            evaluation_periods=3,
            threshold=0,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            **actions,
            opts=child,
        )
        self.alarm_arns = [self.error_rate.arn, self.latency.arn, self.unhealthy.arn]
        self.register_outputs({"alarm_arns": self.alarm_arns})

    def _staged(
        self, name: str, args: ServiceAlarmsArgs, actions: dict, child: pulumi.ResourceOptions
    ) -> None:
        """The same alarms over both target groups (either may be serving), named in advance,
        plus p99 latency; ECS rolls a deployment back when one of the named three fires."""
        groups = {"a": args.target_group_arn_suffix, "b": args.alternate_target_group_arn_suffix}

        def per_group(prefix: str, metric_name: str, stat: str) -> list[dict]:
            return [
                {
                    "id": f"{prefix}{key}",
                    "metric": {
                        "namespace": "AWS/ApplicationELB",
                        "metric_name": metric_name,
                        "dimensions": {"LoadBalancer": args.alb_arn_suffix, "TargetGroup": group},
                        "period": 60,
                        "stat": stat,
                    },
                }
                for key, group in groups.items()
            ]

        def alarm(kind: str, description: str, threshold: float, queries: list[dict], **extra):
            names = dict(zip(DEPLOYMENT_ALARMS, deployment_alarm_names(name), strict=True))
            return aws.cloudwatch.MetricAlarm(
                f"{name}-{kind}",
                name=names.get(kind),  # the deployment alarms' fixed names; the rest auto-named
                alarm_description=description,
                comparison_operator="GreaterThanThreshold",
                threshold=threshold,
                treat_missing_data="notBreaching",
                metric_queries=queries,
                **{"evaluation_periods": 5, "datapoints_to_alarm": 3, **extra},
                **actions,
                opts=child,
            )

        def result(expression: str, label: str) -> dict:
            return {"id": "result", "expression": expression, "label": label, "return_data": True}

        self.error_rate = alarm(
            "5xx-rate",
            f"Target 5xx above {args.error_rate_percent}% of requests (both target groups)",
            args.error_rate_percent,
            [
                *per_group("errors", "HTTPCode_Target_5XX_Count", "Sum"),
                *per_group("requests", "RequestCount", "Sum"),
                result(
                    "100 * (FILL(errorsa, 0) + FILL(errorsb, 0))"
                    " / (FILL(requestsa, 0) + FILL(requestsb, 0))",
                    "5xx rate (%)",
                ),
            ],
        )
        self.latency = alarm(
            "p95-latency",
            f"Target p95 latency above {args.p95_latency_seconds}s (either target group)",
            args.p95_latency_seconds,
            [*per_group("p95", "TargetResponseTime", "p95"), result("MAX([p95a, p95b])", "p95")],
        )
        self.p99_latency = alarm(
            "p99-latency",
            f"Target p99 latency above {args.p99_latency_seconds}s (either target group)",
            args.p99_latency_seconds,
            [*per_group("p99", "TargetResponseTime", "p99"), result("MAX([p99a, p99b])", "p99")],
        )
        self.unhealthy = alarm(
            "unhealthy-hosts",
            "At least one app task failing the ALB health check (either target group)",
            0,
            [
                *per_group("unhealthy", "UnHealthyHostCount", "Maximum"),
                result("MAX([unhealthya, unhealthyb])", "unhealthy targets"),
            ],
            evaluation_periods=3,
            datapoints_to_alarm=3,
        )
        self.alarm_arns = [
            self.error_rate.arn,
            self.latency.arn,
            self.p99_latency.arn,
            self.unhealthy.arn,
        ]
