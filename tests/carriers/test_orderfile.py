"""Order files: good rows import, bad rows are reported with file and line and kept aside, nothing is lost."""

from __future__ import annotations

import asyncio
import csv
import json
import os
from datetime import UTC, datetime
from decimal import Decimal

from carriers.orderfile import OrderFileMarketplace

HEADER = ("order_id,order_number,created_at,currency,customer_email,customer_name,marketing_consent,"
          "title,sku,quantity,unit_price,tracking_number,courier,shipped_at,status\n")
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def changes(folder, since=EPOCH):
    return asyncio.run(OrderFileMarketplace("amazon", folder).changes(since))


def test_a_csv_with_good_and_bad_rows_imports_the_good_orders_and_reports_the_bad_rows(tmp_path):
    (tmp_path / "amazon-2026-03-02.csv").write_text(
        HEADER
        + "A-1,#A1,2026-03-02T09:00:00Z,EUR,ada@example.com,Ada L,yes,Beanie,BEA,2,24.90,1Z999AA10123456784,UPS,"
          "2026-03-03T08:00:00Z,\n"
        + "A-1,#A1,2026-03-02T09:00:00Z,EUR,ada@example.com,Ada L,yes,Tote,TOT,1,35.00,,,,\n"
        + "A-2,#A2,2026-03-02T10:00:00Z,EUR,bob@example.com,Bob,no,Scarf,SCA,one,49.00,,,,\n"
        + "A-2,#A2,2026-03-02T10:00:00Z,EUR,bob@example.com,Bob,no,Gloves,GLO,1,19.00,,,,\n"
        + "A-3,#A3,yesterday,EUR,cy@example.com,Cy,no,Mug,MUG,1,9.00,,,,cancelled\n"
        + "A-4,#A4,2026-03-02T11:00:00Z,EUR,di@example.com,Di,no,Mug,MUG,1,9.00,,,,cancelled\n")
    batch = changes(tmp_path)
    by_id = {o.external_id: o for o in batch.orders}
    assert set(by_id) == {"A-1", "A-4"}
    assert by_id["A-1"].total == Decimal("84.80") and len(by_id["A-1"].lines) == 2
    assert by_id["A-1"].marketing_consent is True
    assert [s.tracking_number for s in by_id["A-1"].shipments] == ["1Z999AA10123456784"]
    assert by_id["A-4"].cancelled
    assert batch.problems == (
        "amazon: amazon-2026-03-02.csv:4: quantity 'one' must be a whole number of at least 1",
        "amazon: amazon-2026-03-02.csv:5: held back with order A-2, which has a bad row",
        "amazon: amazon-2026-03-02.csv:6: created_at 'yesterday' is not an ISO 8601 date and time",
    )
    with (tmp_path / "rejected" / "amazon-2026-03-02.rejected.csv").open() as handle:
        rejected = list(csv.DictReader(handle))
    assert [r["source"] for r in rejected] == ["amazon-2026-03-02.csv:4", "amazon-2026-03-02.csv:5",
                                                "amazon-2026-03-02.csv:6"]
    assert rejected[0]["quantity"] == "one" and "whole number" in rejected[0]["problem"]


def test_a_json_file_imports_orders_with_lines_and_shipments(tmp_path):
    orders = [
        {"order_id": "E-1", "order_number": "1001", "created_at": "2026-03-02T09:00:00+01:00", "currency": "usd",
         "customer_email": "Ada@Example.com", "customer_name": "Ada", "country": "us",
         "lines": [{"title": "Beanie", "quantity": 1, "unit_price": "24.90", "sku": "BEA"}],
         "shipments": [{"tracking_number": "9400111899223197428490", "courier": "USPS"}]},
        {"order_id": "E-2", "created_at": "2026-03-02T09:00:00Z", "currency": "USD",
         "customer_email": "x@example.com", "lines": []},
        "not an order",
    ]
    (tmp_path / "ebay.json").write_text(json.dumps(orders))
    batch = changes(tmp_path)
    [order] = batch.orders
    assert order.created_at == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    assert order.currency == "USD" and order.customer_email == "ada@example.com"
    assert order.shipments[0].courier_name == "USPS" and order.shipping_address.country == "US"
    assert batch.problems == ("amazon: ebay.json:2: lines is missing or empty",
                              "amazon: ebay.json:3: each order must be an object")


def test_unreadable_files_are_reported_and_do_not_stop_the_others(tmp_path):
    (tmp_path / "broken.json").write_text("[{")
    (tmp_path / "good.csv").write_text(
        HEADER + "G-1,,2026-03-02T09:00:00Z,EUR,g@example.com,G,no,Mug,MUG,1,9.00,,,,\n")
    batch = changes(tmp_path)
    assert [o.external_id for o in batch.orders] == ["G-1"]
    assert len(batch.problems) == 1 and batch.problems[0].startswith("amazon: broken.json:1: not valid JSON")


def test_only_files_changed_since_the_cursor_are_read_and_the_cursor_follows_them(tmp_path):
    old, new = tmp_path / "old.csv", tmp_path / "new.csv"
    old.write_text(HEADER + "O-1,,2026-03-01T09:00:00Z,EUR,o@example.com,O,no,Mug,MUG,1,9.00,,,,\n")
    new.write_text(HEADER + "N-1,,2026-03-02T09:00:00Z,EUR,n@example.com,N,no,Mug,MUG,1,9.00,,,,\n")
    os.utime(old, (1_700_000_000, 1_700_000_000))
    os.utime(new, (1_800_000_000, 1_800_000_000))
    first = changes(tmp_path)
    assert {o.external_id for o in first.orders} == {"O-1", "N-1"}
    assert first.cursor == datetime.fromtimestamp(1_800_000_000, UTC)
    middle = datetime.fromtimestamp(1_750_000_000, UTC)
    assert [o.external_id for o in changes(tmp_path, middle).orders] == ["N-1"]
    assert changes(tmp_path, first.cursor).orders == ()
    assert changes(tmp_path, first.cursor).cursor == first.cursor


def test_fixing_a_file_clears_its_rejected_rows(tmp_path):
    path = tmp_path / "shop.csv"
    path.write_text(HEADER + "F-1,,2026-03-02T09:00:00Z,EUR,f@example.com,F,maybe,Mug,MUG,1,9.00,,,,\n")
    assert changes(tmp_path).problems
    assert (tmp_path / "rejected" / "shop.rejected.csv").exists()
    path.write_text(HEADER + "F-1,,2026-03-02T09:00:00Z,EUR,f@example.com,F,no,Mug,MUG,1,9.00,,,,\n")
    batch = changes(tmp_path)
    assert [o.external_id for o in batch.orders] == ["F-1"] and batch.problems == ()
    assert not (tmp_path / "rejected" / "shop.rejected.csv").exists()
