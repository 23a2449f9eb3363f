"""Response shapes, for the OpenAPI document (the presenters in services/presenters.py build them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel


class MoneyOut(BaseModel):
    amount: int
    currency: str


class ShipsFromOut(BaseModel):
    warehouse: str
    quantity: int


class LinePresaleOut(BaseModel):
    ships_on: str  # the expected ship date of a presale line (YYYY-MM-DD)


class OrderLineOut(BaseModel):
    sku: str
    name: str
    quantity: int
    unit_price: MoneyOut
    line_total: MoneyOut
    ships_from: list[ShipsFromOut]
    presale: LinePresaleOut | None = None  # a presale line: units from the presale pool, taken at payment
    virtual: bool = False  # virtual goods: sold against caps, never shipped
    backordered: int = 0  # units sold beyond stock, waiting for it: they ship once it arrives


class ShipmentLineOut(BaseModel):
    sku: str
    quantity: int


class CheckpointOut(BaseModel):
    at: str
    status: str
    description: str | None = None
    location: str | None = None


class ShipmentOut(BaseModel):
    shipment_id: str
    lines: list[ShipmentLineOut]
    carrier: str | None
    tracking_number: str | None
    at: str
    warehouse: str  # where the parcel ships from
    actor: str
    # Courier status (docs/fulfilment.md); None for a free-text parcel nobody follows.
    status: Literal["label_created", "in_transit", "out_for_delivery", "delivery_failed", "available_for_pickup",
                    "delivered", "returning", "returned", "exception", "stale"] | None = None
    carrier_code: str | None = None
    status_changed_at: str | None = None
    checkpoints: list[CheckpointOut] = []


class AdminShipmentOut(ShipmentOut):
    label_url: str | None = None  # a presigned GET of the label PDF, valid a few minutes
    tracking: dict[str, Any] | None = None  # booking and polling state


class OrderOut(BaseModel):
    order_id: str
    order_number: str
    status: Literal["PENDING_PAYMENT", "PAID", "ON_HOLD", "PARTIALLY_SHIPPED", "SHIPPED", "DELIVERED", "COMPLETED",
                    "CANCELLED", "EXPIRED"]
    payment_status: str
    fulfillment_status: str
    currency: str
    lines: list[OrderLineOut]
    total: MoneyOut
    payment_provider: str
    payment: dict[str, Any]
    shipping_address: dict[str, Any]
    created_at: str
    updated_at: str
    expires_at: str
    history: list[dict[str, Any]]
    amount_paid: MoneyOut
    amount_refunded: MoneyOut
    refunds: list[dict[str, Any]]
    hold_reason: str | None
    shipments: list[ShipmentOut]
    after_sales: list[AfterSaleSummaryOut]


class AfterSaleLineOut(BaseModel):
    sku: str
    quantity: int


class AfterSaleSummaryOut(BaseModel):
    """One request as its order shows it (GET /orders/{order_id} `after_sales`, GET /orders/{order_id}/after-sales)."""

    after_sale_id: str
    type: Literal["refund_only", "return_and_refund"]
    status: Literal["requested", "approved", "rejected", "received"]
    lines: list[AfterSaleLineOut]
    created_at: str
    updated_at: str
    source: Literal["customer", "carrier"]
    decision_reason: str | None
    refund: dict[str, Any] | None


class AfterSalePage(BaseModel):
    items: list[AfterSaleSummaryOut]
    next_cursor: str | None


class UploadOut(BaseModel):
    """A presigned S3 POST: send `fields` and then the file (field `file`) as multipart/form-data to `url`."""

    url: str
    fields: dict[str, str]
    key: str
    content_type: Literal["image/jpeg", "image/png", "image/webp"]
    max_bytes: int


class AfterSaleOut(BaseModel):
    after_sale_id: str
    order_id: str
    type: Literal["refund_only", "return_and_refund"]
    status: Literal["requested", "approved", "rejected", "received"]
    lines: list[AfterSaleLineOut]
    reason: str
    photos: Any  # the count for the customer; [{key, content_type, url}] for operators
    source: Literal["customer", "carrier"]
    decision_reason: str | None
    created_at: str
    updated_at: str
    refund: dict[str, Any] | None
    history: list[dict[str, Any]]
    uploads: list[UploadOut] | None = None  # the answer to POST /orders/{order_id}/after-sales


class AdminAfterSaleOut(AfterSaleOut):
    customer_id: str
    shipment_id: str | None
    version: int
    order_status: str
    open_after_sales: int


class AdminAfterSalePage(BaseModel):
    items: list[AdminAfterSaleOut]
    next_cursor: str | None


class AdminOrderOut(OrderOut):
    customer_id: str
    shipments: list[AdminShipmentOut]  # type: ignore[assignment]  # narrower: each parcel with its label link
    complete_after: str | None = None  # DELIVERED: when it completes by itself
    shipment: AdminShipmentOut | None = None  # POST .../shipments: the parcel this request recorded


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None


class AdminOrderPage(BaseModel):
    items: list[AdminOrderOut]
    next_cursor: str | None


class PresaleOut(BaseModel):
    # Units left in the presale pool (apart from spot `available`); null when the shop's availability display
    # hides counts (as for `available`; operators always see it).
    available: int | None
    status: Literal["upcoming", "open", "ended"]  # the sale window now
    starts_at: str
    ends_at: str
    ships_on: str  # expected ship date (YYYY-MM-DD)


class BackorderOut(BaseModel):
    # Units that may still be ordered beyond `available` (they ship once stock arrives); null when the shop's
    # availability display hides counts.
    available: int | None


class SkuOut(BaseModel):
    sku: str
    name: str
    price: MoneyOut
    available: int | None = Field(description=(
        "Units available to order. Null when the shop's availability display hides the count: "
        "AVAILABILITY_DISPLAY=coarse (never shown), or only_n_left above the SKU's low_stock_threshold "
        "(or the shop-wide AVAILABILITY_ONLY_N_LEFT_THRESHOLD); exact (the default) always shows it. A virtual SKU: what its total and today's caps still allow"))
    availability: Literal["in_stock", "low_stock", "sold_out"]
    stock_policy: Literal["reserve_on_order", "deduct_on_payment"]
    max_per_order: int | None
    kind: Literal["physical", "virtual"] = "physical"
    presale: PresaleOut | None = None  # the SKU's presale, None without one
    backorder: BackorderOut | None = None  # None when the SKU takes no backorders


class LevelsOut(BaseModel):
    on_hand: int
    available: int
    reserved: int
    sold: int


class ShardOut(LevelsOut):
    shard: int  # within its warehouse
    warehouse: str
    live: bool  # new orders take from it (a shard beyond stock_shards is being emptied)


class WarehouseLevelsOut(LevelsOut):
    warehouse: str


class StateLevelsOut(LevelsOut):
    warehouse: str
    state: Literal["presale", "safety", "damaged", "quality_hold", "incoming", "in_transit", "virtual",
                   "backorder"]


class PresaleTermsOut(BaseModel):
    cap: int  # units the presale may sell: sold from the pool plus still offered
    starts_at: str
    ends_at: str
    ships_on: str
    warehouse: str  # whose presale location holds the pool


class VirtualTermsOut(BaseModel):
    daily_cap: int | None  # per day of the shop's time zone (SHOP_TIME_ZONE)
    total_cap: int | None


class AdminSkuOut(SkuOut):
    available: int = Field(description="Units available to order (operators always see the exact count)")
    active: bool
    low_stock_threshold: int | None
    payment_window_seconds: int | None
    levels: LevelsOut
    stock_state: Literal["in_stock", "low_stock", "sold_out"]
    stock_shards: int
    backorder_limit: int = 0  # units that may be sold beyond sellable stock at once
    backordered: int = 0  # units sold and waiting for stock (reserved on the backorder allowance)
    warehouses: list[WarehouseLevelsOut]  # the SKU's sellable stock per warehouse (levels: their sum)
    other_states: list[StateLevelsOut]  # stock not for sale (presale, safety, damaged, ...) per warehouse
    shards: list[ShardOut]
    presale_terms: PresaleTermsOut | None = None
    virtual: VirtualTermsOut | None = None
    created_at: str
    updated_at: str


class AdminSkuPage(BaseModel):
    items: list[AdminSkuOut]
    next_cursor: str | None


class OrdersCsv(RootModel[str]):
    """RFC 4180 CSV (text/csv), one order per row, money in minor units with a currency column."""


class SkusCsv(RootModel[str]):
    """RFC 4180 CSV (text/csv), one SKU per row: its terms (the import's columns), levels, state and times."""


class StockCsv(RootModel[str]):
    """RFC 4180 CSV (text/csv), one SKU per row: on_hand, available, reserved, sold, availability, stock_shards."""


class LedgerCsv(RootModel[str]):
    """RFC 4180 CSV (text/csv), one ledger entry per row (its delta in four columns), oldest first per SKU."""


class ImportRowOut(BaseModel):
    line: int
    sku: str
    warehouse: str  # whose sellable stock the row's on_hand sets (main unless the row names one)
    status: Literal["applied", "skipped", "failed", "pending"]  # skipped: applied by an earlier post of the file
    created: bool | None = None  # applied: the SKU is new
    on_hand: int | None = None  # applied: the warehouse's sellable on_hand after the row
    problem: str | None = None  # failed: the problem type's slug (e.g. insufficient-stock, conflict)
    message: str | None = None  # failed: why


class ImportOut(BaseModel):
    file_id: str  # sha256 of the file (and of its Idempotency-Key): a re-post of the same file skips applied rows
    rows: int
    applied: int
    skipped: int
    failed: int
    pending: int  # not reached within this request's time budget: post the same file again
    complete: bool  # no row pending
    results: list[ImportRowOut]


class LedgerEntryOut(BaseModel):
    sku: str
    shard: int  # within its warehouse
    warehouse: str
    state: Literal["sellable", "presale", "safety", "damaged", "quality_hold", "incoming", "in_transit", "virtual",
                   "backorder"]
    at: str
    actor: str
    reason: str
    order_id: str | None
    delta: LevelsOut
    movement_id: str
    reference: str | None  # the document behind a movement without an order (an import file's id, a cart hold's id)


class LedgerPage(BaseModel):
    items: list[LedgerEntryOut]
    next_cursor: str | None


class WaitingOrderOut(BaseModel):
    order_id: str
    units: int  # backordered units of this SKU still waiting
    backordered_at: str  # when it first backordered the SKU: the fill order


class BackorderWaitingOut(BaseModel):
    sku: str
    backorder_limit: int
    waiting_orders: int  # all of them
    waiting_units: int
    items: list[WaitingOrderOut]  # the first `limit`, in the order they will be filled


class PresaleReleaseOut(BaseModel):
    sku: AdminSkuOut
    ledger_entries: list[LedgerEntryOut]  # out of the pool, into spot stock (one transaction)


class AdjustmentOut(BaseModel):
    sku: AdminSkuOut
    ledger_entry: LedgerEntryOut  # the first (units removed may come from several shards)
    ledger_entries: list[LedgerEntryOut]


class ReconciliationTotalsOut(BaseModel):
    count: int
    totals: dict[str, int]  # currency -> minor units


class ReconciliationStatementOut(BaseModel):
    rows: int
    checks: list[str]  # what the file was verified against (hash, its own summary, complete pages)
    payments: ReconciliationTotalsOut
    refunds: ReconciliationTotalsOut
    fees: ReconciliationTotalsOut
    other_rows: int


class ReconciliationSideOut(BaseModel):
    amount: MoneyOut
    status: str
    at: str
    reference: str | None
    type: str | None = None  # the provider's own row type
    refund_id: str | None = None  # ours: the refund's id (the provider's idempotency key)


class ReconciliationDifferenceOut(BaseModel):
    mismatch_id: str  # stable across re-runs (also in the reconciliation.mismatch event)
    category: Literal["amount_differs", "status_differs", "missing_here", "missing_at_provider", "duplicate_charge"]
    kind: Literal["payment", "refund"]
    order_id: str | None
    reference: str | None
    detail: str
    late_payment: bool
    order_status: str | None
    provider: ReconciliationSideOut | None
    ours: ReconciliationSideOut | None
    action: str  # "reported", or for a late payment "refunded" / "refund_pending" / "refund_failed: ..."


class ProviderReconciliationOut(BaseModel):
    provider: str
    date: str
    timezone: str
    status: Literal["completed", "failed"]
    ran_at: str
    window: dict[str, str]  # the business day as UTC instants: from, to
    grace_seconds: int | None = None  # records this close after midnight belong to the day before
    statement: ReconciliationStatementOut | None
    counts: dict[str, int]  # matched and each category of difference
    differences: list[ReconciliationDifferenceOut]
    differences_truncated: bool
    error: dict[str, str] | None  # a failed run: reason (hash-mismatch, summary-mismatch, ...) and detail


class ReconciliationOut(BaseModel):
    date: str
    providers: list[ProviderReconciliationOut]


class Problem(BaseModel):
    """RFC 9457 problem details; extension members (fields, skus, shortages...) may follow."""

    type: str
    title: str
    status: int
    detail: str

    model_config = {"extra": "allow"}


class NotificationOut(BaseModel):
    notification_id: str
    type: str  # the domain event it tells of, e.g. order.shipped
    subject: str
    body: str
    locale: Literal["zh-CN", "en"]
    order_id: str | None
    created_at: str


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None


class NotificationPreferencesOut(BaseModel):
    locale: Literal["zh-CN", "en"] | None
    email: str | None
    phone: str | None
    email_enabled: bool
    sms_enabled: bool


class WarehouseOut(BaseModel):
    code: str
    name: str
    country: str
    serves: list[str]
    priority: int
    address: dict[str, Any]
    active: bool


class WarehouseList(BaseModel):
    items: list[WarehouseOut]


class StockMoveOut(BaseModel):
    sku: AdminSkuOut
    ledger_entries: list[LedgerEntryOut]


class StockDocumentOut(BaseModel):
    """A delivery, transfer or count: its id, status and what it says (by kind: docs/stock-operations.md)."""

    model_config = ConfigDict(extra="allow")
    id: str
    kind: Literal["delivery", "transfer", "count"]
    status: Literal["expected", "dispatched", "draft", "received", "approved"]
    reference: str | None = None
    created_at: str
    updated_at: str
    created_by: str


class StockDocumentList(BaseModel):
    items: list[StockDocumentOut]


class CartHoldLineOut(BaseModel):
    sku: str
    quantity: int


class CartHoldOut(BaseModel):
    hold_id: str
    cart_id: str
    status: Literal["active", "converted", "released"]
    lines: list[CartHoldLineOut]
    created_at: str
    updated_at: str
    expires_at: str = Field(description="When the held units go back on sale unless renewed or ordered")
    max_expires_at: str = Field(description="The latest a renewal can move expires_at to (CART_HOLD_MAX_SECONDS)")
    ended_by: str | None = Field(description="converted: the order id; released: released_by_customer or expired")
    version: int
