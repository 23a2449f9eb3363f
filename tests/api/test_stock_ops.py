"""Stock beyond sellable (issue 16): moves between states (safety, damaged, quality hold), expected deliveries
received once, transfers between warehouses (in transit meanwhile), physical counts approved once. Every movement
is ledgered with its reason and reference; the ledger sums to every item's levels."""

from __future__ import annotations

from tests.api.test_orders_api import ADDRESS, make_sku
from tests.api.test_warehouses import define, place, stock


def view(api, sku="TEE"):
    return api.admin("GET", f"/admin/skus/{sku}").json()


def states(api, sku="TEE"):
    """(warehouse, state) -> on_hand, sellable and other states alike."""
    current = view(api, sku)
    found = {(w["warehouse"], "sellable"): w["on_hand"] for w in current["warehouses"]}
    found.update({(s["warehouse"], s["state"]): s["on_hand"] for s in current["other_states"]})
    return {key: units for key, units in found.items() if units}


def ledger(api, sku="TEE"):
    entries = api.admin("GET", f"/admin/skus/{sku}/ledger?limit=100").json()["items"]
    return entries


def assert_ledger_sums_to_levels(api, sku="TEE"):
    totals: dict[tuple[str, str], int] = {}
    for entry in ledger(api, sku):
        key = (entry["warehouse"], entry["state"])
        totals[key] = totals.get(key, 0) + entry["delta"]["on_hand"]
    assert {k: v for k, v in totals.items() if v} == states(api, sku)


def move(api, body, key=None, sku="TEE"):
    headers = {"Idempotency-Key": key} if key else {}
    return api.admin("POST", f"/admin/skus/{sku}/stock-moves", body=body, headers=headers)


def test_units_move_between_states_ledgered_with_reason_and_reference_and_only_sellable_ones_sell(api):
    make_sku(api, "TEE", on_hand=10)
    moved = move(api, {"from_state": "sellable", "to_state": "damaged", "quantity": 3, "reason": "dropped",
                       "reference": "QC-7"}, key="k1")
    assert moved.status == 201, moved.text
    entries = moved.json()["ledger_entries"]
    assert [(e["state"], e["delta"]["on_hand"], e["reference"], e["reason"]) for e in entries] == [
        ("sellable", -3, "QC-7", "dropped"), ("damaged", 3, "QC-7", "dropped")]
    assert moved.json()["sku"]["levels"]["available"] == 7
    # The same request again (same key) moves nothing more.
    assert move(api, {"from_state": "sellable", "to_state": "damaged", "quantity": 3, "reason": "dropped",
                      "reference": "QC-7"}, key="k1").status == 201
    assert move(api, {"from_state": "sellable", "to_state": "safety", "quantity": 5, "reason": "buffer"}).status == 201
    assert states(api) == {("main", "sellable"): 2, ("main", "damaged"): 3, ("main", "safety"): 5}
    assert api.request("GET", "/skus/TEE", user="alice").json()["available"] == 2  # safety stock is never offered
    assert place(api, "alice", ADDRESS, 3).status == 409
    assert place(api, "bob", ADDRESS, 2).status == 201
    # Short source: 409, nothing moved; unknown warehouse: 404; invalid: 422.
    short = move(api, {"from_state": "damaged", "to_state": "sellable", "quantity": 4, "reason": "repaired"})
    assert short.status == 409, short.text
    assert move(api, {"warehouse": "nowhere", "from_state": "sellable", "to_state": "damaged", "quantity": 1,
                      "reason": "x"}).status == 404
    for bad in ({"from_state": "sellable", "to_state": "sellable", "quantity": 1, "reason": "x"},
                {"from_state": "incoming", "to_state": "sellable", "quantity": 1, "reason": "x"},
                {"from_state": "sellable", "to_state": "damaged", "quantity": 0, "reason": "x"},
                {"from_state": "sellable", "to_state": "damaged", "quantity": 1, "reason": "x", "reference": "a b"},
                {"from_state": "sellable", "to_state": "damaged", "quantity": 1}):
        assert move(api, bad).status == 422, bad
    assert move(api, {"from_state": "damaged", "to_state": "quality_hold", "quantity": 3, "reason": "inspect"},
                sku="NOPE").status == 404
    assert move(api, {"from_state": "damaged", "to_state": "sellable", "quantity": 1, "reason": "repaired"}).status == 201
    assert states(api) == {("main", "sellable"): 3, ("main", "damaged"): 2, ("main", "safety"): 5}
    assert view(api)["levels"] == {"on_hand": 3, "available": 1, "reserved": 2, "sold": 0}
    assert_ledger_sums_to_levels(api)


def test_expected_deliveries_are_listed_by_date_and_received_once(api):
    define(api, "sh")
    make_sku(api, "TEE", on_hand=0)
    late = api.admin("POST", "/admin/skus/TEE/incoming", headers={"Idempotency-Key": "po-2"},
                     body={"warehouse": "sh", "quantity": 6, "expected_on": "2026-12-20", "reference": "PO-2"})
    assert late.status == 201, late.text
    again = api.admin("POST", "/admin/skus/TEE/incoming", headers={"Idempotency-Key": "po-2"},
                      body={"warehouse": "sh", "quantity": 6, "expected_on": "2026-12-20", "reference": "PO-2"})
    assert again.status == 200 and again.json()["id"] == late.json()["id"]
    soon = api.admin("POST", "/admin/skus/TEE/incoming", body={"quantity": 4, "expected_on": "2026-12-05"}).json()
    assert soon["status"] == "expected" and soon["warehouse"] == "main"
    listed = api.admin("GET", "/admin/skus/TEE/incoming").json()["items"]
    assert [(d["expected_on"], d["quantity"], d["warehouse"]) for d in listed] == [
        ("2026-12-05", 4, "main"), ("2026-12-20", 6, "sh")]
    assert states(api) == {("main", "incoming"): 4, ("sh", "incoming"): 6}
    assert view(api)["levels"]["available"] == 0  # incoming units are not sellable
    assert place(api, "alice", ADDRESS, 1).status == 409

    delivery = late.json()["id"]
    received = api.admin("POST", f"/admin/deliveries/{delivery}/receive", body={"received": 5})
    assert received.status == 200, received.text
    assert received.json()["status"] == "received" and received.json()["received"] == 5
    # A retry (or a second receipt) applies nothing again.
    assert api.admin("POST", f"/admin/deliveries/{delivery}/receive", body={}).json()["received"] == 5
    assert api.admin("POST", f"/admin/deliveries/{soon['id']}/receive", body={"to_state": "quality_hold"}).status == 200
    assert states(api) == {("sh", "sellable"): 5, ("main", "quality_hold"): 4}
    assert api.admin("GET", "/admin/skus/TEE/incoming").json()["items"] == []
    assert api.admin("GET", f"/admin/deliveries/{delivery}").json()["reference"] == "PO-2"
    reasons = [(e["reason"], e["reference"], e["delta"]["on_hand"]) for e in ledger(api) if e["warehouse"] == "sh"]
    assert ("delivery_short", delivery, -1) in reasons and ("delivery_received", delivery, 5) in reasons
    assert_ledger_sums_to_levels(api)

    assert api.admin("POST", "/admin/skus/TEE/incoming",
                     body={"warehouse": "nowhere", "quantity": 1, "expected_on": "2026-12-05"}).status == 404
    assert api.admin("POST", "/admin/skus/TEE/incoming", body={"quantity": 1, "expected_on": "5 Dec"}).status == 422
    assert api.admin("GET", "/admin/deliveries/dlv_00000000").status == 404
    assert api.admin("GET", "/admin/deliveries/trf_00000000").status == 422
    over = api.admin("POST", "/admin/skus/TEE/incoming", body={"quantity": 1, "expected_on": "2026-12-05"}).json()
    assert api.admin("POST", f"/admin/deliveries/{over['id']}/receive", body={"received": 2}).status == 422
    assert api.admin("POST", f"/admin/deliveries/{over['id']}/receive", body={"to_state": "damaged"}).status == 422


def test_a_transfer_moves_units_out_at_dispatch_and_in_at_receipt_once(api):
    define(api, "sh", serves=["CN:Shanghai"])
    make_sku(api, "TEE", on_hand=8)
    make_sku(api, "CAP", on_hand=2)
    sent = api.admin("POST", "/admin/transfers", headers={"Idempotency-Key": "t1"}, body={
        "from_warehouse": "main", "to_warehouse": "sh", "reference": "TR-1",
        "lines": [{"sku": "TEE", "quantity": 5}, {"sku": "CAP", "quantity": 2}]})
    assert sent.status == 201, sent.text
    transfer = sent.json()
    assert transfer["status"] == "dispatched" and transfer["lines"] == [{"sku": "TEE", "quantity": 5},
                                                                         {"sku": "CAP", "quantity": 2}]
    assert api.admin("POST", "/admin/transfers", headers={"Idempotency-Key": "t1"}, body={
        "from_warehouse": "main", "to_warehouse": "sh", "reference": "TR-1",
        "lines": [{"sku": "TEE", "quantity": 5}, {"sku": "CAP", "quantity": 2}]}).status == 200  # retried: once
    assert states(api) == {("main", "sellable"): 3, ("sh", "in_transit"): 5}
    assert view(api)["levels"]["available"] == 3  # in transit: sold by neither warehouse
    assert api.admin("GET", f"/admin/transfers/{transfer['id']}").json()["status"] == "dispatched"

    received = api.admin("POST", f"/admin/transfers/{transfer['id']}/receive")
    assert received.status == 200 and received.json()["status"] == "received"
    assert api.admin("POST", f"/admin/transfers/{transfer['id']}/receive").json()["status"] == "received"
    assert states(api) == {("main", "sellable"): 3, ("sh", "sellable"): 5}
    assert states(api, "CAP") == {("sh", "sellable"): 2}
    assert {e["reference"] for e in ledger(api) if e["reason"].startswith("transfer_")} == {transfer["id"]}
    assert_ledger_sums_to_levels(api)
    assert_ledger_sums_to_levels(api, "CAP")

    body = {"from_warehouse": "main", "to_warehouse": "sh", "lines": [{"sku": "TEE", "quantity": 4}]}
    assert api.admin("POST", "/admin/transfers", body=body).status == 409  # main has 3
    assert api.admin("POST", "/admin/transfers", body={**body, "to_warehouse": "nowhere"}).status == 404
    assert api.admin("POST", "/admin/transfers", body={**body, "to_warehouse": "main"}).status == 422
    assert api.admin("POST", "/admin/transfers", body={**body, "lines": []}).status == 422
    assert api.admin("POST", "/admin/transfers",
                     body={**body, "lines": [{"sku": "NOPE", "quantity": 1}]}).status == 404
    assert api.admin("POST", "/admin/transfers/trf_00000000/receive").status == 404


def test_a_count_turns_differences_into_ledgered_adjustments_once_at_approval(api):
    define(api, "sh")
    make_sku(api, "TEE", on_hand=10)
    stock(api, "TEE", "sh", 4)
    made = api.admin("POST", "/admin/counts", headers={"Idempotency-Key": "c1"}, body={"reference": "CC-1", "lines": [
        {"sku": "TEE", "warehouse": "main", "counted": 7}, {"sku": "TEE", "warehouse": "sh", "counted": 6}]})
    assert made.status == 201, made.text
    count = made.json()
    assert count["status"] == "draft"
    assert states(api) == {("main", "sellable"): 10, ("sh", "sellable"): 4}  # a draft moves nothing
    # An order between counting and approval: the difference is taken against on_hand at approval.
    assert place(api, "alice", ADDRESS, 2).status == 201  # from sh (in the address's country): 2 reserved there
    approved = api.admin("POST", f"/admin/counts/{count['id']}/approve")
    assert approved.status == 200, approved.text
    assert [(line["warehouse"], line["on_hand"], line["difference"]) for line in approved.json()["lines"]] == [
        ("main", 10, -3), ("sh", 4, 2)]
    assert api.admin("POST", f"/admin/counts/{count['id']}/approve").json()["status"] == "approved"  # once
    assert states(api) == {("main", "sellable"): 7, ("sh", "sellable"): 6}
    assert view(api)["levels"] == {"on_hand": 13, "available": 11, "reserved": 2, "sold": 0}
    counted = [(e["warehouse"], e["delta"]["on_hand"]) for e in ledger(api) if e["reference"] == count["id"]]
    assert sorted(counted) == [("main", -3), ("sh", 2)]
    assert_ledger_sums_to_levels(api)

    # Counting fewer than the reserved units cannot remove them: 409, nothing applied.
    short = api.admin("POST", "/admin/counts", body={"lines": [{"sku": "TEE", "warehouse": "sh", "counted": 1}]}).json()
    assert api.admin("POST", f"/admin/counts/{short['id']}/approve").status == 409
    assert api.admin("GET", f"/admin/counts/{short['id']}").json()["status"] == "draft"
    assert api.admin("POST", "/admin/counts", body={"lines": [{"sku": "TEE", "warehouse": "x", "counted": 1}]}
                     ).status == 404
    assert api.admin("POST", "/admin/counts", body={"lines": [{"sku": "TEE", "counted": 1},
                                                              {"sku": "TEE", "counted": 2}]}).status == 422
    assert api.admin("POST", "/admin/counts", body={"lines": [{"sku": "TEE", "counted": -1}]}).status == 422
    assert api.admin("POST", "/admin/counts/cnt_00000000/approve").status == 404
    assert api.request("POST", "/admin/counts", user="alice", body={"lines": []}).status == 403
