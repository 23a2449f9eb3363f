"""Retry a read-decide-commit cycle when a concurrent writer got there first."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from shop.domain.errors import Unavailable
from shop.services.ports import StaleWrite, Throttled

T = TypeVar("T")

MAX_ATTEMPTS = 25
BASE_DELAY_S = 0.005
MAX_DELAY_S = 0.25


def with_retries(operation: Callable[[], T], *, attempts: int = MAX_ATTEMPTS) -> T:
    """Run `operation` again after StaleWrite or Throttled, with full-jitter exponential backoff.

    Safe because each attempt re-reads state and every write is conditional on what was read.
    """
    for attempt in range(attempts):
        try:
            return operation()
        except (StaleWrite, Throttled):
            if attempt == attempts - 1:
                break
            time.sleep(random.uniform(0, min(MAX_DELAY_S, BASE_DELAY_S * 2**attempt)))
    raise Unavailable("the system is busy with concurrent updates; retry shortly", {"retry_after": 1})
