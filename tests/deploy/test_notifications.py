"""Notifications as deployed: rules from the manifest into the notifier's queue, the operators' topic, the
notifier's exact sending rights, the event archive's retention as a setting."""

from __future__ import annotations

import json

from shop.domain.notifications import routed_event_types
from shop.manifest import EVENT_RULES, FUNCTIONS
from tests.deploy.conftest import CDK_CONTEXT, of_type
from tests.deploy.test_stack import TABLE_RW, classify, functions_by_name, stack_refs, statements_by_role


def _queue_ref(resources, name: str) -> str:
    return stack_refs(resources)[f"queue:{name}"]


def test_rules_send_every_routed_event_to_the_notifier_queue_with_a_dead_letter_queue(resources):
    refs = stack_refs(resources)
    rules = {k: r["Properties"] for k, r in of_type(resources, "AWS::Events::Rule").items()
             if "EventPattern" in r["Properties"]}
    assert len(rules) == len(EVENT_RULES) == 1
    (rule,) = rules.values()
    (spec,) = EVENT_RULES
    assert rule["EventBusName"] == {"Ref": refs["bus"]}
    assert rule["EventPattern"] == spec.pattern()
    assert set(rule["EventPattern"]["detail-type"]) == set(routed_event_types())
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [_queue_ref(resources, "notifications"), "Arn"]}
    assert "DeadLetterConfig" in target
    # The queue lets EventBridge (this rule only) send to it.
    policies = [p["Properties"] for p in of_type(resources, "AWS::SQS::QueuePolicy").values()
                if {"Ref": _queue_ref(resources, "notifications")} in p["Properties"]["Queues"]]
    allowed = [s for p in policies for s in p["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert allowed and all(s["Principal"] == {"Service": "events.amazonaws.com"} and "sqs:SendMessage" in s["Action"]
                           and "aws:SourceArn" in json.dumps(s["Condition"]) for s in allowed)


def test_notifier_consumes_its_queue_with_partial_batch_failures(resources):
    assert FUNCTIONS["notifier"]
    mappings = [m["Properties"] for m in of_type(resources, "AWS::Lambda::EventSourceMapping").values()]
    (mapping,) = [m for m in mappings if m["EventSourceArn"] == {"Fn::GetAtt": [_queue_ref(resources, "notifications"),
                                                                                "Arn"]}]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_operator_topic_is_encrypted_ssl_only_and_only_the_notifier_publishes(resources):
    refs = stack_refs(resources)
    topic = resources[refs["operator_topic"]]["Properties"]
    assert topic["KmsMasterKeyId"]  # the AWS-managed SNS key
    policies = [p["Properties"]["PolicyDocument"] for p in of_type(resources, "AWS::SNS::TopicPolicy").values()
                if {"Ref": refs["operator_topic"]} in p["Properties"]["Topics"]]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for p in policies for s in p["Statement"])
    by_role = statements_by_role(resources)
    publishers = {name for name, (_, props) in functions_by_name(resources).items()
                  if "sns:publish:operators" in {classify(s, refs) for s in by_role[props["Role"]["Fn::GetAtt"][0]]}}
    assert publishers == {"notifier"}
    assert CDK_CONTEXT["operator_email"] == ""


def test_without_a_sender_address_there_is_no_email_right_and_sms_is_on(resources):
    env = functions_by_name(resources)["notifier"][1]["Environment"]["Variables"]
    assert env["NOTIFY_EMAIL_FROM"] == "" and env["NOTIFY_SMS"] == "on" and env["OPERATOR_LOCALE"] == "en"


def test_with_a_sender_ses_only_from_that_identity_sms_off_operators_subscribed(synthesized_with_domain):
    resources = synthesized_with_domain["json"]["Resources"]
    refs = stack_refs(resources)
    _, props = functions_by_name(resources)["notifier"]
    env = props["Environment"]["Variables"]
    assert env["NOTIFY_EMAIL_FROM"] == "orders@shop.example" and env["NOTIFY_SMS"] == "off"
    assert env["OPERATOR_LOCALE"] == "zh-CN"
    grants = {classify(s, refs) for s in statements_by_role(resources)[props["Role"]["Fn::GetAtt"][0]]}
    assert grants == TABLE_RW | {"sqs:consume:notifications", "sns:publish:operators", "ses:send", "xray"}
    subscriptions = [s["Properties"] for s in of_type(resources, "AWS::SNS::Subscription").values()]
    assert {"Protocol": "email", "Endpoint": "ops@shop.example",
            "TopicArn": {"Ref": refs["operator_topic"]}}.items() <= {
        k: v for s in subscriptions if s["Endpoint"] == "ops@shop.example" for k, v in s.items()}.items()
    (archive,) = of_type(resources, "AWS::Events::Archive").values()
    assert archive["Properties"]["RetentionDays"] == 30  # context event_archive_retention_days
