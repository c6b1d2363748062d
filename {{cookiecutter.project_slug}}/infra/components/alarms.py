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


class ServiceAlarms(pulumi.ComponentResource):
    """What a user notices: 5xx rate, p95 latency, and targets failing their health check."""

    def __init__(
        self, name: str, args: ServiceAlarmsArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(type_token("ServiceAlarms"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        actions = {"alarm_actions": [args.topic_arn], "ok_actions": [args.topic_arn]}
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
        self.register_outputs(
            {
                "alarm_arns": [self.error_rate.arn, self.latency.arn, self.unhealthy.arn],
            }
        )
