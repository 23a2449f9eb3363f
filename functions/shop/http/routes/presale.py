"""Operator routes (group admin): a SKU's presale pool and virtual caps (docs/presale-and-virtual.md)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Header

from shop.adapters.wiring import default_ports
from shop.domain.presale import PresaleTerms
from shop.domain.virtual import VirtualTerms
from shop.http.auth import AdminRouter, caller
from shop.http.routes.common import checked_sku, json_response
from shop.http.schemas import PresaleIn, PresaleReleaseIn, VirtualIn
from shop.services import pools, warehouses
from shop.services.orders import request_fingerprint
from shop.services.presenters import admin_sku_view, movement_view
from shop.settings import get_settings

router = AdminRouter()  # every route here needs the admin group


@router.put("/admin/skus/<sku>/presale",
            summary="Set a SKU's presale: cap, sale window, expected ship date (the pool is set to the cap, ledgered)")
def put_presale(sku: str, body: PresaleIn):
    who = caller(router)
    ports = default_ports()
    terms = PresaleTerms(cap=body.cap, starts_at=body.starts_at, ends_at=body.ends_at, ships_on=body.ships_on,
                         warehouse=warehouses.warehouse_index(ports, body.warehouse))
    saved = pools.set_presale(ports, checked_sku(sku), terms, actor=who.actor)
    return json_response(200, admin_sku_view(saved, ports.store.get_warehouses(cached=True)))


@router.post("/admin/skus/<sku>/presale/release",
             summary="Move unsold presale units to spot stock (one ledgered movement; lowers the presale cap)")
def release_presale(sku: str, body: PresaleReleaseIn,
                    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None):
    who = caller(router)
    request_id = request_fingerprint(["presale_release", who.sub, idempotency_key]) if idempotency_key else None
    ports = default_ports()
    released = pools.release_presale(ports, checked_sku(sku), body.quantity, reason=body.reason, actor=who.actor,
                                     request_id=request_id)
    registry = ports.store.get_warehouses(cached=True)
    return json_response(201, {"sku": admin_sku_view(released.sku, registry),
                               "ledger_entries": [movement_view(m, registry) for m in released.movements]})


@router.put("/admin/skus/<sku>/virtual",
            summary="Make a SKU virtual goods: sold against a daily cap (shop's time zone) and/or a total cap")
def put_virtual(sku: str, body: VirtualIn):
    who = caller(router)
    ports = default_ports()
    settings = get_settings()
    saved = pools.set_virtual(ports, checked_sku(sku), VirtualTerms(body.daily_cap, body.total_cap),
                              actor=who.actor, time_zone=settings.shop_time_zone)
    return json_response(200, admin_sku_view(pools.with_today(ports, saved, settings.shop_time_zone),
                                             ports.store.get_warehouses(cached=True)))
