"""Alerting and alarm components: topic, e-mail, request-path alarms, budget."""

from __future__ import annotations

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def test_request_path_alarms_publish_to_the_topic(recorder):
    default = recorder.get({"deploymentStrategy": "rolling"})
    topic = default.one("aws:sns/topic:Topic")
    alarms = default.children_of_type("ServiceAlarms", ALARM)
    assert {a.name.rsplit("-alarms-", 1)[1] for a in alarms} == {
        "5xx-rate",
        "p95-latency",
        "unhealthy-hosts",
    }
    topic_arn = f"arn:aws:sns:us-east-1:123456789012:{topic.name}-0a1b2c3"
    for alarm in alarms:
        assert alarm.get("alarmActions") == [topic_arn]
    latency = default.one(ALARM, "-p95-latency")
    assert latency.get("extendedStatistic") == "p95"
    assert latency.get("threshold") == 0.5
    rate = default.one(ALARM, "-5xx-rate")
    expressions = [q["expression"] for q in rate.get("metricQueries") if q.get("expression")]
    assert expressions == ["100 * FILL(errors, 0) / requests"]


def test_email_subscription_exactly_when_an_address_is_given(recorder):
    with_email = recorder.get({"alertEmail": "ops@example.com", "monthlyBudgetUsd": 250})
    (subscription,) = with_email.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert subscription.get("protocol") == "email"
    assert subscription.get("endpoint") == "ops@example.com"
    assert not recorder.get({"alertEmail": ""}).of_type(
        "aws:sns/topicSubscription:TopicSubscription"
    )


def test_budget_uses_the_configured_limit(recorder):
    deployment = recorder.get({"alertEmail": "ops@example.com", "monthlyBudgetUsd": 250})
    budget = deployment.one("aws:budgets/budget:Budget")
    assert budget.get("limitAmount") == "250"
    assert budget.get("timeUnit") == "MONTHLY"
    kinds = {n["notificationType"] for n in budget.get("notifications")}
    assert kinds == {"ACTUAL", "FORECASTED"}


def test_topic_policy_lets_only_cloudwatch_and_budgets_publish(default):
    policy = default.one("aws:sns/topicPolicy:TopicPolicy").json("policy")
    (statement,) = policy["Statement"]
    assert statement["Action"] == "SNS:Publish"
    assert set(statement["Principal"]["Service"]) == {
        "cloudwatch.amazonaws.com",
        "budgets.amazonaws.com",
    }
