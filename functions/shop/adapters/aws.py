"""boto3 clients, created once per container. Endpoints come from the standard
AWS_ENDPOINT_URL_<SERVICE> variables, which the local run sets."""

from __future__ import annotations

from functools import cache

import boto3
from botocore.config import Config

# Short timeouts: a Lambda behind API Gateway has 29 s in all; fail fast and let callers retry.
_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


@cache
def client(service: str):
    return boto3.client(service, config=_CONFIG)


def reset_clients() -> None:
    """Forget cached clients (tests and the local run switch endpoints)."""
    client.cache_clear()
