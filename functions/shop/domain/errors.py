"""Domain errors. Each maps to one RFC 9457 problem in the HTTP layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DomainError(Exception):
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __str__(self) -> str:
        return self.detail


class Unauthorized(DomainError):
    status, slug, title = 401, "unauthorized", "Not signed in"


class Forbidden(DomainError):
    status, slug, title = 403, "forbidden", "Not allowed"


class NotFound(DomainError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(DomainError):
    status, slug, title = 409, "conflict", "Conflict"


class InsufficientStock(Conflict):
    slug, title = "insufficient-stock", "Not enough stock"


class InvalidTransition(Conflict):
    slug, title = "invalid-transition", "Transition not allowed"


class TooManyUnpaid(DomainError):
    """The customer already holds as many unpaid orders, or units of a SKU, as the shop allows."""

    status, slug, title = 429, "unpaid-limit", "Too many unpaid orders"


class Unprocessable(DomainError):
    status, slug, title = 422, "invalid-request", "Invalid request"


class IdempotencyKeyReused(Unprocessable):
    slug, title = "idempotency-key-reused", "Idempotency-Key reused with a different request"


class Unavailable(DomainError):
    status, slug, title = 503, "temporarily-unavailable", "Temporarily unavailable, retry"
