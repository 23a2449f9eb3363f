"""Step Functions: one Standard execution per order owns its payment window."""

from __future__ import annotations

import json

from aws_lambda_powertools import Logger

from shop.adapters.aws import client

logger = Logger(child=True)


class StepFunctionsPaymentWindows:
    def __init__(self, state_machine_arn: str):
        self.state_machine_arn = state_machine_arn

    def open(self, order_id: str, expires_at: str) -> None:
        """Start the order's window execution, named by the order id so a retry cannot start two.

        A failure here is logged, not raised: the order is already committed, and the
        expiry sweeper finds any overdue PENDING_PAYMENT order without an execution.
        """
        if not self.state_machine_arn:
            logger.warning("no payment window state machine configured; the sweeper will expire the order")
            return
        try:
            client("stepfunctions").start_execution(
                stateMachineArn=self.state_machine_arn,
                name=order_id,
                input=json.dumps({"order_id": order_id, "expires_at": expires_at}),
            )
        except client("stepfunctions").exceptions.ExecutionAlreadyExists:
            pass
        except Exception:  # noqa: BLE001 - see docstring
            logger.exception("could not start the payment window; the sweeper will expire the order",
                             extra={"order_id": order_id})
