"""GET /skus/{sku} under each AVAILABILITY_DISPLAY mode; operators always see exact levels."""

from __future__ import annotations

import pytest

from shop.settings import clear_cache


@pytest.fixture
def shop(api, monkeypatch):
    def put(sku: str, on_hand: int, threshold: int | None = None):
        body = {"name": sku, "price": {"amount": 100, "currency": "EUR"}, "on_hand": on_hand,
                **({"low_stock_threshold": threshold} if threshold is not None else {})}
        assert api.admin("PUT", f"/admin/skus/{sku}", body=body).status == 201

    def display(mode: str | None, threshold: int | None = None):
        for name, value in (("AVAILABILITY_DISPLAY", mode), ("AVAILABILITY_ONLY_N_LEFT_THRESHOLD", threshold)):
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, str(value))
        clear_cache()

    def seen(sku: str) -> tuple[str, int | None]:
        got = api.request("GET", f"/skus/{sku}")
        assert got.status == 200
        body = got.json()
        assert "available" in body  # always present: null when hidden
        return body["availability"], body["available"]

    put("PLENTY", 50, threshold=5)
    put("FEW", 5, threshold=5)
    put("GONE", 0, threshold=5)
    put("NOLIMIT", 3)  # no threshold of its own
    yield display, seen
    clear_cache()


def test_exact_is_the_default(shop, api):
    display, seen = shop
    display(None)
    assert [seen(s) for s in ("PLENTY", "FEW", "GONE", "NOLIMIT")] == [
        ("in_stock", 50), ("low_stock", 5), ("sold_out", 0), ("in_stock", 3)]


def test_only_n_left(shop, api):
    display, seen = shop
    display("only_n_left", 3)
    assert [seen(s) for s in ("PLENTY", "FEW", "GONE", "NOLIMIT")] == [
        ("in_stock", None), ("low_stock", 5), ("sold_out", 0), ("in_stock", 3)]
    display("only_n_left", 2)  # the shop-wide threshold applies to SKUs without their own
    assert seen("NOLIMIT") == ("in_stock", None)


def test_coarse(shop, api):
    display, seen = shop
    display("coarse")
    assert [seen(s) for s in ("PLENTY", "FEW", "GONE", "NOLIMIT")] == [
        ("in_stock", None), ("low_stock", None), ("sold_out", None), ("in_stock", None)]
    # Operators' routes always see the exact levels.
    admin = api.admin("GET", "/admin/skus/FEW").json()
    assert (admin["available"], admin["availability"], admin["levels"]["available"]) == (5, "low_stock", 5)
    listed = {s["sku"]: s["available"] for s in api.admin("GET", "/admin/skus").json()["items"]}
    assert listed == {"PLENTY": 50, "FEW": 5, "GONE": 0, "NOLIMIT": 3}


def test_a_presale_pool_count_follows_the_display_rule(shop, api):
    display, seen = shop
    body = {"cap": 30, "starts_at": "2020-01-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z", "ships_on": "2099-02-01"}
    assert api.admin("PUT", "/admin/skus/PLENTY/presale", body=body).status == 200
    display("coarse")
    assert api.request("GET", "/skus/PLENTY").json()["presale"]["available"] is None
    display("only_n_left")
    assert api.request("GET", "/skus/PLENTY").json()["presale"]["available"] is None  # 30 > the SKU's threshold 5
    display(None)
    assert api.request("GET", "/skus/PLENTY").json()["presale"]["available"] == 30
