"""Schedule: find PENDING_PAYMENT orders past their window and queue their expiry.

This is what makes a reservation impossible to leak when the payment-window execution was
never started (StartExecution failed, or the process died right after the order commit):
every overdue unpaid order is found here within one sweep interval. Re-queuing an order the
state machine also expires is harmless: the consumer expires each order at most once.
"""

from __future__ import annotations

import os
from datetime import timedelta

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from shop.adapters.wiring import default_ports
from shop.domain import clock

logger = Logger()
metrics = Metrics()
tracer = Tracer()  # X-Ray subsegments for boto3 and provider calls; off outside Lambda


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)  # responses carry addresses
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    # A grace period lets the state machine, which fires on time, do the normal work.
    grace = int(os.environ.get("SWEEP_GRACE_SECONDS", "30"))
    ports = default_ports()
    cutoff = clock.iso(clock.now() - timedelta(seconds=grace))
    overdue = ports.store.overdue_pending_order_ids(cutoff, limit=500)
    for order_id in overdue:
        ports.release_queue.request_release(order_id, "sweeper")
    if overdue:
        metrics.add_metric(name="OverdueOrdersSwept", unit=MetricUnit.Count, value=len(overdue))
        logger.warning("overdue unpaid orders re-queued", extra={"count": len(overdue)})
    return {"requeued": len(overdue)}
