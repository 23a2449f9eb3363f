"""GET /skus/{sku}: price and availability."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from shop.adapters.wiring import default_ports
from shop.domain.errors import NotFound
from shop.http.routes.common import checked_sku, json_response
from shop.services import pools
from shop.services.catalog import get_sku
from shop.services.presenters import public_sku_view
from shop.settings import get_settings

router = APIGatewayRouter()


@router.get("/skus/<sku>", summary="Price and availability of a SKU (the count as the shop's AVAILABILITY_DISPLAY allows)")
def read_sku(sku: str):
    ports = default_ports()
    found = get_sku(ports, checked_sku(sku))
    if not found.active:
        raise NotFound(f"no SKU {sku}", {"sku": sku})
    found = pools.with_today(ports, found, get_settings().shop_time_zone)  # a virtual SKU's daily cap left today
    return json_response(200, public_sku_view(found, get_settings().availability_rule()))
