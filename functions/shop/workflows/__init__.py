"""State machine definitions shared by CDK and the local run (one file each)."""

from __future__ import annotations

from pathlib import Path

PAYMENT_WINDOW_ASL = Path(__file__).with_name("payment_window.asl.json")
# Placeholders in the ASL file, filled by CDK definition_substitutions or the local run.
PAYMENT_WINDOW_SUBSTITUTIONS = ("StockReleaseQueueUrl",)
COURIER_POLL_ASL = Path(__file__).with_name("courier_poll.asl.json")
COURIER_POLL_SUBSTITUTIONS = ("CourierPollQueueUrl",)


def render(path: Path, values: dict[str, str]) -> str:
    """The definition with ${Name} placeholders replaced, as Step Functions receives it."""
    text = path.read_text()
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    return text
