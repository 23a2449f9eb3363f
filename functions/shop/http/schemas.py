"""Request bodies. Unknown fields are rejected, so a client can never send a price, total or status."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints, model_validator

from shop.domain.after_sales import MAX_PHOTOS_ANY_SETTING, MAX_REASON_CHARS, AfterSaleType
from shop.domain.backorders import MAX_BACKORDER_LIMIT
from shop.domain.cart_holds import CART_ID_PATTERN
from shop.domain.orders import MAX_LINES_PER_ORDER, MAX_QUANTITY_PER_LINE
from shop.domain.skus import MAX_STOCK_SHARDS, SKU_PATTERN, StockPolicy
from shop.domain.warehouses import WAREHOUSE_CODE_PATTERN
from shop.payments.registry import PROVIDERS

SkuCode = Annotated[str, StringConstraints(pattern=SKU_PATTERN)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
# From the registry: a new provider module is accepted here without touching this file.
if TYPE_CHECKING:
    PaymentProvider = str
else:  # pydantic checks the value is one of the registry's names
    PaymentProvider = Literal[tuple(PROVIDERS)]


class Strict(BaseModel):
    """Unknown fields are errors; integers must be JSON integers (no "2", 2.0 or true)."""

    model_config = ConfigDict(extra="forbid")


class OrderItemIn(Strict):
    sku: SkuCode
    quantity: StrictInt = Field(ge=1, le=MAX_QUANTITY_PER_LINE)
    presale: StrictBool = Field(default=False, description="From the SKU's presale pool (its window must be open; "
                                                            "units taken at payment, shipped around `ships_on`)")


class ShippingAddress(Strict):
    name: ShortText
    line1: ShortText
    line2: Annotated[str, StringConstraints(max_length=200)] | None = None
    city: ShortText
    region: Annotated[str, StringConstraints(max_length=100)] | None = None
    postal_code: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    phone: Annotated[str, StringConstraints(max_length=32, pattern=r"^[0-9+() .-]*$")] | None = None


class CreateOrderIn(Strict):
    items: list[OrderItemIn] = Field(min_length=1, max_length=MAX_LINES_PER_ORDER)
    shipping_address: ShippingAddress
    payment_provider: PaymentProvider | None = Field(
        default=None, description="Who takes the payment; omitted: the deployment's default provider "
                                  "(DEFAULT_PAYMENT_PROVIDER, else the first enabled one; the local run: sandbox)")
    payment_window_seconds: StrictInt | None = Field(
        default=None, ge=60, le=10**7, description="A different payment window; never beyond the configured maximum "
                                                   "nor a SKU's own window")
    cart_id: Annotated[str, StringConstraints(pattern=CART_ID_PATTERN)] | None = Field(
        default=None, description="The cart whose hold (POST /carts/{cart_id}/holds) the order takes over: its lines "
                                  "must be exactly the hold's (else 409 cart-hold-mismatch). A cart with no active "
                                  "hold changes nothing: the order reserves like any other")


class CartHoldIn(Strict):
    """Either the cart's lines to hold (they replace what the cart held: a SKU left out is released), or
    `{"renew": true}`: the live hold's expiry moves to CART_HOLD_SECONDS from now, within CART_HOLD_MAX_SECONDS of
    its placement (409 cart-hold-not-active once it ended or expired)."""

    items: list[OrderItemIn] | None = Field(default=None, min_length=1, max_length=MAX_LINES_PER_ORDER)
    renew: Literal[True] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> CartHoldIn:
        if (self.items is None) == (self.renew is None):
            raise ValueError("give either items (the lines to hold) or renew: true")
        return self


class ReorderIn(Strict):
    shipping_address: ShippingAddress | None = None
    payment_provider: PaymentProvider | None = None


class MoneyIn(Strict):
    amount: StrictInt = Field(ge=0, le=10**12)
    currency: Currency


class SkuIn(Strict):
    name: ShortText
    price: MoneyIn
    active: StrictBool = True
    stock_policy: StockPolicy = StockPolicy.RESERVE_ON_ORDER
    max_per_order: StrictInt | None = Field(default=None, ge=1, le=MAX_QUANTITY_PER_LINE)
    low_stock_threshold: StrictInt | None = Field(default=None, ge=0, le=10**9)
    on_hand: StrictInt | None = Field(default=None, ge=0, le=10**9)
    payment_window_seconds: StrictInt | None = Field(
        default=None, ge=60, le=10**7, description="This SKU's payment window; never beyond the configured maximum")
    stock_shards: StrictInt = Field(
        default=1, ge=1, le=MAX_STOCK_SHARDS,
        description="Stock items the SKU's stock is spread over, so concurrent orders do not queue on one item "
                    "(about 500 orders/s each on AWS); changeable while on sale")
    backorder_limit: StrictInt = Field(
        default=0, ge=0, le=MAX_BACKORDER_LIMIT,
        description="Units that may be sold beyond sellable stock at once, reserved until stock arrives "
                    "(the order line says how many are backordered); 0: none. Needs stock_policy reserve_on_order")


class AdjustmentIn(Strict):
    delta: StrictInt = Field(ge=-(10**9), le=10**9)
    reason: ShortText
    warehouse: Annotated[str, StringConstraints(pattern=WAREHOUSE_CODE_PATTERN)] | None = Field(
        default=None, description="Where the units are (a warehouse's code); omitted: the main warehouse")


class WarehouseIn(Strict):
    name: ShortText
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = Field(
        description="Where the warehouse is (ISO 3166-1 alpha-2)")
    serves: list[Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}(:[^:]{1,100})?$")]] = Field(
        default_factory=list, max_length=200,
        description="Where it ships first: countries (CN) or country:region pairs (CN:Shanghai, matched with "
                    "the shipping address's region, case-insensitively)")
    priority: StrictInt = Field(default=100, ge=0, le=10**6, description="Lower is preferred among equally near ones")
    address: dict[str, Annotated[str, StringConstraints(max_length=200)]] = Field(default_factory=dict, max_length=10)
    active: StrictBool = True


class RefundLineIn(Strict):
    sku: SkuCode
    quantity: StrictInt = Field(ge=1, le=MAX_QUANTITY_PER_LINE)


class ShipmentIn(Strict):
    """One parcel. Without lines, every unit in stock not yet shipped (nor refunded by line) goes in it:
    backordered units ship once stock has filled them (asking for them is 409)."""

    lines: list[RefundLineIn] | None = Field(default=None, min_length=1, max_length=MAX_LINES_PER_ORDER)
    carrier: Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)] | None = None
    tracking_number: Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True,
                                                      pattern=r"^[A-Za-z0-9 ._/-]+$")] | None = None
    # The carrier company at an aggregator carrier: Kuaidi100 `com` (e.g. shunfeng, zhongtong), AfterShip `slug`.
    carrier_code: Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[a-z0-9-]+$")] | None = None
    warehouse: Annotated[str, StringConstraints(pattern=WAREHOUSE_CODE_PATTERN)] | None = Field(
        default=None, description="Where the parcel ships from; needed only when the order's units to ship sit in "
                                  "several warehouses and the parcel's lines do not say which (without lines: "
                                  "every unit still to ship from there)")


class RefundIn(Strict):
    """Full refund when neither amount nor lines is given; by lines, the amount is their catalog price."""

    amount: MoneyIn | None = None
    lines: list[RefundLineIn] | None = Field(default=None, min_length=1, max_length=MAX_LINES_PER_ORDER)
    restock: StrictBool = False
    reason: ShortText = "refund"


PhotoType = Literal["image/jpeg", "image/png", "image/webp"]  # shop.domain.after_sales.PHOTO_TYPES


class AfterSaleIn(Strict):
    """A customer's after-sales request. `photos` evidence photos are uploaded straight to S3 with the presigned
    POSTs of the answer (at most AFTER_SALES_MAX_PHOTOS); each is image/jpeg unless `photo_types` names its type."""

    type: AfterSaleType
    lines: list[RefundLineIn] = Field(min_length=1, max_length=MAX_LINES_PER_ORDER)
    reason: Annotated[str, StringConstraints(min_length=1, max_length=MAX_REASON_CHARS, strip_whitespace=True)]
    photos: StrictInt = Field(default=0, ge=0, le=MAX_PHOTOS_ANY_SETTING)
    photo_types: list[PhotoType] | None = Field(default=None, max_length=MAX_PHOTOS_ANY_SETTING)


class AfterSaleRejectIn(Strict):
    reason: ShortText


IsoTimeText = Annotated[str, StringConstraints(min_length=10, max_length=40,
                                               pattern=r"^\d{4}-\d{2}-\d{2}T[0-9:.]+(Z|[+-]\d{2}:\d{2})$")]


class PresaleIn(Strict):
    cap: StrictInt = Field(ge=0, le=10**9, description="Units the presale may sell in all (sold + still offered)")
    starts_at: IsoTimeText = Field(description="ISO 8601 time with Z or an offset: orders accepted from then ...")
    ends_at: IsoTimeText = Field(description="... until then (excluded)")
    ships_on: Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")] = Field(
        description="Expected ship date (YYYY-MM-DD)")
    warehouse: Annotated[str, StringConstraints(pattern=WAREHOUSE_CODE_PATTERN)] | None = Field(
        default=None, description="Whose presale location holds the pool; omitted: the main warehouse")


class PresaleReleaseIn(Strict):
    quantity: StrictInt = Field(ge=1, le=10**9)
    reason: ShortText


class VirtualIn(Strict):
    daily_cap: StrictInt | None = Field(default=None, ge=0, le=10**9,
                                        description="Units per day of the shop's time zone (SHOP_TIME_ZONE)")
    total_cap: StrictInt | None = Field(default=None, ge=0, le=10**9,
                                        description="Units in all (sold + still offered)")


# ---- stock operations (docs/stock-operations.md) ----
WarehouseCode = Annotated[str, StringConstraints(pattern=WAREHOUSE_CODE_PATTERN)]
Reference = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/#-]{0,63}$")]
OnHandState = Literal["sellable", "safety", "damaged", "quality_hold"]
StockUnits = Annotated[int, Field(ge=1, le=10**9, strict=True)]


class StockMoveIn(Strict):
    warehouse: WarehouseCode | None = Field(default=None, description="omitted: the main warehouse")
    from_state: OnHandState
    to_state: OnHandState
    quantity: StockUnits
    reason: ShortText
    reference: Reference | None = Field(default=None, description="The document behind the move (a QC report, ...)")


class DeliveryIn(Strict):
    warehouse: WarehouseCode | None = Field(default=None, description="omitted: the main warehouse")
    quantity: StockUnits
    expected_on: Annotated[str, StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")]
    reference: Reference | None = Field(default=None, description="e.g. the purchase order")


class DeliveryReceiptIn(Strict):
    received: StrictInt | None = Field(default=None, ge=0, le=10**9, description="omitted: every unit expected")
    to_state: Literal["sellable", "quality_hold"] = "sellable"


class TransferLineIn(Strict):
    sku: SkuCode
    quantity: StockUnits


class TransferIn(Strict):
    from_warehouse: WarehouseCode
    to_warehouse: WarehouseCode
    lines: list[TransferLineIn] = Field(min_length=1, max_length=20)
    reference: Reference | None = None


class CountLineIn(Strict):
    sku: SkuCode
    warehouse: WarehouseCode = "main"
    counted: Annotated[int, Field(ge=0, le=10**9, strict=True)]


class CountIn(Strict):
    lines: list[CountLineIn] = Field(min_length=1, max_length=20)
    reference: Reference | None = None
