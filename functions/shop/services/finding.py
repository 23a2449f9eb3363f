"""Finding orders and SKUs: the operators' filters, the customers' lookups, the CSV export.

Every filter is answered by an index (see adapters/table_schema.py), never a Scan: an order number is a
key lookup; a phone, a customer, a customer in a status, a status or nothing each have their own index
partition(s), and the dates are a range of their sort key.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from shop.domain.errors import Unprocessable
from shop.domain.orders import Order, OrderStatus
from shop.services.ports import Ports

# `GET /admin/skus?low_stock=`: true lists SKUs at or below their threshold and sold-out ones (what needs
# restocking), false the others.
LOW_STOCK_STATES = ("low_stock", "sold_out")
IN_STOCK_STATES = ("in_stock",)


@dataclass(frozen=True)
class OrderFilters:
    status: OrderStatus | None = None
    customer_id: str | None = None
    created_from: str | None = None  # ISO 8601 date or UTC time, inclusive
    created_to: str | None = None  # inclusive: a date means the whole day
    order_number: str | None = None
    phone_digest: str | None = None  # the keyed digest of the phone asked for (adapters/phones.py)

    def matches(self, order: Order) -> bool:
        return ((self.status is None or order.status is self.status)
                and (self.customer_id is None or order.customer_id == self.customer_id)
                and (self.created_from is None or order.created_at >= self.created_from)
                and (self.created_to is None or order.created_at <= self.created_to + "\uffff")
                and (self.phone_digest is None or order.phone_digest == self.phone_digest))


def time_bound(value: str | None) -> str | None:
    """A `from`/`to` value as a prefix of the stored `created_at` ("2026-11-30T09:27:25.304Z", UTC): a date or
    a UTC time as given without its Z (so `from=...T09:27:25Z` keeps the orders of that second and `to` covers
    the whole unit given: a day, a minute, a second); a time with an offset turned into UTC (milliseconds)."""
    if not value or "T" not in value:
        return value or None
    time = value[value.index("T"):]
    if time.endswith("Z"):
        return value[:-1]
    if "+" in time or "-" in time or " " in time:
        from datetime import UTC, datetime

        try:
            moment = datetime.fromisoformat(value[:10] + time.replace(" ", "+"))
        except ValueError:  # e.g. February 31st, which the pattern lets through
            raise Unprocessable("from/to must be real dates and times", {"fields": ["from", "to"]}) from None
        return moment.astimezone(UTC).isoformat(timespec="milliseconds").removesuffix("+00:00")
    return value


def order_by_number(ports: Ports, order_number: str) -> Order | None:
    """The order with this number (as issued: upper case; typed in lower case it still matches), or None."""
    order_id = ports.store.order_id_by_number(order_number.upper())
    return ports.store.get_order(order_id) if order_id else None


def find_orders(ports: Ports, filters: OrderFilters, limit: int, cursor: str | None) -> tuple[list[Order], str | None]:
    """One page of the orders matching every filter, newest first, and the cursor of the next page (None
    at the end). A page with a cursor always has orders."""
    filters = replace(filters, created_from=time_bound(filters.created_from), created_to=time_bound(filters.created_to))
    if filters.created_from and filters.created_to and filters.created_from > filters.created_to + "\uffff":
        raise Unprocessable("'from' must not be after 'to'", {"fields": ["from", "to"]})
    if filters.order_number:  # unique: one order or none, never a cursor
        order = order_by_number(ports, filters.order_number)
        return ([order] if order and filters.matches(order) else []), None
    return ports.store.orders(
        status=filters.status.value if filters.status else None, customer_id=filters.customer_id,
        created_from=filters.created_from, created_to=filters.created_to, limit=limit, cursor=cursor,
        phone_digest=filters.phone_digest)


# ---- CSV export ----------------------------------------------------------------------------------

CSV_COLUMNS = ("order_number", "order_id", "created_at", "updated_at", "status", "payment_status",
               "fulfillment_status", "customer_id", "currency", "total_amount", "amount_paid", "amount_refunded",
               "units", "lines", "payment_provider", "ship_to_country", "shipments")
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection, OWASP): such a
# cell is written with a leading apostrophe, which spreadsheets show as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
TRUNCATED_MARKER = "#truncated"
EXPORT_PAGE = 100


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_row(order: Order) -> list[Any]:
    """One order as a row: money in minor units with the currency in its own column; no name, phone or
    street (an export leaves the system: only the country of the address)."""
    return [safe_cell(v) for v in (
        order.order_number, order.order_id, order.created_at, order.updated_at, order.status.value,
        order.payment_status, order.fulfillment_status, order.customer_id, order.currency, order.total.amount,
        order.amount_paid, order.amount_refunded, sum(line.quantity for line in order.lines),
        "; ".join(f"{line.sku} x{line.quantity}" for line in order.lines), order.payment_provider,
        (order.shipping_address or {}).get("country", ""), len(order.shipments))]


@dataclass(frozen=True)
class CsvExport:
    text: str
    rows: int
    truncated: bool


def write_csv(columns: Iterable[str], rows: Iterable[list[Any]], max_rows: int, note: str) -> CsvExport:
    """RFC 4180 CSV (CRLF line ends, fields quoted when they hold a comma, quote or line break) of `rows`,
    each cell guarded by `safe_cell`. At most `max_rows` rows: when `rows` has more, the last record is
    `#truncated` with `note`, and `truncated` is set (the routes say so in a header too)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    count, truncated = 0, False
    for row in rows:
        if count >= max_rows:
            truncated = True
            break
        writer.writerow([safe_cell(v) for v in row])
        count += 1
    if truncated:
        writer.writerow([TRUNCATED_MARKER, note])
    return CsvExport(out.getvalue(), count, truncated)


def export_orders_csv(ports: Ports, filters: OrderFilters, max_rows: int) -> CsvExport:
    """The matching orders, newest first, as CSV (`write_csv`), read page by page from the indexes."""
    return write_csv(CSV_COLUMNS, (csv_row(order) for order in _all_matching(ports, filters)), max_rows,
                     f"more orders match than the export limit of {max_rows} rows; narrow the range with from/to")


def _all_matching(ports: Ports, filters: OrderFilters) -> Iterator[Order]:
    cursor: str | None = None
    while True:
        found, cursor = find_orders(ports, filters, EXPORT_PAGE, cursor)
        yield from found
        if not cursor:
            return
