"""The one outbound HTTP client for providers: timeouts, bounded retries with jitter on 5xx and network errors,
all within one overall deadline."""

from __future__ import annotations

import http.client
import random
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from time import monotonic  # tests replace `time` (its sleep) to skip the pauses; the deadline keeps real time

from shop.payments.base import ProviderError

TIMEOUT_S = 5
ATTEMPTS = 3
# Every exchange, retries and pauses included, ends within this many seconds (each attempt's socket timeout is
# cut to what is left). The functions that call providers have Lambda timeouts above it with room for their
# DynamoDB and Secrets Manager calls (tests/deploy: timeouts), so a slow provider ends in the designed answer
# (a 503 problem, a retried message) rather than a Lambda timeout (API Gateway's bare 502).
DEADLINE_S = 8.0
MIN_ATTEMPT_S = 0.5  # not worth starting an attempt with less time than this left


def request(method: str, url: str, *, body: bytes | None = None, headers: Mapping[str, str] | None = None
            ) -> tuple[int, bytes]:
    """Returns (status, body) for any answer below 500; retries only what a retry can fix.

    Every caller sends an idempotency key, so a retried POST cannot charge or refund twice."""
    status, _, answer = exchange(method, url, body=body, headers=headers)
    return status, answer


def exchange(method: str, url: str, *, body: bytes | None = None, headers: Mapping[str, str] | None = None
             ) -> tuple[int, dict[str, str], bytes]:
    """As `request`, with the answer's headers (lower-cased names), for providers that sign their answers."""
    last: Exception | None = None
    deadline = monotonic() + DEADLINE_S
    for attempt in range(ATTEMPTS):
        left = deadline - monotonic()
        if left < MIN_ATTEMPT_S:
            break
        try:
            req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
            with urllib.request.urlopen(req, timeout=min(TIMEOUT_S, left)) as response:  # noqa: S310 - https in production
                return response.status, _lowered(response.headers), response.read()
        except urllib.error.HTTPError as error:
            if error.code < 500:
                return error.code, _lowered(error.headers), error.read()
            last = error
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as error:
            last = error
        pause = random.uniform(0, 0.2 * 2**attempt)
        if monotonic() + pause + MIN_ATTEMPT_S > deadline:
            break
        time.sleep(pause)
    raise ProviderError(f"{method} {url.split('?')[0]} failed: {last or 'deadline reached'}")


def _lowered(headers) -> dict[str, str]:
    return {k.lower(): v for k, v in (headers or {}).items()}
