"""Order ids (opaque, unguessable) and order numbers (human-readable, unique)."""

from __future__ import annotations

import base64
import hashlib
import secrets

# Crockford-style alphabet: no I, L, O, U, so numbers survive being read aloud.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_order_id() -> str:
    """128 random bits: nobody can guess another customer's order id."""
    return "ord_" + base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()


def new_order_number(customer_id: str, created_at: str) -> str:
    """e.g. 20261123-7F3K-Q9XD2M: date, four characters derived from the customer, six random."""
    date = created_at[:10].replace("-", "")
    digest = hashlib.sha256(customer_id.encode()).digest()
    customer_part = "".join(_ALPHABET[b % 32] for b in digest[:4])
    random_part = "".join(secrets.choice(_ALPHABET) for _ in range(6))
    return f"{date}-{customer_part}-{random_part}"
