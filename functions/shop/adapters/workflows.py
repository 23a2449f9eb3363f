"""Step Functions: one Standard execution per order owns its payment window."""

from __future__ import annotations

import json
from datetime import timedelta

from aws_lambda_powertools import Logger

from shop.adapters.aws import client
from shop.domain import clock

logger = Logger(child=True)


def wake_at(expires_at: str) -> str:
    """The moment the window's `Wait` state is given: `expires_at` rounded UP to the next whole second.

    Step Functions reads a `Wait` timestamp to the second and truncates the milliseconds ("Currently, if you
    specify the wait time as a timestamp, Step Functions considers the time value up to seconds and truncates
    milliseconds": https://docs.aws.amazon.com/step-functions/latest/dg/amazon-states-language-wait-state.html).
    Given `expires_at` itself, the expiry message would arrive up to a second before the order is due, the
    consumer would answer "not yet due" and the release would wait out the queue's visibility timeout. Rounded
    up, the truncation changes nothing and the message arrives at or after `expires_at`. The state machine
    definition is unchanged (one definition, the local run's too)."""
    moment = clock.parse_iso(expires_at)
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class StepFunctionsPaymentWindows:
    def __init__(self, state_machine_arn: str):
        self.state_machine_arn = state_machine_arn

    def open(self, order_id: str, expires_at: str) -> None:
        """Start the order's window execution, named by the order id so a retry cannot start two.

        A failure here is logged, not raised: the order is already committed, and the
        expiry sweeper finds any overdue PENDING_PAYMENT order without an execution.
        """
        _start_timer(self.state_machine_arn, order_id, {"order_id": order_id, "expires_at": wake_at(expires_at)},
                     "the sweeper will expire the order", {"order_id": order_id})


class StepFunctionsHoldTimers:
    """A cart hold's expiry on the payment-window state machine (its hold branch: the input has `hold_id`).

    One execution per (hold, expiry second), named by both, so a retried request starts nothing new and a
    renewal starts a later one; the earlier one's message finds the hold renewed and does nothing
    (services/cart_holds.expire_hold compares its `scheduled_for`)."""

    def __init__(self, state_machine_arn: str):
        self.state_machine_arn = state_machine_arn

    def open(self, hold_id: str, expires_at: str) -> None:
        wake = wake_at(expires_at)
        name = f"{hold_id}-{wake.replace('-', '').replace(':', '').rstrip('Z')}"
        _start_timer(self.state_machine_arn, name, {"hold_id": hold_id, "expires_at": wake},
                     "the sweeper will release the hold", {"hold_id": hold_id})


def _start_timer(arn: str, name: str, given: dict, fallback: str, about: dict) -> None:
    """Start a named execution of the window state machine; one that exists already is not an error. A failure is
    logged, not raised: what it times is committed already, and the sweeper finds it overdue."""
    if not arn:
        logger.warning(f"no payment window state machine configured; {fallback}")
        return
    try:
        client("stepfunctions").start_execution(stateMachineArn=arn, name=name, input=json.dumps(given))
    except client("stepfunctions").exceptions.ExecutionAlreadyExists:
        pass
    except Exception:  # noqa: BLE001 - see docstring
        logger.exception(f"could not start the expiry timer; {fallback}", extra=about)


class StepFunctionsParcelTracking:
    """One Standard execution per parcel, named by the shipment id, runs the courier-poll loop
    (workflows/courier_poll.asl.json)."""

    def __init__(self, state_machine_arn: str):
        self.state_machine_arn = state_machine_arn

    def start(self, order_id: str, shipment_id: str, wait_seconds: int) -> None:
        """Start following the parcel; a second start (a retried request) finds the execution and does nothing.
        A failure is logged, not raised: the parcel is recorded, a retry of the shipment request starts it."""
        if not self.state_machine_arn:
            logger.warning("no courier poll state machine configured; the parcel is followed by pushes only")
            return
        try:
            client("stepfunctions").start_execution(
                stateMachineArn=self.state_machine_arn, name=shipment_id,
                input=json.dumps({"order_id": order_id, "shipment_id": shipment_id, "wait_seconds": wait_seconds}))
        except client("stepfunctions").exceptions.ExecutionAlreadyExists:
            pass
        except Exception:  # noqa: BLE001 - see docstring
            logger.exception("could not start following the parcel", extra={"order_id": order_id,
                                                                           "shipment_id": shipment_id})

    def stop(self, shipment_id: str, cause: str) -> None:
        """End the parcel's loop now (a push brought its final status): its pending Wait ends early."""
        if not self.state_machine_arn:
            return
        arn = self.state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{shipment_id}"
        try:
            client("stepfunctions").stop_execution(executionArn=arn, cause=cause[:200])
        except Exception:  # noqa: BLE001 - ended already, or never started: the next poll ends it anyway
            logger.info("parcel execution not stopped", extra={"shipment_id": shipment_id})

    def answer(self, task_token: str, output: dict) -> None:
        """Answer the poll task; a token answered or timed out already is not an error (SQS redelivered us)."""
        sfn = client("stepfunctions")
        try:
            sfn.send_task_success(taskToken=task_token, output=json.dumps(output))
        except (sfn.exceptions.TaskTimedOut, sfn.exceptions.InvalidToken, sfn.exceptions.TaskDoesNotExist):
            logger.info("poll task answered already or timed out")
