"""SQS: apply stock returns (refunds with restock, customer returns) exactly once per message id, and
rebalance a SKU's shards when an order found one dry (and run the next round of a backorder fill that stopped at
its cap, or failed after an arrival)."""

from __future__ import annotations

from typing import Literal

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import BaseModel, ConfigDict, Field

from shop.adapters.sqs_batch import PoisonMessage, consume, parse_message
from shop.adapters.wiring import default_ports
from shop.domain.errors import Conflict, NotFound
from shop.domain.skus import SKU_PATTERN
from shop.services import backorders, inventory
from shop.services.restock import RestockRequest, apply_restock

logger = Logger()
metrics = Metrics()
tracer = Tracer()  # X-Ray subsegments for boto3 and provider calls; off outside Lambda


class RestockMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9:_.-]+$")
    sku: str = Field(pattern=SKU_PATTERN)
    quantity: int = Field(ge=1, le=100_000, strict=True)
    order_id: str | None = Field(default=None, max_length=64)
    reason: str = Field(min_length=1, max_length=100)


class RebalanceMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["rebalance"]
    message_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9:_.-]+$")
    sku: str = Field(pattern=SKU_PATTERN)


def restock(record: SQSRecord) -> None:
    if '"rebalance"' in (record.body or ""):
        rebalance = parse_message(record, RebalanceMessage)
        ports = default_ports()
        moved = inventory.rebalance(ports, rebalance.sku)
        # Also the next run of a backorder fill that stopped at its cap, or one that failed after an arrival
        # (services/backorders.py, inventory._fill_backorders); trim brings an allowance kept above a lowered limit
        # down to it (one read, no write when it is there already).
        filled = backorders.fill(ports, rebalance.sku) or backorders.trim(ports, rebalance.sku)
        logger.info("rebalance", extra={"sku": rebalance.sku, "movements": len(moved), "backorder_movements": len(filled)})
        return
    message = parse_message(record, RestockMessage)
    try:
        applied = apply_restock(default_ports(), RestockRequest(**message.model_dump()))
    except (NotFound, Conflict) as error:  # unknown SKU, or more returned than was ever sold
        raise PoisonMessage(str(error)) from None
    if applied:
        metrics.add_metric(name="UnitsRestocked", unit=MetricUnit.Count, value=message.quantity)
    logger.info("restock", extra={"message_id": message.message_id, "applied": applied})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)  # responses carry addresses
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    return consume(event, context, restock, logger)
