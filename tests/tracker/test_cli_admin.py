"""Hand-run commands: sync against a shop on a local server, re-queue a failed email, the suppression list."""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlmodel import Session

from emails.outbox import enqueue
from tests.factories import REPO, T0, add_order
from tests.postgres import with_database
from tracker.cli import main
from tracker.db import open_db
from tracker.models import Email, EmailState

SHOPIFY = REPO / "tests" / "fixtures" / "shopify"
TOKEN = "shpat_test_token"


def published_orders_page() -> dict:
    """The published order details, with the published fulfillment attached to order #2006."""
    details = json.loads((SHOPIFY / "shopify-graphql-orders-details.json").read_text())
    fulfillment = json.loads((SHOPIFY / "shopify-graphql-fulfillment-tracking-info.json").read_text())
    details = copy.deepcopy(details)
    details["orders"]["edges"][1]["node"]["fulfillments"] = [fulfillment["fulfillment"]]
    return {"data": details}


class FakeShopify(BaseHTTPRequestHandler):
    """Answers the Admin GraphQL endpoint like a shop would, and refuses a wrong token."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        if self.headers.get("X-Shopify-Access-Token") != TOKEN:
            self._answer(401, {"errors": "[API] Invalid API key or access token"})
        elif not self.path.endswith("/graphql.json"):
            self._answer(404, {"errors": "Not Found"})
        else:
            self._answer(200, published_orders_page())

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        return None


@pytest.fixture
def shop_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeShopify)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def shopify_config(folder: Path, base_url: str) -> Path:
    text = f"""
[shops.demo]
name = "Demo"
sender = "Demo <hello@demo.example.com>"

[marketplaces.my-shopify]
type = "shopify"
base_url = "{base_url}"
access_token = "${{TEST_SHOPIFY_TOKEN}}"

[couriers.ups]
type = "ups"
client_id = "${{TEST_UPS_ID}}"
client_secret = "${{TEST_UPS_SECRET}}"
"""
    path = folder / "config.toml"
    path.write_text(text)
    return path


def test_sync_then_shipments_lists_the_shops_orders_and_tracking_numbers(tmp_path, shop_server, monkeypatch,
                                                                         capsys):
    monkeypatch.setenv("TEST_SHOPIFY_TOKEN", TOKEN)
    monkeypatch.setenv("TEST_UPS_ID", "id")
    monkeypatch.setenv("TEST_UPS_SECRET", "secret")
    config = str(shopify_config(tmp_path, shop_server))
    assert main(["--config", config, "sync", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["orders_new"], report["shipments_new"], report["emails_planned"]) == (4, 1, 0)
    assert len(report["problems"]) == 1 and "#2000" in report["problems"][0]
    assert main(["--config", config, "shipments", "--json"]) == 0
    [shipment] = json.loads(capsys.readouterr().out)
    assert (shipment["order"], shipment["tracking_number"], shipment["courier"]) == ("#2006", "1Z1234512345123456",
                                                                                     "ups")
    assert main(["--config", config, "sync", "--json"]) == 0  # the same pages again: nothing new
    again = json.loads(capsys.readouterr().out)
    assert (again["orders_new"], again["orders_updated"], again["shipments_new"]) == (0, 4, 0)


def test_sync_with_a_wrong_token_says_so_and_exits_1(tmp_path, shop_server, monkeypatch, capsys):
    monkeypatch.setenv("TEST_SHOPIFY_TOKEN", "wrong")
    monkeypatch.setenv("TEST_UPS_ID", "id")
    monkeypatch.setenv("TEST_UPS_SECRET", "secret")
    assert main(["--config", str(shopify_config(tmp_path, shop_server)), "sync"]) == 1
    out = capsys.readouterr().out
    assert "error: my-shopify" in out and "401" in out and "wrong" not in out  # the token never shows


@pytest.fixture
def demo(tmp_path, database_url):
    text = (REPO / "config.toml").read_text()
    (tmp_path / "config.toml").write_text(with_database(text, database_url))
    return tmp_path


def dead_email(folder: Path) -> int:
    from tracker.config import load

    config = load(folder / "config.toml")
    engine = open_db(config.database_url)
    with Session(engine) as session:
        enqueue(session, config, "order_confirmation", add_order(session), now=T0)
        email = session.get_one(Email, 1)
        email.state, email.last_error = EmailState.DEAD, "550 5.7.1 Rejected by policy"
        session.commit()
    engine.dispose()
    return 1


def test_emails_failed_lists_dead_letters_with_the_reason_and_retry_requeues_one(demo, capsys):
    email_id = dead_email(demo)
    config = str(demo / "config.toml")
    assert main(["--config", config, "emails", "--failed", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["id"] == email_id and row["error"] == "550 5.7.1 Rejected by policy"
    assert main(["--config", config, "emails", "retry", str(email_id)]) == 0
    assert "re-queued" in capsys.readouterr().out
    assert main(["--config", config, "emails", "--failed", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["--config", config, "emails", "retry", str(email_id)]) == 1  # queued already: nothing to do
    assert main(["--config", config, "emails", "retry", "999"]) == 1


def test_the_suppression_list_by_hand(demo, capsys):
    config = str(demo / "config.toml")
    assert main(["--config", config, "suppress", "add", "Ada@Example.com", "--reason", "asked by phone"]) == 0
    assert main(["--config", config, "suppress", "add", "bob@example.com", "--all"]) == 0
    capsys.readouterr()
    assert main(["--config", config, "suppress", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["email"], r["scope"], r["reason"]) for r in rows] == [
        ("ada@example.com", "marketing", "asked by phone"), ("bob@example.com", "all", "added by hand")]
    assert main(["--config", config, "suppress", "remove", "ada@example.com"]) == 0
    assert main(["--config", config, "suppress", "remove", "ada@example.com"]) == 1
    capsys.readouterr()
    assert main(["--config", config, "suppress", "list", "--json"]) == 0
    assert [r["email"] for r in json.loads(capsys.readouterr().out)] == ["bob@example.com"]


def test_preview_in_a_locale_without_templates_falls_back_to_english(tmp_path, capsys):
    out = tmp_path / "x.html"
    assert main(["--config", str(REPO / "config.toml"), "preview", "delivered", "--locale", "pt-BR",
                 "--out", str(out)]) == 0
    assert "delivered (en)" in capsys.readouterr().out
    assert out.read_text().startswith("<!doctype html>")


def test_coupons_shows_what_was_issued_and_what_redemptions_earned(demo, capsys):
    from datetime import timedelta

    from tracker.config import load
    from tracker.models import Coupon

    config = load(demo / "config.toml")
    engine = open_db(config.database_url)
    with Session(engine) as session:
        order = add_order(session)
        enqueue(session, config, "resell_coupon", order, now=T0)
        again = add_order(session, number="#2", customer=None)
        session.add(Coupon(code="THANKS-AAAA-BBBB", email_id=1, customer_id=order.customer_id, discount="10%",
                           created_at=T0, expires_at=T0 + timedelta(days=30), redeemed_order_id=again.id,
                           revenue=again.total, currency="EUR"))
        session.commit()
    engine.dispose()
    assert main(["--config", str(demo / "config.toml"), "coupons", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"] == {"issued": 1, "redeemed": 1, "revenue": {"EUR": "49.80"}}
    assert data["coupons"][0]["redeemed_by_order"] == "#2"
