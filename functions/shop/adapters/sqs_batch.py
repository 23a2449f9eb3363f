"""Shared shape of the SQS consumers: Powertools batch processing with partial failure reporting."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
MAX_MESSAGE_BYTES = 16 * 1024


class PoisonMessage(Exception):
    """A message that can never succeed. It is reported as failed on every delivery, so the
    queue's redrive policy moves it to the dead-letter queue; the reason is logged each time."""


class RetryLater(Exception):
    """Not an error: the message is reported failed so SQS delivers it again after the visibility timeout."""


def parse_message(record: SQSRecord, model: type[M]) -> M:
    body = record.body or ""
    if len(body) > MAX_MESSAGE_BYTES:
        raise PoisonMessage("message too large")
    try:
        return model.model_validate(json.loads(body))
    except (ValueError, ValidationError) as error:
        raise PoisonMessage(f"invalid message: {str(error)[:300]}") from None


def consume(event: dict[str, Any], context: Any, handle: Callable[[SQSRecord], None], logger: Logger) -> dict:
    """Each record is handled alone; failures are reported as batchItemFailures and never block the batch."""

    def guarded(record: SQSRecord) -> None:
        try:
            handle(record)
        except PoisonMessage as poison:
            logger.warning("poison message: it will reach the dead-letter queue",
                           extra={"message_id": record.message_id, "reason": str(poison),
                                  "receive_count": record.attributes.approximate_receive_count})
            raise
        except RetryLater as later:
            logger.info("message postponed", extra={"message_id": record.message_id, "reason": str(later)})
            raise
        except Exception:
            logger.exception("message failed; it will be retried", extra={"message_id": record.message_id})
            raise

    processor = BatchProcessor(event_type=EventType.SQS)
    return dict(process_partial_response(event=event, record_handler=guarded, processor=processor, context=context))
