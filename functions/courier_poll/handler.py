"""SQS: one turn of a parcel's courier-poll loop. The message comes from the state machine's
`sqs:sendMessage.waitForTaskToken` task; we ask the carrier, record what it says on the order, and answer the token
with the next wait and whether the loop is done. A redelivered message answers an answered token: harmless."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import BaseModel, ConfigDict, Field

from shop.adapters.sqs_batch import consume, parse_message
from shop.adapters.wiring import default_ports
from shop.services.fulfilment import poll_parcel

logger = Logger()
metrics = Metrics()
tracer = Tracer()


class PollRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    task_token: str = Field(min_length=1, max_length=2048)
    order_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    shipment_id: str = Field(pattern=r"^shp_[a-z0-9]{8,60}$")


def poll(record: SQSRecord) -> None:
    request = parse_message(record, PollRequest)
    logger.set_correlation_id(request.shipment_id)
    ports = default_ports()
    answer = poll_parcel(ports, request.order_id, request.shipment_id)
    assert ports.tracking is not None  # default_ports() always has one
    ports.tracking.answer(request.task_token, answer)
    metrics.add_metric(name="ParcelsPolled", unit=MetricUnit.Count, value=1)
    logger.info("parcel polled", extra={"order_id": request.order_id, "shipment_id": request.shipment_id,
                                        "status": answer["status"], "next_wait_s": answer["wait_seconds"],
                                        "done": answer["done"]})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    return consume(event, context, poll, logger)
