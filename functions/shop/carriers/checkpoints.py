"""What carriers' checkpoint fields become: times in ISO 8601 UTC, bounded free text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from shop.carriers.base import InvalidCallback
from shop.domain import clock

CHINA = timezone(timedelta(hours=8))


def china_time(text: str) -> str:
    """'2024-05-01 12:30:00' (Beijing time, as Chinese carriers write it) -> ISO 8601 UTC with Z."""
    try:
        moment = datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA)
    except (ValueError, AttributeError):
        raise InvalidCallback("checkpoint time is not 'yyyy-mm-dd hh:mm:ss'") from None
    return clock.iso(moment)


def offset_time(text: str) -> str:
    """An ISO 8601 time with an offset (or none: UTC) -> ISO 8601 UTC with Z."""
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidCallback("checkpoint time is not ISO 8601") from None
    return clock.iso(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def text(value: Any, limit: int = 200) -> str:
    return value[:limit] if isinstance(value, str) else ""
