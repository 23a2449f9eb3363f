"""Reading an operators' CSV import file: the whole file is checked before any row is applied.

Columns (header row, names case-insensitive, any order):
- `sku` (required) and at least one other;
- `name`, `price` (minor units: 1999 for 19.99), `currency`: required for a SKU that does not exist yet; for an
  existing one, a column the file lacks or an empty cell keeps its value (price and currency go together);
- `warehouse`: the warehouse (code) whose sellable stock `on_hand` sets; empty or absent: the main one. A SKU
  may be on several rows, one per warehouse, with the same terms on each;
- optional terms: active, stock_policy, low_stock_threshold, max_per_order, payment_window_seconds,
  stock_shards, backorder_limit. A column the file does not have keeps each SKU's current value (a new SKU: the default of
  PUT /admin/skus/{sku}); an empty cell sets the default (no threshold, no per-order limit, active,
  reserve_on_order, one shard, no backorders);
- `on_hand`: the warehouse's sellable stock to set (a ledgered adjustment); empty or absent: stock untouched;
- `state`, if present, must be `sellable` (or empty) on every row: other stock states move only by their own
  ledgered movements;
- ignored: the read-only columns the exports write (available, reserved, sold, availability, stock_state,
  created_at, updated_at, total_on_hand, total_available, total_reserved, total_sold), so GET /admin/skus.csv
  (terms) and GET /admin/stock.csv (levels per warehouse) can be edited and imported back.

Every row is validated with the same model as PUT /admin/skus/{sku} (shop.http.schemas.SkuIn). A bad file is
one 422 problem listing every bad row as {line, field, message} (line 1 is the header; a quoted cell spanning
lines counts from the line it starts on), and nothing is applied.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from shop.domain.errors import DomainError, Unprocessable
from shop.domain.money import Money
from shop.domain.skus import SKU_TERMS, Sku, is_valid_sku_code
from shop.domain.warehouses import MAIN_WAREHOUSE
from shop.http.schemas import SkuIn
from shop.services.imports import ImportRow

MAX_IMPORT_BYTES = 1024 * 1024
MAX_IMPORT_ROWS = 5000
MAX_ERRORS = 1000  # listed in the answer (each bad row once per bad field; `errors_total` counts them all)
REQUIRED = ("sku",)
NEW_SKU = ("name", "price", "currency")  # required for a SKU that does not exist yet
OPTIONAL = (*NEW_SKU, "warehouse", "active", "stock_policy", "low_stock_threshold", "max_per_order",
            "payment_window_seconds", "stock_shards", "backorder_limit", "on_hand", "state")
IGNORED = ("available", "reserved", "sold", "availability", "stock_state", "created_at", "updated_at",
           "total_on_hand", "total_available", "total_reserved", "total_sold")
INTEGERS = ("price", "low_stock_threshold", "max_per_order", "payment_window_seconds", "stock_shards",
            "backorder_limit", "on_hand")
_INTEGER = re.compile(r"^[+-]?\d{1,15}$")
_TRUE, _FALSE = ("true", "1", "yes", "y"), ("false", "0", "no", "n")


class ImportTooLarge(DomainError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class ImportInvalid(Unprocessable):
    slug, title = "import-invalid", "The file has invalid rows; nothing was applied"


def file_id(data: bytes, idempotency_key: str | None = None) -> str:
    """The file's id: sha256 of its bytes, and of the Idempotency-Key when one is sent (a new key applies the
    same bytes again, e.g. the same stock count a week later)."""
    digest = hashlib.sha256(data)
    if idempotency_key:
        digest.update(b"\x00" + idempotency_key.encode())
    return digest.hexdigest()


Lookup = Callable[[list[str]], dict[str, Sku]]


def read_rows(data: bytes, *, max_window: int, existing: Lookup, warehouses: frozenset[str] | set[str]
              ) -> list[ImportRow]:
    """The file's rows, validated; ImportInvalid listing every bad row, ImportTooLarge beyond the limits.
    `existing(codes)`: the catalog entries of those codes that exist; `warehouses`: the warehouse codes."""
    records = _records(data)
    (_, header), body = records[0], records[1:]
    columns = [name.strip().lower() for name in header]
    header_errors = _header_errors(columns)
    if header_errors:
        raise _invalid(header_errors)
    if not body:
        raise _invalid([{"line": 2, "field": None, "message": "the file has no rows besides its header"}])
    sku_column = columns.index("sku")
    codes = sorted({cells[sku_column].strip() for _, cells in body if len(cells) == len(columns)
                    and is_valid_sku_code(cells[sku_column].strip())})
    catalog = existing(codes) if codes else {}
    errors: list[dict[str, Any]] = []
    rows: list[ImportRow] = []
    seen: dict[tuple[str, str], int] = {}
    first: dict[str, ImportRow] = {}
    for line, cells in body:
        row, row_errors = _row(line, columns, cells, max_window, catalog, warehouses)
        if row is not None and (row.sku, row.warehouse) in seen:
            row_errors.append({"line": line, "field": "sku", "message": f"{row.sku} in warehouse {row.warehouse} "
                                                                         f"is already on line {seen[(row.sku, row.warehouse)]}"})
        elif row is not None and row.sku in first and first[row.sku].terms != row.terms:
            row_errors.append({"line": line, "field": None, "message": f"{row.sku} is on line {first[row.sku].line} "
                                                                       "with other terms (one SKU, one set of terms)"})
        if row_errors:
            errors.extend(row_errors)
        elif row is not None:
            seen[(row.sku, row.warehouse)] = line
            first.setdefault(row.sku, row)
            rows.append(row)
    if errors:
        raise _invalid(errors)
    return rows


def _records(data: bytes) -> list[tuple[int, list[str]]]:
    """(line the record starts on, its cells) of each non-blank record; at least the header."""
    if len(data) > MAX_IMPORT_BYTES:
        raise ImportTooLarge(f"an import file is at most {MAX_IMPORT_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as bad:
        line = data[:bad.start].count(b"\n") + 1
        raise _invalid([{"line": line, "field": None, "message": "the file is not UTF-8 text"}]) from None
    if "\x00" in text:
        raise _invalid([{"line": text[:text.index("\x00")].count("\n") + 1, "field": None,
                         "message": "the file holds a NUL character"}])
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []
    try:
        line = 1
        for record in reader:
            if record:  # blank lines are skipped
                records.append((line, record))
            if len(records) > MAX_IMPORT_ROWS + 1:
                raise ImportTooLarge(f"an import file has at most {MAX_IMPORT_ROWS} rows besides its header")
            line = reader.line_num + 1
    except csv.Error as bad:
        raise _invalid([{"line": reader.line_num, "field": None, "message": f"not valid CSV: {bad}"}]) from None
    if not records:
        raise _invalid([{"line": 1, "field": None, "message": "the file is empty: a header row is required"}])
    return records


def _invalid(errors: list[dict[str, Any]]) -> ImportInvalid:
    bad_lines = sorted({e["line"] for e in errors})
    return ImportInvalid(f"{len(bad_lines)} bad row(s) (lines {', '.join(map(str, bad_lines[:20]))}"
                         f"{', ...' if len(bad_lines) > 20 else ''}); nothing was applied",
                         {"errors": errors[:MAX_ERRORS], "errors_total": len(errors),
                          "fields": sorted({e["field"] for e in errors if e["field"]})})


def _header_errors(columns: list[str]) -> list[dict[str, Any]]:
    known = (*REQUIRED, *OPTIONAL, *IGNORED)
    errors = [{"line": 1, "field": name[:64], "message": f"unknown column (columns: {', '.join((*REQUIRED, *OPTIONAL))})"}
              for name in columns if name not in known]
    errors += [{"line": 1, "field": name, "message": "column given more than once"}
               for name in sorted({n for n in columns if columns.count(n) > 1})]
    errors += [{"line": 1, "field": name, "message": "required column missing"} for name in REQUIRED if name not in columns]
    if ("price" in columns) != ("currency" in columns):
        errors.append({"line": 1, "field": "currency" if "price" in columns else "price",
                       "message": "price and currency go together"})
    if not errors and not set(columns) - {"sku", "warehouse", "state", *IGNORED}:
        errors.append({"line": 1, "field": None, "message": "nothing to import: no terms and no on_hand column"})
    return errors


def _cell_errors(line: int, given: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Each cell as its type (integers, booleans), or the errors."""
    errors: list[dict[str, Any]] = []
    values: dict[str, Any] = {}
    for name, cell in given.items():
        if name in INTEGERS and cell != "":
            if _INTEGER.match(cell):
                values[name] = int(cell)
            else:
                errors.append({"line": line, "field": name, "message": "must be a whole number"
                               + (" (minor units: 1999 for 19.99)" if name == "price" else "")})
        elif name == "active" and cell != "":
            if cell.lower() in _TRUE + _FALSE:
                values[name] = cell.lower() in _TRUE
            else:
                errors.append({"line": line, "field": name, "message": "must be true or false"})
        else:
            values[name] = cell
    return values, errors


def _row(line: int, columns: list[str], cells: list[str], max_window: int, catalog: dict[str, Sku],
         warehouses: frozenset[str] | set[str]) -> tuple[ImportRow | None, list[dict[str, Any]]]:
    if len(cells) != len(columns):
        return None, [{"line": line, "field": None,
                       "message": f"{len(cells)} cells where the header has {len(columns)} columns"}]
    given = {name: cell.strip() for name, cell in zip(columns, cells, strict=True) if name not in IGNORED}
    values, errors = _cell_errors(line, given)
    code, warehouse = values["sku"], values.get("warehouse") or MAIN_WAREHOUSE
    if not is_valid_sku_code(code):
        errors.append({"line": line, "field": "sku", "message": "SKU codes are 1-64 letters, digits, '.', '_' or '-'"})
    if warehouse not in warehouses:
        errors.append({"line": line, "field": "warehouse", "message": f"no warehouse {warehouse[:40]} "
                                                                      "(PUT /admin/warehouses/{code} defines one)"})
    if values.get("state", "") not in ("", "sellable"):
        errors.append({"line": line, "field": "state", "message": "only sellable stock is imported (other states "
                                                                  "move by their own ledgered movements)"})
    current = catalog.get(code)
    missing = [name for name in NEW_SKU if given.get(name, "") == ""]
    if current is None and missing:
        errors.append({"line": line, "field": missing[0], "message": "a new SKU needs name, price and currency"})
    elif current is not None and (given.get("price", "") == "") != (given.get("currency", "") == ""):
        errors.append({"line": line, "field": "currency", "message": "price and currency go together"})
    # Empty cells take PUT's defaults (the field left out of the body); the name and price of an existing SKU
    # that the row does not give are its own. Fields already found bad are checked no further (placeholders).
    reported = {e["field"] for e in errors}
    body = {k: v for k, v in values.items()
            if v != "" and k not in ("sku", "price", "currency", "warehouse", "state")}
    body.setdefault("name", current.name if current is not None else "-")
    keep_price = given.get("price", "") == ""
    price = ({"amount": current.price.amount, "currency": current.price.currency} if keep_price and current
             else {"amount": values.get("price", 0), "currency": values.get("currency", "")})
    body["price"] = {"amount": 0 if "price" in reported or keep_price and not current else price["amount"],
                     "currency": "XXX" if "currency" in reported or keep_price and not current else price["currency"]}
    try:
        model = SkuIn.model_validate(body)
    except ValidationError as bad:
        errors += [{"line": line, "field": _field(e["loc"]), "message": e["msg"]} for e in bad.errors()
                   if _field(e["loc"]) not in reported]
        return None, errors
    if errors:
        return None, errors
    if model.payment_window_seconds is not None and model.payment_window_seconds > max_window:
        return None, [{"line": line, "field": "payment_window_seconds", "message": f"must be at most {max_window}"}]
    terms: dict[str, Any] = {name: getattr(model, name) for name in SKU_TERMS
                             if name in given and name not in NEW_SKU}
    if values.get("name", "") != "":
        terms["name"] = model.name
    if not keep_price:
        terms["price"] = Money(model.price.amount, model.price.currency)
    return ImportRow(line, code, terms, model.on_hand, warehouse), []


def _field(loc: tuple[Any, ...]) -> str:
    if loc[:1] == ("price",):
        return "currency" if loc[1:2] == ("currency",) else "price"
    return str(loc[0]) if loc else ""
