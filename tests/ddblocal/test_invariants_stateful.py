"""Model-based test: random sequences of shop operations on DynamoDB Local, every SPEC invariant after each step.

Steps: create (shared SKUs, each provider), duplicate create, pay (each provider's signed webhook,
sometimes twice, sometimes with a wrong amount), late redelivery of an earlier webhook (reordered),
expire, cancel, refund (with or without restock), shipment (partial or whole), operator
adjustment (in the main warehouse or one of two others), delivery of queued restocks (sometimes twice),
moves between stock states (sellable, safety, damaged, quality hold), transfers between warehouses dispatched
and received (sometimes twice), physical counts approved (sometimes twice);
presale orders of INV-P (units taken from its presale pool at payment), presale cap changes and releases of
unsold presale units to spot stock; orders of the virtual INV-V (daily and total caps), total cap changes;
backorders of INV-A (orders beyond its sellable stock up to its backorder_limit, raised and lowered, below what waits
too; arrivals fill them, cancels and refunds release them, shipments never carry them).
Orders ship to addresses nearest one warehouse or another, so lines are taken per warehouse and split;
every level is checked per stock item (warehouse and shard), per warehouse and summed. Cart holds: place or
change, renew, release, expiry after the clock moved on, an order that takes a hold over. `make test` runs a bounded
number of examples; `make soak` (SOAK=1) runs the long profile.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, precondition, rule

from localrun.fake_providers import signed_webhook
from shop.domain import clock, refunds
from shop.domain.backorders import BACKORDER_ITEM
from shop.domain.cart_holds import hold_id_for
from shop.domain.errors import DomainError, InsufficientStock, InvalidTransition
from shop.domain.money import Money
from shop.domain.orders import OrderStatus
from shop.domain.stock_documents import ON_HAND_STATES, DocumentKind
from shop.domain.warehouses import LOCATIONS_PER_STATE, StockState, Warehouse, location_of, warehouse_index_of
from shop.payments.registry import PROVIDERS
from shop.domain.presale import PresaleTerms
from shop.domain.virtual import VirtualTerms, is_day_item
from shop.services import cart_holds, catalog, fulfilment, inventory, payments, pools, stock_ops, warehouses
from shop.services.orders import OrderPolicy, OrderRequest, PlaceOrder, expire_order, place_order, request_fingerprint
from shop.services.restock import RestockRequest, apply_restock
from shop.services.risk import SETTLED, RiskRules

pytestmark = pytest.mark.ddblocal
SKUS = ["INV-A", "INV-B", "INV-C", "INV-P", "INV-V"]
SHARDS = {"INV-A": 3, "INV-B": 1, "INV-C": 2, "INV-P": 2, "INV-V": 1}  # every invariant is checked over shards too
BACKORDERED = "INV-A"  # takes backorders: starts with fewer units than the others, so orders soon exceed them
OPENING = {BACKORDERED: 2}  # units each SKU starts with (6 unless named)
LIMITS = [3, 1, 0, 2, 5]  # INV-A's backorder_limit (3 at first): raised, lowered, below what waits, 0
DAILY_CAP = 4  # INV-V's (the test runs within one shop day; tests/ddblocal/test_presale_virtual_races.py crosses one)
PRESALE = PresaleTerms(3, "2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z", "2099-02-01")
ADDRESS = {"name": "P", "line1": "1", "city": "C", "postal_code": "1", "country": "US"}
ADDRESSES = [ADDRESS, {**ADDRESS, "region": "East"}, {**ADDRESS, "country": "CN", "region": "Shanghai"}]
WAREHOUSES = [None, "east", "cn"]  # None: the main warehouse
SOAK = bool(os.environ.get("SOAK"))
CHECKS = Counter()  # invariant checks run, for the closing figures
FILLED: set[str] = set()  # ledger entries of backorder fills seen
NO_RISK = RiskRules(large_amount=10**12, max_large_payments=99, window_seconds=1)
HOLD_POLICY = cart_holds.HoldPolicy(hold_seconds=900, max_seconds=1800)
CARTS = [("c0", "cart-a"), ("c1", "cart-a"), ("c1", "cart-b")]
OPEN = (OrderStatus.PENDING_PAYMENT, OrderStatus.ON_HOLD, OrderStatus.PAID, OrderStatus.PARTIALLY_SHIPPED)
SKEW = [0.0]  # seconds the shop's clock runs ahead of real time (the `later` rule moves it on)


class QueuedRestocks:
    def __init__(self):
        self.messages: list[RestockRequest] = []
        self.rebalances: list[str] = []

    def request_restock(self, message_id, sku, quantity, order_id, reason):
        self.messages.append(RestockRequest(message_id, sku, quantity, order_id, reason))

    def request_rebalance(self, sku):
        self.rebalances.append(sku)


def build_machine(ports_factory, fakes):
    class ShopMachine(RuleBasedStateMachine):
        orders = Bundle("orders")
        held_carts = Bundle("held_carts")  # carts a `hold` step ran for (an order names one of them)

        @initialize()
        def setup(self):
            self.ports = ports_factory()
            SKEW[0] = 0.0  # each example starts on time (a replay must see what the first run saw)
            self.ports.restock_queue = self.queue = QueuedRestocks()
            self.received = 0  # money the providers delivered for accepted events
            self.event_ids: set[str] = set()
            self.placed: dict[str, tuple] = {}
            self.sent: list[tuple] = []  # every webhook delivered so far, for late redelivery
            self.n = 0
            self.transfers: list[str] = []  # dispatched transfers, some received since
            self.shards = dict(SHARDS)
            self.limit = self.max_limit = 3  # INV-A's backorder_limit now, and the highest it ever was
            self.refused = None  # why the last create was refused
            warehouses.define_warehouse(self.ports, Warehouse("east", -1, "East", "US", serves=("US:East",)))
            warehouses.define_warehouse(self.ports, Warehouse("cn", -1, "Shanghai", "CN", serves=("CN",)))
            for code in SKUS:
                policy = "deduct_on_payment" if code == "INV-C" else "reserve_on_order"
                catalog.upsert_sku(self.ports, code, self._details(code, SHARDS[code]), actor="admin:t")
                catalog.adjust_stock(self.ports, code, OPENING.get(code, 6), reason="initial", actor="admin:t")
            pools.set_presale(self.ports, "INV-P", PRESALE, actor="admin:t")
            pools.set_virtual(self.ports, "INV-V", VirtualTerms(DAILY_CAP, 6), actor="admin:t", time_zone="UTC")

        def _details(self, code, shards):
            policy = "deduct_on_payment" if code == "INV-C" else "reserve_on_order"
            return catalog.SkuDetails(name=code, price=Money(700, "USD"), stock_policy=catalog.StockPolicy(policy),
                                      stock_shards=shards, backorder_limit=self.limit if code == BACKORDERED else 0)

        @rule(sku=st.sampled_from(SKUS), shards=st.integers(1, 4))
        def change_shards(self, sku, shards):
            """An operator changes how many stock items a SKU spreads over, while it is on sale."""
            catalog.upsert_sku(self.ports, sku, self._details(sku, shards), actor="admin:t")
            self.shards[sku] = shards
            CHECKS["shard_changes"] += 1

        @rule(limit=st.sampled_from(LIMITS))
        def set_backorder_limit(self, limit):
            """An operator raises or lowers INV-A's backorder_limit (below what waits too, or to 0: no new ones)."""
            waiting = self._allowance().reserved
            self.limit, self.max_limit = limit, max(self.max_limit, limit)
            catalog.upsert_sku(self.ports, BACKORDERED, self._details(BACKORDERED, self.shards[BACKORDERED]),
                               actor="admin:t")
            after = self._allowance()
            assert after.reserved == waiting  # what waits keeps waiting
            CHECKS["limits_below_waiting" if limit < waiting else "limit_changes"] += 1

        def _allowance(self):
            return self.ports.store.get_sku(BACKORDERED).shard_levels[BACKORDER_ITEM]

        def _levels_before(self):
            sku = self.ports.store.get_sku(BACKORDERED)
            return sku.levels.available, sku.shard_levels[BACKORDER_ITEM].reserved

        def _within_limit(self, before, order_id, *, from_hold=False):
            """An order backorders units only after taking every unit on sale, and only while the limit has room for
            them (what waited before + its own)."""
            line = next((line for line in self.ports.store.get_order(order_id).lines if line.sku == BACKORDERED), None)
            if line is not None and line.backordered:
                on_sale, waiting = before
                assert waiting + line.backordered <= self.limit, (before, line, self.limit)
                assert from_hold or line.quantity - line.backordered == on_sale, (before, line)
                CHECKS["backorders_placed"] += 1

        @rule(sku=st.sampled_from(SKUS))
        def rebalance(self, sku):
            inventory.rebalance(self.ports, sku)

        def _place(self, customer, key, items, provider, presale=frozenset()):
            address = ADDRESSES[int(key.removeprefix("k")) % len(ADDRESSES)]
            request = OrderRequest(items=items, shipping_address=address, payment_provider=provider, presale=presale)
            placing = PlaceOrder(customer, key, request, request_fingerprint({"items": items, "p": provider}))
            return place_order(self.ports, placing, OrderPolicy(0, 3600, time_zone="UTC"),
                               lambda o: PROVIDERS[o.payment_provider].create_payment(o))

        @rule(target=orders, items=st.lists(st.tuples(st.sampled_from(SKUS), st.integers(1, 3)), min_size=1,
                                            max_size=3, unique_by=lambda t: t[0]),
              provider=st.sampled_from(sorted(PROVIDERS)), presale=st.booleans())
        def create(self, items, provider, presale):
            self.n += 1
            key, customer = f"k{self.n}", f"c{self.n % 3}"
            chosen = frozenset({"INV-P"} if presale and any(code == "INV-P" for code, _ in items) else ())
            before = self._levels_before()
            try:
                placed = self._place(customer, key, items, provider, chosen)
            except DomainError as refused:
                self.refused = refused
                return None
            self._within_limit(before, placed.order_id)
            CHECKS["presale_orders"] += bool(chosen)
            CHECKS["virtual_orders"] += any(code == "INV-V" for code, _ in items)
            self.placed[placed.order_id] = (customer, key, items, provider, placed.body, chosen)
            return placed.order_id

        @rule(target=orders, beyond=st.integers(1, 3), paid=st.booleans(), arriving=st.integers(0, 3),
              warehouse=st.sampled_from(WAREHOUSES), parcel=st.sampled_from(["rest", "every"]),
              provider=st.sampled_from(sorted(PROVIDERS)))
        def backorder(self, beyond, paid, arriving, warehouse, parcel, provider):
            """An order of INV-A for more units than are on sale (the rest backordered while the limit allows),
            often paid at once; units may arrive (filling what waits, oldest first); then a parcel of what is ready
            or of every unit (refused while some wait)."""
            on_sale, waiting = self._levels_before()
            order_id = self.create([(BACKORDERED, on_sale + beyond)], provider, presale=False)
            if order_id is None and isinstance(self.refused, InsufficientStock):  # never refused while the limit had room
                assert self.limit - waiting < beyond, (self.refused, self.limit, waiting, beyond)
            if order_id is not None and paid:
                self.pay(order_id, twice=False, wrong_amount=False)
            if arriving:
                self.adjust(BACKORDERED, arriving, warehouse)
            if order_id is not None and paid:
                self.ship(order_id, parcel)
            return order_id

        @rule(order_id=orders)
        def duplicate_create(self, order_id):
            if order_id is None:
                return
            customer, key, items, provider, body, chosen = self.placed[order_id]
            again = self._place(customer, key, items, provider, chosen)
            assert again.order_id == order_id and again.body == body

        @rule(order_id=orders, twice=st.booleans(), wrong_amount=st.booleans())
        def pay(self, order_id, twice, wrong_amount):
            if order_id is None:
                return
            order = self.ports.store.get_order(order_id)
            amount = Money(order.total.amount + (1 if wrong_amount else 0), order.currency)
            self.n += 1
            headers, body = signed_webhook(fakes.keys, order.payment_provider, order_id, amount,
                                           event_id=f"evt{self.n}", payment_id=f"pay{self.n}")
            self.sent.append((order.payment_provider, headers, body, amount.amount))
            for _ in range(2 if twice else 1):
                self._deliver(order.payment_provider, headers, body, amount.amount)

        def _deliver(self, provider_name, headers, body, amount):
            provider = PROVIDERS[provider_name]
            event = provider.parse_webhook(dict(headers), body)
            outcome = payments.process_payment_event(self.ports, provider, event, NO_RISK)
            if event.event_id not in self.event_ids and outcome != "duplicate":
                self.event_ids.add(event.event_id)
                self.received += amount

        @precondition(lambda self: self.sent)
        @rule(pick=st.integers(0, 10**6))
        def redeliver_old_webhook(self, pick):
            """A provider retries an earlier notification after later ones (reordered and duplicated)."""
            self._deliver(*self.sent[pick % len(self.sent)])
            CHECKS["redeliveries"] += 1

        @rule(order_id=orders, parcel=st.sampled_from(["one", "rest", "every"]))
        def ship(self, order_id, parcel):
            """A shipment of one unit, of what is ready (no units named), or of every unit left by name."""
            if order_id is None:
                return
            order = self.ports.store.get_order(order_id)
            self.n += 1
            left, waiting = order.unshipped_units(), order.backordered_units()
            units = {"one": {order.lines[0].sku: 1}, "rest": None, "every": left}[parcel]
            try:
                fulfilment.ship_order(self.ports, order_id, units=units, carrier=None, tracking_number=None,
                                      key=f"sh{self.n}", actor="admin:t")
                CHECKS["shipments"] += 1
            except DomainError as refused:
                if parcel == "every" and waiting and order.status in (OrderStatus.PAID, OrderStatus.PARTIALLY_SHIPPED):
                    assert isinstance(refused, InvalidTransition) and refused.status == 409, refused
                    CHECKS["backordered_shipments_refused"] += 1
                return
            # Backordered units never ship: naming them is refused above, the rest ships only what is in stock.
            assert parcel != "every" or not waiting, (order, waiting)
            shipment = self.ports.store.get_order(order_id).shipments[-1]
            for unit in shipment.lines:
                assert unit.quantity <= left.get(unit.sku, 0) - waiting.get(unit.sku, 0), (unit, left, waiting)
            CHECKS["shipments_beside_backorders"] += bool(waiting)

        @rule(order_id=orders)
        def expire(self, order_id):
            if order_id is not None:
                expire_order(self.ports, order_id)

        @rule(order_id=orders)
        def cancel(self, order_id):
            if order_id is None:
                return
            customer = self.placed[order_id][0]
            try:
                payments.cancel(self.ports, lambda name: PROVIDERS[name], order_id, actor="customer:t",
                                reason="cancelled_by_customer", customer_id=customer)
            except DomainError:
                pass

        @rule(order_id=orders, restock=st.booleans(), partial=st.booleans())
        def refund(self, order_id, restock, partial):
            if order_id is None:
                return
            order = self.ports.store.get_order(order_id)
            self.n += 1
            lines = [(order.lines[0].sku, 1)] if partial else None
            try:
                payments.refund_order(self.ports, PROVIDERS[order.payment_provider], order_id, amount=None,
                                      lines=lines, restock=restock, reason="t", key=f"rf{self.n}", actor="admin:t")
            except DomainError:
                pass

        @rule(sku=st.sampled_from(SKUS), delta=st.integers(-3, 4).filter(bool), warehouse=st.sampled_from(WAREHOUSES))
        def adjust(self, sku, delta, warehouse):
            try:
                catalog.adjust_stock(self.ports, sku, delta, reason="count", actor="admin:t", warehouse=warehouse)
                CHECKS[f"adjust:{warehouse or 'main'}"] += 1
            except DomainError:
                pass

        @rule(operation=st.sampled_from(["move", "transfer", "receive", "count"]), sku=st.sampled_from(SKUS),
              route=st.permutations(WAREHOUSES), quantity=st.integers(1, 3), states=st.permutations(ON_HAND_STATES),
              counted=st.integers(0, 8), twice=st.booleans(), pick=st.integers(0, 10**6))
        def stock_operation(self, operation, sku, route, quantity, states, counted, twice, pick):
            """An operator's stock operation (one rule, so the other steps keep their share): a move between
            states, a transfer dispatched or received (sometimes twice), a count approved (sometimes twice)."""
            self.n += 1
            if operation == "move":
                self._move_state(sku, route[0], quantity, states)
            elif operation == "transfer":
                self._dispatch(sku, route, quantity)
            elif operation == "receive" and self.transfers:
                transfer = self.transfers[pick % len(self.transfers)]
                for _ in range(2 if twice else 1):
                    assert stock_ops.receive_transfer(self.ports, transfer, actor="admin:t").status == "received"
                CHECKS["transfers_received"] += 1
            elif operation == "count":
                self._count(sku, route[0], counted, twice)

        def _move_state(self, sku, warehouse, quantity, states):
            try:
                stock_ops.move_state(self.ports, sku, warehouse=warehouse, from_state=states[0], to_state=states[1],
                                     quantity=quantity, reason="t", reference="QC-1", actor="admin:t")
                CHECKS[f"move:{states[0].name.lower()}->{states[1].name.lower()}"] += 1
            except DomainError:
                pass

        def _dispatch(self, sku, route, quantity):
            try:
                sent, _ = stock_ops.dispatch_transfer(
                    self.ports, from_warehouse=route[0] or "main", to_warehouse=route[1] or "main",
                    lines=[(sku, quantity)], reference=None, actor="admin:t", request_id=f"t{self.n}")
                self.transfers.append(sent.doc_id)
                CHECKS["transfers_dispatched"] += 1
            except DomainError:
                pass

        def _count(self, sku, warehouse, counted, twice):
            made, _ = stock_ops.create_count(self.ports, lines=[(sku, warehouse or "main", counted)], reference=None,
                                             actor="admin:t", request_id=f"c{self.n}")
            try:
                for _ in range(2 if twice else 1):
                    approved = stock_ops.approve_count(self.ports, made.doc_id, actor="admin:t")
            except DomainError:  # fewer counted than reserved there: refused, nothing applied
                assert stock_ops.get_document(self.ports, made.kind, made.doc_id).status == "draft"
                return
            line = approved.body["lines"][0]
            assert line["on_hand"] + line["difference"] == counted
            applied = self._referencing(sku, made.doc_id)
            assert sum(m.delta.on_hand for m in applied) == line["difference"]  # exactly once
            CHECKS["counts_approved"] += 1

        def _referencing(self, code, reference):
            entries, cursor = [], None
            while True:
                page, cursor = self.ports.store.ledger(code, 100, cursor)
                entries += [m for m in page if m.reference == reference]
                if not cursor:
                    return entries

        @rule(cap=st.integers(0, 8))
        def presale_cap(self, cap):
            """An operator sets INV-P's presale cap (the pool becomes cap - sold, never below what is sold)."""
            pools.set_presale(self.ports, "INV-P", PresaleTerms(cap, PRESALE.starts_at, PRESALE.ends_at,
                                                                PRESALE.ships_on), actor="admin:t")

        @rule(quantity=st.integers(1, 3))
        def release_presale(self, quantity):
            try:
                pools.release_presale(self.ports, "INV-P", quantity, reason="arrived", actor="admin:t")
                CHECKS["presale_releases"] += 1
            except DomainError:
                pass

        @rule(total=st.integers(0, 10))
        def virtual_total_cap(self, total):
            pools.set_virtual(self.ports, "INV-V", VirtualTerms(DAILY_CAP, total), actor="admin:t", time_zone="UTC")

        @precondition(lambda self: self.queue.messages)
        @rule(twice=st.booleans())
        def deliver_restocks(self, twice):
            pending, self.queue.messages = self.queue.messages, []
            for message in pending + (pending if twice else []):
                apply_restock(self.ports, message)

        @rule(target=held_carts, cart=st.sampled_from(CARTS),
              items=st.lists(st.tuples(st.sampled_from(SKUS), st.integers(1, 3)), min_size=1, max_size=3,
                             unique_by=lambda t: t[0]))
        def hold(self, cart, items):
            try:
                cart_holds.place_hold(self.ports, cart[0], cart[1], items, HOLD_POLICY)
                CHECKS["holds_placed"] += 1
            except DomainError:
                pass
            return cart

        @rule(cart=st.sampled_from(CARTS))
        def renew_hold(self, cart):
            try:
                cart_holds.renew_hold(self.ports, cart[0], cart[1], HOLD_POLICY)
            except DomainError:
                pass

        @rule(cart=st.sampled_from(CARTS))
        def release_hold(self, cart):
            try:
                cart_holds.release_hold(self.ports, cart[0], cart[1])
            except DomainError:
                pass

        @rule(seconds=st.sampled_from([300, 1000]))
        def later(self, seconds):
            """Time passes; then the expiry messages (and the sweeper's) of every overdue hold arrive, some twice."""
            SKEW[0] += seconds
            for customer, cart in CARTS * 2:  # every hold's timer fires (twice): only overdue ones release
                try:
                    if cart_holds.expire_hold(self.ports, hold_id_for(customer, cart)) is not None:
                        CHECKS["holds_expired"] += 1
                except DomainError:  # never held, or not yet due
                    pass

        @rule(target=orders, cart=held_carts, extra=st.sampled_from([False, False, False, True]),
              provider=st.sampled_from(sorted(PROVIDERS)))
        def order_from_hold(self, cart, extra, provider):
            """An order naming the cart: its lines are the hold's (or, with `extra`, one unit more: refused)."""
            hold = self.ports.store.get_cart_hold(hold_id_for(*cart))
            items = [(line.sku, line.quantity + (1 if extra and n == 0 else 0))
                     for n, line in enumerate(hold.lines)] if hold else [("INV-A", 1)]
            self.n += 1
            key, before = f"k{self.n}", self._levels_before()
            request = OrderRequest(items=items, shipping_address=ADDRESS, payment_provider=provider, cart_id=cart[1])
            placing = PlaceOrder(cart[0], key, request, request_fingerprint({"items": items, "p": provider}))  # as _place
            try:
                placed = place_order(self.ports, placing, OrderPolicy(0, 3600),
                                     lambda o: PROVIDERS[o.payment_provider].create_payment(o))
            except DomainError:
                return None
            self._within_limit(before, placed.order_id, from_hold=True)
            if placed.body.get("cart_hold", {}).get("status") == "converted":
                CHECKS["holds_converted"] += 1
            self.placed[placed.order_id] = (cart[0], key, items, provider, placed.body, frozenset())
            return placed.order_id

        @invariant()
        def stock_and_money_reconcile(self):
            if not hasattr(self, "ports"):
                return
            CHECKS["checks"] += 1
            store = self.ports.store
            per_order: dict[str, Counter] = {}
            per_hold: Counter = Counter()
            reserved: dict[str, int] = {}
            for code in SKUS:
                sku = store.get_sku(code)
                assert sku.levels.is_consistent, sku.levels
                entries, cursor, totals = [], None, Counter()
                while True:
                    page, cursor = store.ledger(code, 100, cursor)
                    entries += page
                    if not cursor:
                        break
                assert all(levels.is_consistent for levels in sku.shard_levels.values())
                per_item: dict[int, Counter] = {}
                for e in entries:
                    totals.update(e.delta.to_dict())
                    per_item.setdefault(e.shard, Counter()).update(e.delta.to_dict())
                    if e.reason == "backorder_filled":
                        FILLED.add(e.movement_id)
                    if e.order_id and e.shard == BACKORDER_ITEM:  # backordered units reserved, filled or released
                        per_order.setdefault(e.order_id, Counter()).update(
                            {f"{code}.backordered": e.delta.reserved, f"{code}.sold": e.delta.sold,
                             # released while the order wanted them no more (refund, paid cancel): never sold
                             f"{code}.unwanted": -e.delta.reserved if e.reason == "backorder_cancelled" else 0})
                    elif e.order_id:
                        per_order.setdefault(e.order_id, Counter()).update(
                            {f"{code}.reserved": e.delta.reserved, f"{code}.sold": e.delta.sold})
                    elif e.reference:  # a cart hold's movement
                        per_hold[(e.reference, code)] += e.delta.reserved
                assert {k: totals[k] for k in ("on_hand", "available", "reserved", "sold")} == sku.all_levels.to_dict()
                # Per stock item (a warehouse's shard), hence per warehouse: its ledger sums to its levels.
                for item, levels in sku.shard_levels.items():
                    assert {k: per_item.get(item, Counter())[k] for k in levels.to_dict()} == levels.to_dict(), item
                # Per location (a warehouse in one state): sellable ones sum to the SKU's levels, all to all_levels.
                per_location: Counter = Counter()
                for item, levels in sku.shard_levels.items():
                    per_location[location_of(item)] += levels.on_hand
                    assert location_of(item) in sku.locations
                offered = set(sku.sellable_items())  # a virtual SKU's: its total cap
                assert sum(u for place, u in per_location.items() if place in sku.sellable_warehouses()) == \
                    sku.levels.on_hand
                # Spot orders never take from a presale pool, nor orders of a virtual SKU from its spot stock; only
                # the backorder allowance holds reservations beside the items offered.
                assert all(levels.reserved == 0 for item, levels in sku.shard_levels.items()
                           if item not in offered and item != BACKORDER_ITEM)
                if code == BACKORDERED:
                    # The allowance: on_hand = the limit (or what waits, when lowered below it), never sells.
                    allowance = sku.shard_levels[BACKORDER_ITEM]
                    assert allowance.is_consistent and allowance.sold == 0, allowance
                    assert allowance.on_hand == max(self.limit, allowance.reserved), (allowance, self.limit)
                    assert allowance.reserved <= self.max_limit
                    assert sku.backorder_limit == self.limit
                    CHECKS["most_waiting"] = max(CHECKS["most_waiting"], allowance.reserved)
                else:
                    assert BACKORDER_ITEM not in sku.shard_levels
                assert sum(per_location.values()) == sku.all_levels.on_hand
                # In transit: exactly the units of the transfers dispatched and not yet received, per destination.
                in_transit: Counter = Counter()
                for transfer_id in self.transfers:
                    transfer = stock_ops.get_document(self.ports, DocumentKind.TRANSFER, transfer_id)
                    if transfer.status == "dispatched":
                        in_transit[transfer.body["to_index"]] += sum(
                            line["quantity"] for line in transfer.body["lines"] if line["sku"] == code)
                assert {w: u for w, u in in_transit.items() if u} == {
                    place % LOCATIONS_PER_STATE: u for place, u in per_location.items()
                    if place // LOCATIONS_PER_STATE == StockState.IN_TRANSIT and u}
                CHECKS["warehouses_stocked"] = max(CHECKS["warehouses_stocked"], len(
                    {place for place, u in per_location.items() if place < LOCATIONS_PER_STATE and u}))
                CHECKS["locations_stocked"] = max(CHECKS["locations_stocked"], len([u for u in per_location.values() if u]))
                if sku.virtual is None and sku.presale is None:
                    reserved[code] = sku.levels.reserved
            # Each hold's reservation is what it holds while active, nothing once converted or released (ended
            # exactly once: a second release or a takeover after it would leave a negative sum here).
            for customer, cart in CARTS:
                hold = store.get_cart_hold(hold_id_for(customer, cart))
                for code in SKUS:
                    held = sum(a.units for line in hold.lines if line.sku == code for a in line.allocations) \
                        if hold and hold.active else 0
                    assert per_hold[(hold_id_for(customer, cart), code)] == held, (hold, code)
            # Every reserved unit has exactly one owner: an active hold or an order holding its reservation.
            owned: Counter = Counter()
            for (_, code), units in per_hold.items():
                owned[code] += units
            orders = {order_id: store.get_order(order_id) for order_id in self.placed}
            for order in orders.values():  # (backordered units are reserved on the allowance, checked below)
                owned.update({line.sku: units - line.backordered for line in order.lines
                              if (units := order.reserved_quantities().get(line.sku))})
            # (SKUs whose reservations are all spot stock: presale and virtual orders take other items)
            assert {code: owned[code] for code in reserved} == reserved
            taken = 0
            backordered = 0
            day_items: dict[int, Counter] = {}
            for order_id, order in orders.items():
                moves = per_order.get(order_id, Counter())
                held = order.reserved_quantities()
                # Units were sold iff the order accepted a payment of its own (automatic refunds give back
                # payments it refused).
                settled = order.payment_status in SETTLED and refunds.own_captured(order) > 0
                for line in order.lines:
                    days = [a for a in line.allocations if is_day_item(a.item)]
                    if line.virtual:  # one day item, for the whole line, while it holds or sold units
                        assert len(days) <= 1 and all(a.units == line.quantity for a in days)
                        if days:
                            day_items.setdefault(days[0].item, Counter())[order.status.value] += line.quantity
                    if line.presale_ships_on:  # presale: never reserved, sold from the pool only
                        assert all(a.item == PRESALE.item for a in line.allocations)
                    # Where the line's units are held: exactly its units, each on an item of the warehouse named.
                    if held.get(line.sku):
                        assert sum(a.units for a in line.allocations if a not in days) == line.quantity
                        registry = store.get_warehouses()
                        assert all(registry.code_of(warehouse_index_of(a.item)) == a.warehouse
                                   for a in line.allocations)
                    # Each reservation ends exactly once; expired or cancelled orders hold none. Backordered units
                    # stay reserved on the allowance, paid or not, until filled or no longer wanted.
                    # (an ended order's lines keep the record of what they held; it waits for nothing: shown as 0)
                    ended = order.status in (OrderStatus.EXPIRED, OrderStatus.CANCELLED)
                    waits, unwanted = 0 if ended else line.backordered, moves[f"{line.sku}.unwanted"]
                    assert moves[f"{line.sku}.reserved"] == (held[line.sku] - waits if line.sku in held else 0), \
                        (order.status, line)
                    assert moves[f"{line.sku}.backordered"] == waits, (order.status, line, moves)
                    backordered += waits
                    if waits:
                        assert line.sku == BACKORDERED, line
                        # Units waiting are still to ship (and never shipped: ship_order refuses them).
                        assert waits <= order.unshipped_units().get(line.sku, 0), (order, line)
                        CHECKS["orders_waiting"] += 1
                    if line.reserves_stock and not (line.virtual or line.presale_ships_on) and order.status in OPEN:
                        # Each unit wanted is on exactly one item: a sellable one or the allowance.
                        assert sum(a.units for a in line.allocations) + unwanted == line.quantity, (order, line)
                    returned = sum(u.quantity for r in order.refunds for u in r.restocked if u.sku == line.sku)
                    never_sold = waits + unwanted  # backordered units still waiting or released unsold
                    assert returned <= (line.quantity - never_sold if settled else 0)  # never more back than sold
                    delivered = not any(m.order_id == order_id for m in self.queue.messages)
                    expected_sold = (line.quantity - never_sold if settled else 0) - (returned if delivered else 0)
                    if delivered:
                        assert moves[f"{line.sku}.sold"] == expected_sold, (order.status, line, moves)
                if order.status in (OrderStatus.PAID, OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED):
                    assert settled  # every paid order holds its stock (sold above)
                if order.status in (OrderStatus.EXPIRED, OrderStatus.CANCELLED):
                    assert not held
                    # Never ended with money kept: everything paid is refunded (pending or done).
                    assert sum(r.amount for r in order.refunds) == order.amount_paid, order.refunds
                assert sum(r.amount for r in order.refunds) <= order.amount_paid
                assert not refunds.pending(order)  # the providers answer: nothing is left pending
                assert order.amount_refunded == sum(r.amount for r in order.refunds)
                taken += order.amount_paid
            # Every payment the providers delivered is on its order, automatic refunds included.
            assert self.received == taken, (self.received, taken)
            # The allowance's reservations are exactly the units orders wait for (each released once).
            assert allowance.reserved == backordered
            # Each day item of the virtual SKU: the daily cap as opening levels plus its ledger, never more used.
            for item in day_items:
                levels = store.shard_levels({"INV-V": [item]})["INV-V"][item]
                totals = Counter()
                for entry in store.ledger("INV-V", 100, None, items=[item])[0]:
                    totals.update(entry.delta.to_dict())
                assert levels.is_consistent and levels.reserved + levels.sold <= DAILY_CAP
                assert (levels.on_hand - totals["on_hand"], levels.available - totals["available"],
                        levels.reserved - totals["reserved"], levels.sold - totals["sold"]) == (DAILY_CAP, DAILY_CAP, 0, 0)
                CHECKS["day_items"] += 1

    return ShopMachine


def test_invariants_hold_under_random_operations(ddb_ports, provider_fakes, monkeypatch):
    from tests.ddblocal.conftest import Recorder
    from shop.services.ports import Ports

    def fresh_ports():
        # One table per test run; each example starts from its own SKUs and orders on it.
        import uuid

        import boto3

        from shop.adapters.dynamo_store import DynamoShopStore
        from shop.adapters.table_schema import create_table_kwargs

        table = f"inv-{uuid.uuid4().hex[:10]}"
        boto3.client("dynamodb").create_table(**create_table_kwargs(table))
        recorder = Recorder()
        return Ports(store=DynamoShopStore(table), events=recorder, windows=recorder, release_queue=recorder)

    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(seconds=SKEW[0]))
    machine = build_machine(fresh_ports, provider_fakes)
    machine.TestCase.settings = settings(
        max_examples=200 if SOAK else 12, stateful_step_count=40 if SOAK else 25, deadline=None,
        derandomize=not SOAK, database=None, suppress_health_check=list(HealthCheck))
    machine.TestCase().runTest()
    print(f"stateful: {CHECKS['checks']} invariant checks, all held; steps included "
          f"{CHECKS['redeliveries']} late webhook redeliveries and {CHECKS['shipments']} shipments and {CHECKS['shard_changes']} shard count changes; adjustments per warehouse "
          f"{ {k: v for k, v in CHECKS.items() if k.startswith('adjust:')} }, up to {CHECKS['warehouses_stocked']} "
          f"warehouses stocked per SKU, up to {CHECKS['locations_stocked']} locations (warehouse x state); "
          f"{CHECKS['transfers_dispatched']} transfers dispatched, {CHECKS['transfers_received']} received; "
          f"{CHECKS['counts_approved']} counts approved; moves { {k: v for k, v in CHECKS.items() if k.startswith('move:')} }; "
          f"{CHECKS['presale_orders']} presale orders, {CHECKS['presale_releases']} "
          f"presale releases, {CHECKS['virtual_orders']} orders of virtual goods, {CHECKS['day_items']} day-item checks" f"; cart holds: {CHECKS['holds_placed']} placed, {CHECKS['holds_converted']} converted, "
          f"{CHECKS['holds_expired']} expired; backorders: {CHECKS['backorders_placed']} orders placed with some, "
          f"{len(FILLED)} fill movements, "
          f"up to {CHECKS['most_waiting']} units waiting, {CHECKS['orders_waiting']} waiting order checks, "
          f"{CHECKS['limit_changes']} limit changes and {CHECKS['limits_below_waiting']} below what waited, "
          f"{CHECKS['shipments_beside_backorders']} shipments beside backordered units, "
          f"{CHECKS['backordered_shipments_refused']} refused for them")
