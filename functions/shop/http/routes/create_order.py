"""POST /orders."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.metrics import MetricUnit

from shop.adapters.phones import phone_digest
from shop.adapters.wiring import default_ports
from shop.domain.errors import InsufficientStock, Unprocessable
from shop.http.auth import caller
from shop.http.routes.common import IdempotencyKey, checked_window, json_response, validated_key
from shop.http.schemas import CreateOrderIn
from shop.payments.registry import payment_details
from shop.services.orders import OrderPolicy, OrderRequest, PlaceOrder, place_order, request_fingerprint
from shop.settings import get_settings

router = APIGatewayRouter()
logger = Logger(child=True)
metrics = Metrics()

def presale_skus(order: CreateOrderIn) -> frozenset[str]:
    """The SKUs ordered from their presale pool; a SKU is ordered either way, not both (422)."""
    presale = frozenset(line.sku for line in order.items if line.presale)
    mixed = sorted(presale & {line.sku for line in order.items if not line.presale})
    if mixed:
        raise Unprocessable("a SKU is ordered from presale or from stock, not both in one order",
                            {"skus": [{"sku": code, "reason": "presale_and_spot"} for code in mixed]})
    return presale


@router.post("/orders", summary="Place an order", responses={201: {"description": "Order placed"}})
def create_order(order: CreateOrderIn, idempotency_key: IdempotencyKey = None):
    who = caller(router)
    key = validated_key(idempotency_key)
    settings = get_settings()
    request = OrderRequest(
        items=[(line.sku, line.quantity) for line in order.items],
        shipping_address=order.shipping_address.model_dump(exclude_none=True),
        payment_provider=order.payment_provider or settings.payment_provider_default(),
        client_ip=router.current_event.request_context.identity.source_ip,
        payment_window_seconds=checked_window(order.payment_window_seconds),
        phone_digest=phone_digest(order.shipping_address.phone),
        presale=presale_skus(order),
        cart_id=order.cart_id,
    )
    try:
        placed = place_order(default_ports(),
                             PlaceOrder(who.sub, key, request, request_fingerprint(router.current_event.json_body)),
                             OrderPolicy.from_settings(settings), payment_details)
    except InsufficientStock:
        metrics.add_metric(name="OrdersRejectedForStock", unit=MetricUnit.Count, value=1)
        raise
    if placed.replayed:
        return json_response(placed.status_code, placed.body, {"Idempotent-Replayed": "true"})
    metrics.add_metric(name="OrdersCreated", unit=MetricUnit.Count, value=1)
    logger.info("order placed", extra={"order_id": placed.order_id, "lines": len(request.items)})
    return json_response(placed.status_code, placed.body, {"Location": f"/orders/{placed.order_id}"})
