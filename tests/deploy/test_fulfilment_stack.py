"""Fulfilment infrastructure: the courier-poll state machine is the ASL file the local run executes, its role may
only send to the courier-poll queue; the label bucket is private, encrypted, SSL-only and expires labels."""

from __future__ import annotations

import json

from shop.workflows import COURIER_POLL_ASL
from tests.deploy.conftest import of_type
from tests.deploy.test_stack import stack_refs, statements_by_role


def test_courier_poll_machine_is_byte_for_byte_the_local_asl_and_sends_only_to_its_queue(synthesized, resources):
    refs = stack_refs(resources)
    machine = resources[refs["courier_machine"]]["Properties"]
    assert machine["StateMachineType"] == "STANDARD" and machine["TracingConfiguration"] == {"Enabled": True}
    assert "DefinitionString" not in machine  # from_file: the file itself is the asset
    staged = synthesized["path"].parent / f"asset.{machine['DefinitionS3Location']['Key'].removesuffix('.json')}.json"
    assert staged.read_bytes() == COURIER_POLL_ASL.read_bytes()
    assert machine["DefinitionSubstitutions"] == {"CourierPollQueueUrl": {"Ref": refs["queue:courier_poll"]}}
    # The local run creates its machine from this same file (localrun/cloud.py), with the local queue URL.
    import localrun.cloud

    assert localrun.cloud.COURIER_POLL_ASL == COURIER_POLL_ASL
    definition = json.loads(COURIER_POLL_ASL.read_text())
    poll = definition["States"]["Poll"]
    assert poll["Resource"] == "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
    assert definition["States"]["WaitBeforePoll"]["SecondsPath"] == "$.wait_seconds"
    role = machine["RoleArn"]["Fn::GetAtt"][0]
    non_star = [s for s in statements_by_role(resources)[role] if s["Resource"] != "*"]
    assert non_star == [{"Action": "sqs:SendMessage", "Effect": "Allow",
                         "Resource": {"Fn::GetAtt": [refs["queue:courier_poll"], "Arn"]}}]


def test_label_bucket_is_private_encrypted_ssl_only_and_expires_labels(resources):
    refs = stack_refs(resources)
    bucket = resources[refs["labels"]]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"}
    assert bucket["PublicAccessBlockConfiguration"] == {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                                        "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    (rule,) = [r for r in bucket["LifecycleConfiguration"]["Rules"] if r.get("ExpirationInDays")]
    assert rule["Status"] == "Enabled" and rule["ExpirationInDays"] == 180
    (policy,) = [p["Properties"] for p in of_type(resources, "AWS::S3::BucketPolicy").values()
                 if p["Properties"]["Bucket"] == {"Ref": refs["labels"]}]
    (deny,) = policy["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_functions_get_the_fulfilment_settings(resources):
    from tests.deploy.test_stack import functions_by_name

    for name in ("admin_api", "courier_poll", "carrier_webhook", "expiry_sweeper"):
        env = functions_by_name(resources)[name][1]["Environment"]["Variables"]
        assert env["COURIER_POLL_INTERVALS"] == "10800,21600,43200,86400", name
        assert env["ORDER_CONFIRMATION_SECONDS"] == str(7 * 24 * 3600), name
        assert env["CARRIERS_ENABLED"] == "kuaidi100,aftership", name
        # the functions that read the carrier secrets (shop.manifest: "... on carrier secrets") know where they are
        assert env.get("CARRIER_SECRET_PREFIX") == ("shop/dev/carriers/" if name != "expiry_sweeper" else None), name
    admin = functions_by_name(resources)["admin_api"][1]["Environment"]["Variables"]
    assert "CARRIER_WEBHOOK_BASE_URL" in admin  # Kuaidi100 subscriptions name their callback URL
