"""Schedule: find PENDING_PAYMENT orders past their window and queue their expiry (and active cart holds past
theirs); finish refunds left pending.

This is what makes a reservation impossible to leak when the payment-window execution was
never started (StartExecution failed, or the process died right after the order commit):
every overdue unpaid order is found here within one sweep interval. Re-queuing an order the
state machine also expires is harmless: the consumer expires each order at most once.

A DELIVERED order completes here once its confirmation period is over (docs/fulfilment.md).

A refund is committed on its order as pending before the provider is called; if the process died
or the provider did not answer, the refund is still pending a minute later and is finished here
(the provider call is keyed on the refund id, so finishing twice refunds once).
"""

from __future__ import annotations

from datetime import timedelta

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from shop.adapters.wiring import default_ports
from shop.domain import clock, refunds
from shop.payments import registry
from shop.services.fulfilment import complete_if_due
from shop.services.refunds import complete_pending_refunds
from shop.settings import get_settings

logger = Logger()
metrics = Metrics()
tracer = Tracer()  # X-Ray subsegments for boto3 and provider calls; off outside Lambda


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)  # responses carry addresses
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    # A grace period lets the state machine, which fires on time, do the normal work.
    grace = get_settings().sweep_grace_seconds
    ports = default_ports()
    cutoff = clock.iso(clock.now() - timedelta(seconds=grace))
    overdue = ports.store.overdue_pending_order_ids(cutoff, limit=500)
    for order_id in overdue:
        assert ports.release_queue is not None  # default_ports() always has one
        ports.release_queue.request_release(order_id, "sweeper")
    if overdue:
        metrics.add_metric(name="OverdueOrdersSwept", unit=MetricUnit.Count, value=len(overdue))
        logger.warning("overdue unpaid orders re-queued", extra={"count": len(overdue)})
    holds = ports.store.overdue_cart_hold_ids(cutoff, limit=500)  # cart holds whose timer never fired
    for hold_id in holds:
        assert ports.release_queue is not None
        ports.release_queue.request_hold_release(hold_id)
    if holds:
        metrics.add_metric(name="OverdueCartHoldsSwept", unit=MetricUnit.Count, value=len(holds))
        logger.warning("overdue cart holds re-queued", extra={"count": len(holds)})
    stuck = ports.store.pending_refund_order_ids(cutoff, limit=100)
    finished = 0
    for order_id in stuck:
        try:
            order = complete_pending_refunds(ports, registry.provider, order_id)
        except Exception:  # one order's trouble must not stop the others; it is retried next sweep
            logger.exception("pending refund not finished", extra={"order_id": order_id})
            continue
        finished += 0 if refunds.pending(order) else 1
    if stuck:
        metrics.add_metric(name="PendingRefundsSwept", unit=MetricUnit.Count, value=len(stuck))
        metrics.add_metric(name="PendingRefundsLeft", unit=MetricUnit.Count, value=len(stuck) - finished)
        logger.warning("pending refunds retried", extra={"count": len(stuck), "finished": finished})
    completed = _complete_delivered(ports)
    return {"requeued": len(overdue), "holds_requeued": len(holds), "refunds_retried": len(stuck), "refunds_finished": finished,
            "orders_completed": completed}


def _complete_delivered(ports) -> int:
    """DELIVERED orders whose confirmation period is over, with no open after-sales request, become COMPLETED.
    The sparse gsi4 holds only those orders (COMPLETION_DUE), keyed by when they are due: never a scan."""
    due = ports.store.completion_due_order_ids(clock.iso(clock.now()), limit=100)
    completed = 0
    for order_id in due:
        try:
            completed += 1 if complete_if_due(ports, order_id) is not None else 0
        except Exception:  # one order's trouble must not stop the others; it is retried next sweep
            logger.exception("delivered order not completed", extra={"order_id": order_id})
    if completed:
        metrics.add_metric(name="OrdersCompleted", unit=MetricUnit.Count, value=completed)
    return completed
