"""CSV import and exports over HTTP against `python -m localrun` (as `make run`): a text/csv body reaches the
function raw (not read as JSON), a re-posted file applies nothing twice, and the exports are attachments."""

from __future__ import annotations

import csv
import io
import uuid

import pytest

pytestmark = pytest.mark.e2e


def test_import_then_export_over_http(local_server):
    api = local_server
    code = f"CSV-{uuid.uuid4().hex[:8]}"
    text = f'sku,name,price,currency,on_hand\n{code},"Mug, white",850,EUR,12\n'
    sent = {"Content-Type": "text/csv"}
    first = api.admin("POST", "/admin/imports/skus", data=text.encode(), headers=sent)
    assert first.status_code == 200, first.text
    assert (first.json()["applied"], first.json()["results"][0]["on_hand"]) == (1, 12)
    again = api.admin("POST", "/admin/imports/skus", data=text.encode(), headers=sent).json()
    assert (again["applied"], again["skipped"], again["file_id"]) == (0, 1, first.json()["file_id"])
    bad = api.admin("POST", "/admin/imports/skus", data=b"sku,name,price,currency\nx y,N,1,EUR\n", headers=sent)
    assert bad.status_code == 422 and bad.headers["Content-Type"] == "application/problem+json"
    assert bad.json()["errors"] == [{"line": 2, "field": "sku",
                                     "message": "SKU codes are 1-64 letters, digits, '.', '_' or '-'"}]
    stock = api.admin("GET", "/admin/stock.csv")
    assert stock.headers["Content-Type"].startswith("text/csv") and "attachment" in stock.headers["Content-Disposition"]
    rows = {r["sku"]: r for r in csv.DictReader(io.StringIO(stock.text))}
    assert (rows[code]["warehouse"], rows[code]["on_hand"]) == ("main", "12")
    ledger = list(csv.DictReader(io.StringIO(api.admin("GET", f"/admin/ledger.csv?sku={code}").text)))
    assert [(e["reason"], e["reference"], e["on_hand"]) for e in ledger] == [("import", first.json()["file_id"], "12")]
