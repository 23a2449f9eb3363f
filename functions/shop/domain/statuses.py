"""The status vocabularies beside an order's `status` (OrderStatus, in domain/orders.py).

StrEnums: each member is its value as a str (in JSON, in DynamoDB items, in f-strings), so the
stored and served values are the SPEC's words unchanged.
"""

from __future__ import annotations

from enum import StrEnum


class PaymentStatus(StrEnum):
    """What the order holds of its own payment (SPEC: `payment_status`)."""

    UNPAID = "unpaid"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


# The order holds money it may give back.
HOLDS_MONEY = frozenset({PaymentStatus.PAID, PaymentStatus.PARTIALLY_REFUNDED})
# The order took a payment (its units were sold), refunded since or not.
ACCEPTED_PAYMENT = HOLDS_MONEY | {PaymentStatus.REFUNDED}


class FulfillmentStatus(StrEnum):
    """How much of the order has shipped (SPEC: `fulfillment_status`)."""

    UNFULFILLED = "unfulfilled"
    PARTIAL = "partial"
    FULFILLED = "fulfilled"


class RefundStatus(StrEnum):
    """A refund on the order: recorded as an intent (pending) until the provider confirms it."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"


class TransactionStatus(StrEnum):
    """A money movement as a provider reports it (statement rows, payment queries)."""

    SUCCEEDED = "succeeded"
    PENDING = "pending"
    FAILED = "failed"


class PaymentOutcome(StrEnum):
    """What settling one verified provider notification did (recorded on its webhook record)."""

    PAID = "paid"
    PAID_ON_HOLD = "paid_on_hold"  # accepted, held by a risk rule for an operator
    AMOUNT_MISMATCH_HELD = "amount_mismatch_held"  # not accepted: held (unpaid) for an operator
    REFUNDED = "refunded"  # refused: recorded with an automatic refund
    REFUND_PENDING = "refund_pending"  # refused, its refund not yet confirmed by the provider
    ALREADY_PAID = "already_paid"
    ALREADY_REFUNDED = "already_refunded"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    UNKNOWN_ORDER = "unknown_order"
    NOT_APPLICABLE = "not_applicable"  # reconciliation: the order records the payment, or has not ended

    @property
    def accepted(self) -> bool:
        return self in (PaymentOutcome.PAID, PaymentOutcome.PAID_ON_HOLD)


class ReconciliationStatus(StrEnum):
    """How one provider's daily reconciliation run ended."""

    COMPLETED = "completed"  # the statement was read and compared (differences, if any, are reported)
    FAILED = "failed"  # no statement to compare (not configured, not available, invalid)


class BookingStatus(StrEnum):
    """A parcel's waybill with its carrier (the `booking` of a shipment's tracking): recorded as pending before
    the carrier is called, booked once it gave the tracking number (or the operator gave it)."""

    PENDING = "pending"
    BOOKED = "booked"


class DeliveryStatus(StrEnum):
    """The claim of one notification message (its `status` in the table)."""

    SENDING = "sending"  # claimed, the channel not yet answered
    SENT = "sent"
    FAILED = "failed"  # not sent: a retry may claim it again
    REJECTED = "rejected"  # refused by the provider: never retried
    UNKNOWN = "unknown"  # the outcome is unknown (it may have been sent): never retried
