"""Operator routes (group admin): the shop's warehouses (docs/warehouses.md)."""

from __future__ import annotations

from typing import Any

from shop.adapters.wiring import default_ports
from shop.domain.warehouses import Warehouse, validate_code
from shop.http.auth import AdminRouter
from shop.http.routes.common import json_response
from shop.http.schemas import WarehouseIn
from shop.services import warehouses

router = AdminRouter()  # every route here needs the admin group


def warehouse_view(warehouse: Warehouse) -> dict[str, Any]:
    return {"code": warehouse.code, "name": warehouse.name, "country": warehouse.country,
            "serves": list(warehouse.serves), "priority": warehouse.priority, "address": warehouse.address,
            "active": warehouse.active}


@router.put("/admin/warehouses/<code>", summary="Define or redefine a warehouse (address, regions served, priority)")
def put_warehouse(code: str, body: WarehouseIn):
    saved, created = warehouses.define_warehouse(default_ports(), Warehouse(
        code=validate_code(code), index=-1, name=body.name, country=body.country, serves=tuple(body.serves),
        priority=body.priority, address=dict(body.address), active=body.active))
    return json_response(201 if created else 200, warehouse_view(saved))


@router.get("/admin/warehouses", summary="The shop's warehouses (the main one first)")
def list_warehouses():
    return json_response(200, {"items": [warehouse_view(w) for w in warehouses.list_warehouses(default_ports())]})
