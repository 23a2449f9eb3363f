"""Warehouses: operators define them; orders take each line from the nearest one holding it.

The registry is one small record; the order path reads it only for SKUs stocked in more than the main
warehouse, and then from the store's short-lived cache (`get_warehouses(cached=True)`): a warehouse
defined a moment ago may be passed over for that moment, never a unit oversold (stock writes are
conditional on the item itself).
"""

from __future__ import annotations

from typing import Any

from shop.domain.errors import NotFound
from shop.domain.skus import Sku
from shop.domain.warehouses import MAIN_WAREHOUSE, Warehouse, Warehouses, validate_code
from shop.services.allocation import StockLayout
from shop.services.ports import Ports
from shop.services.retry import with_retries


def layouts_for(ports: Ports, skus: dict[str, Sku], address: dict[str, Any] | None, *, backorders: bool = False
                ) -> tuple[dict[str, StockLayout], Warehouses]:
    """Per SKU, its warehouses nearest to `address` first and its live shards; and the registry used. With
    `backorders` (placing an order), SKUs that allow them may reserve the rest on their backorder allowance."""
    registry = ports.store.get_warehouses(cached=True) if any(s.sellable_warehouses() != (0,) for s in skus.values()) \
        else Warehouses()
    country, region = (address or {}).get("country"), (address or {}).get("region")
    return {code: StockLayout(registry.rank(sku.sellable_warehouses(), country, region),
                              sku.stock_shards if sku.virtual is None else 1,  # a virtual SKU's total cap: one item
                              backorders=backorders and sku.takes_backorders)
            for code, sku in skus.items()}, registry


def define_warehouse(ports: Ports, warehouse: Warehouse) -> tuple[Warehouse, bool]:
    """Create or redefine one warehouse (conditional on the registry's version); (saved, created)."""
    validate_code(warehouse.code)

    def attempt() -> tuple[Warehouse, bool]:
        registry = ports.store.get_warehouses()
        created = registry.get(warehouse.code) is None
        updated = registry.with_warehouse(warehouse)
        ports.store.save_warehouses(updated)  # StaleWrite when someone else saved first: read again
        return updated.by_code[warehouse.code], created

    return with_retries(attempt)


def list_warehouses(ports: Ports) -> list[Warehouse]:
    registry = ports.store.get_warehouses()
    return sorted(registry.by_code.values(), key=lambda w: (w.code != MAIN_WAREHOUSE, w.priority, w.code))


def warehouse_index(ports: Ports, code: str | None) -> int:
    """The index of a warehouse named by an operator (None: the main one); 404 when it does not exist."""
    if code is None or code == MAIN_WAREHOUSE:
        return 0
    found = ports.store.get_warehouses().get(code)
    if found is None:
        raise NotFound(f"no warehouse {code}", {"warehouse": code})
    return found.index
