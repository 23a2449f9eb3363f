"""The one outbound HTTP client for providers: timeouts, bounded retries with jitter on 5xx and network errors."""

from __future__ import annotations

import http.client
import random
import time
import urllib.error
import urllib.request
from typing import Mapping

from shop.payments.base import ProviderError

TIMEOUT_S = 5
ATTEMPTS = 3


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
    for attempt in range(ATTEMPTS):
        try:
            req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as response:  # noqa: S310 - https in production
                return response.status, _lowered(response.headers), response.read()
        except urllib.error.HTTPError as error:
            if error.code < 500:
                return error.code, _lowered(error.headers), error.read()
            last = error
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as error:
            last = error
        time.sleep(random.uniform(0, 0.2 * 2**attempt))
    raise ProviderError(f"{method} {url.split('?')[0]} failed: {last}")


def _lowered(headers) -> dict[str, str]:
    return {k.lower(): v for k, v in (headers or {}).items()}
