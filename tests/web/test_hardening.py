"""What a hostile visitor or odd shop data must not achieve."""

from __future__ import annotations

import dataclasses

import pytest
from sqlmodel import Session
from starlette.testclient import TestClient

from emails.engagement import instrument, read_click
from emails.render import format_datetime, format_money
from emails.tokens import make_token
from tests.factories import T0, add_order, add_shipment
from tracker.config import WebSettings
from tracker.models import Customer
from tracker.web import tracking
from tracker.web.app import create_app
from tracker.web.throttle import Throttle


@pytest.fixture
def web(app, monkeypatch):
    monkeypatch.setattr(tracking, "LOOKUP_THROTTLE", Throttle(limit=10, window=900.0))
    app.config = app.outbox.config = dataclasses.replace(app.config, web=WebSettings(public_url="http://shop.test"))
    with TestClient(create_app(app)) as client:
        yield client


def parcel(app, *, tracking_url: str = "https://courier.example/SB1", locale: str = "en") -> int:
    with Session(app.engine) as session:
        order = add_order(session)
        session.get_one(Customer, order.customer_id).locale = locale
        shipment = add_shipment(session, order, "SB1")
        shipment.tracking_url = tracking_url
        session.commit()
        return shipment.id


def test_guessing_postcodes_for_an_order_is_stopped_after_ten_misses(app, web):
    parcel(app)
    for guess in range(10):
        assert web.post("/lookup", data={"number": "#1001", "proof": f"AB{guess} 1CD"}).status_code == 404
    right = web.post("/lookup", data={"number": "#1001", "proof": "ada@example.com"}, follow_redirects=False)
    assert right.status_code == 429  # even the right answer waits: the guesser cannot tell


def test_an_oversized_form_is_refused_without_reading_it_all(app, web):
    answer = web.post("/lookup", data={"number": "#1001", "proof": "x" * 100_000})
    assert answer.status_code == 400


def test_a_javascript_link_from_shop_data_never_becomes_clickable(app, web):
    shipment_id = parcel(app, tracking_url="javascript:fetch('/admin')")
    page = web.get(f"/t/{make_token(app.outbox.secret, 'track', str(shipment_id))}")
    assert page.status_code == 200 and "javascript:" not in page.text


def test_a_locale_babel_does_not_know_still_renders(app, web):
    shipment_id = parcel(app, locale="de-US")
    assert web.get(f"/t/{make_token(app.outbox.secret, 'track', str(shipment_id))}").status_code == 200
    assert format_money(12.5, "EUR", "de-US") == "12,50\xa0€"
    assert format_datetime(T0, "xx-YY")


def test_an_href_inside_another_attribute_is_not_taken_for_the_link():
    html = ('<a title="Hello x href=https://evil.example/login" href="https://shop.example/p">Shop</a>'
            "</body>")
    out = instrument(html, base_url="http://shop.test", secret=b"s" * 32, email_id=7)
    token = out.split('href="http://shop.test/c/')[1].split('"')[0]
    assert read_click(b"s" * 32, token) == (7, "https://shop.example/p")
    assert "evil.example" not in out.replace('title="Hello x href=https://evil.example/login"', "")
