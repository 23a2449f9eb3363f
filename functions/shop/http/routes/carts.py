"""Cart holds: POST /carts/{cart_id}/holds holds the cart's lines (or, with {"renew": true}, extends the hold), GET
reads the hold, DELETE releases it (docs/cart-holds.md). POST /orders with the cart's id takes the held units over."""

from __future__ import annotations

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.metrics import MetricUnit

from shop.adapters.wiring import default_ports
from shop.domain.cart_holds import checked_cart_id
from shop.http.auth import caller
from shop.http.routes.common import json_response
from shop.http.schemas import CartHoldIn
from shop.services import cart_holds
from shop.settings import get_settings

router = APIGatewayRouter()
metrics = Metrics()


@router.post("/carts/<cart_id>/holds",
             summary="Hold the cart's lines for CART_HOLD_SECONDS (201: a new hold; 200: the cart's live hold changed "
                     "to these lines and renewed), or with {\"renew\": true} extend the live hold within "
                     "CART_HOLD_MAX_SECONDS (409 once ended or expired). Safe to retry: the hold is the cart's state")
def place_hold(cart_id: str, body: CartHoldIn):
    who = caller(router)
    policy = cart_holds.HoldPolicy.from_settings(get_settings())
    cart_id = checked_cart_id(cart_id)
    if body.items is None:  # {"renew": true}
        renewed = cart_holds.renew_hold(default_ports(), who.sub, cart_id, policy)
        return json_response(200, cart_holds.hold_view(renewed, policy))
    hold = cart_holds.place_hold(default_ports(), who.sub, cart_id,
                                 [(line.sku, line.quantity) for line in body.items], policy)
    metrics.add_metric(name="CartHoldsPlaced", unit=MetricUnit.Count, value=1)
    status = 201 if hold.created_at == hold.updated_at else 200
    return json_response(status, cart_holds.hold_view(hold, policy), {"Location": f"/carts/{cart_id}/holds"})


@router.get("/carts/<cart_id>/holds", summary="The cart's hold (404: the cart never held anything)")
def get_hold(cart_id: str):
    who = caller(router)
    hold = cart_holds.get_hold_for(default_ports(), who.sub, checked_cart_id(cart_id))
    return json_response(200, cart_holds.hold_view(hold, cart_holds.HoldPolicy.from_settings(get_settings())))


@router.delete("/carts/<cart_id>/holds",
               summary="Release the hold: its units go back on sale at once (an ended hold is answered as it is)")
def release_hold(cart_id: str):
    who = caller(router)
    hold = cart_holds.release_hold(default_ports(), who.sub, checked_cart_id(cart_id))
    return json_response(200, cart_holds.hold_view(hold, cart_holds.HoldPolicy.from_settings(get_settings())))
