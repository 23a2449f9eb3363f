"""Schedule (daily, after the providers publish their statements): reconcile each enabled provider's statement
for its last complete business day (Beijing time for Alipay and WeChat Pay, UTC for Stripe) with our payments
and refunds; store each result, publish `reconciliation.mismatch` per difference (docs/payments.md, "Daily
reconciliation").

Event: the EventBridge scheduled event (its `time` says when), or for a run on demand
`{"date": "YYYY-MM-DD", "providers": ["alipay"], "fail_on_error": false}` (every key optional).

A run whose statement cannot be used (download failed, hash or summary mismatch) is stored as failed and counted
(`ReconciliationFailed`); the invocation then fails, so the function's error alarm fires and EventBridge's
retries fetch the statement again. Differences are counted as `ReconciliationDifferences` (alarmed too).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from shop.domain import clock
from shop.domain import reconciliation as rc
from shop.domain.statuses import ReconciliationStatus

logger = Logger()
metrics = Metrics()
tracer = Tracer()


class ReconciliationFailed(Exception):
    """At least one provider's statement could not be used (each is stored as a failed run)."""


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any] | None, context) -> dict[str, Any]:
    from shop.adapters.wiring import default_ports
    from shop.payments import registry
    from shop.reconciliation.statements import STATEMENT_PROVIDERS
    from shop.services import reconciliation

    event = event or {}
    wanted = event.get("providers")
    providers = [p for p in STATEMENT_PROVIDERS if p in registry.enabled() and (not wanted or p in wanted)]
    now = clock.parse_iso(event["time"]) if isinstance(event.get("time"), str) else clock.now()
    ports = default_ports()
    results = []
    for provider in providers:
        day = event.get("date") or rc.previous_business_date(provider, now).isoformat()
        result = reconciliation.run(ports, provider, day)
        differences = sum(n for category, n in result["counts"].items() if category != rc.MATCHED)
        metrics.add_metric(name="ReconciliationDifferences", unit=MetricUnit.Count, value=differences)
        metrics.add_metric(name="ReconciliationFailed", unit=MetricUnit.Count,
                           value=1 if result["status"] == ReconciliationStatus.FAILED else 0)
        results.append({"provider": provider, "date": result["date"], "status": result["status"],
                        "counts": result["counts"], "error": result["error"]})
    failed = [r for r in results if r["status"] == ReconciliationStatus.FAILED]
    if failed and event.get("fail_on_error", True):
        raise ReconciliationFailed("; ".join(f"{r['provider']} {r['date']}: {r['error']['reason']}" for r in failed))
    return {"results": results}
