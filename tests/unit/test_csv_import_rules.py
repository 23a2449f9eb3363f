"""The CSV import on the in-memory store: reading a file (every bad field of every row) and the time budget (rows
left pending are applied by posting the same file again)."""

from __future__ import annotations

import time

import pytest

from shop.http import imports
from shop.http.imports import ImportInvalid
from shop.services.imports import apply_rows
from tests.fakes import InMemoryStore
from tests.services_contract import Shop

FILE = b"sku,name,price,currency,on_hand\nU-1,One,100,EUR,1\nU-2,Two,200,EUR,2\nU-3,Three,300,EUR,3\n"


@pytest.fixture
def shop(monkeypatch: pytest.MonkeyPatch) -> Shop:
    return Shop(InMemoryStore(), monkeypatch)


def read(shop: Shop, data: bytes):
    return imports.read_rows(data, max_window=3600, existing=shop.store.get_catalog, warehouses={"main"})


def test_rows_past_the_time_budget_are_pending_and_finished_by_posting_again(shop):
    rows, file_id = read(shop, FILE), imports.file_id(FILE)
    cut = apply_rows(shop.ports, file_id, rows, actor="admin:ops", deadline=time.monotonic() - 1)
    assert cut.to_dict()["complete"] is False and cut.counts() == {"applied": 0, "skipped": 0, "failed": 0, "pending": 3}
    assert shop.store.get_sku("U-1") is None  # nothing applied
    done = apply_rows(shop.ports, file_id, rows, actor="admin:ops").to_dict()
    assert (done["applied"], done["complete"]) == (3, True)
    assert [shop.store.get_sku(f"U-{n}").levels.on_hand for n in (1, 2, 3)] == [1, 2, 3]
    assert apply_rows(shop.ports, file_id, rows, actor="admin:ops").counts()["skipped"] == 3


def test_every_bad_field_of_a_row_is_reported(shop):
    with pytest.raises(ImportInvalid) as bad:
        read(shop, b"sku,name,price,currency,on_hand,active\nU-1,One,1.5,eur,-1,maybe\n")
    assert sorted(e["field"] for e in bad.value.extra["errors"]) == ["active", "currency", "on_hand", "price"]


def test_the_file_id_is_the_bytes_and_the_key():
    assert imports.file_id(FILE) == imports.file_id(bytes(FILE))
    assert len({imports.file_id(FILE), imports.file_id(FILE + b"\n"), imports.file_id(FILE, "k1"),
                imports.file_id(FILE, "k2")}) == 4
