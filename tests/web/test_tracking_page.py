"""The tracking page customers reach from their emails, and the order lookup."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta

import pytest
from sqlmodel import Session
from starlette.testclient import TestClient

from emails.links import tracking_page_url
from emails.tokens import make_token
from tests.factories import T0, add_order, add_shipment
from tracker.config import WebSettings
from tracker.models import Customer, TrackingEvent
from tracker.status import ShipmentStatus
from tracker.web.app import create_app

WEB = WebSettings(public_url="http://shop.test")


@pytest.fixture
def web(app):
    app.config = app.outbox.config = dataclasses.replace(app.config, web=WEB)
    with TestClient(create_app(app)) as client:
        yield client


def a_parcel(app, *, locale="en", email="ada@example.com"):
    with Session(app.engine) as session:
        order = add_order(session, email=email)
        order.postcode = "BS1 4DJ"
        session.get_one(Customer, order.customer_id).locale = locale
        shipment = add_shipment(session, order, "SB123", status=ShipmentStatus.IN_TRANSIT,
                                last_event_at=T0 + timedelta(hours=5))
        for hours, status, code, text in ((1, ShipmentStatus.INFO_RECEIVED, "LC", "Label created"),
                                          (5, ShipmentStatus.IN_TRANSIT, "AR", "Arrived at <hub>")):
            session.add(TrackingEvent(shipment_id=shipment.id, at=T0 + timedelta(hours=hours), status=status,
                                      code=code, description=text, location="Leipzig, DE", recorded_at=T0))
        session.commit()
        return order.number, shipment.id


def test_the_page_shows_status_timeline_items_and_the_couriers_link(app, web):
    _number, shipment_id = a_parcel(app)
    url = tracking_page_url(app.config, app.config.shops["demo"], app.outbox.secret, shipment_id)
    assert url.startswith("http://shop.test/t/")
    page = web.get(url.removeprefix("http://shop.test"))
    assert page.status_code == 200
    html = page.text
    assert "In transit" in html and "SB123" in html and "Merino beanie" in html
    assert html.index("Arrived at &lt;hub&gt;") < html.index("Label created")  # newest first, escaped
    assert 'href="https://track.example.com/sandbox/SB123"' in html
    assert "Northwind Goods" in html and 'name="viewport"' in html
    assert "<h2>Items</h2>" in html and "<h2>Tracking history</h2>" in html


def test_the_page_speaks_the_customers_language(app, web):
    _number, shipment_id = a_parcel(app, locale="de-DE")
    html = web.get(f"/t/{make_token(app.outbox.secret, 'track', str(shipment_id))}").text
    assert "Sendung verfolgen" in html and 'lang="de-DE"' in html


@pytest.mark.parametrize("token", ["nonsense", make_token(b"other" * 8, "track", "1")])
def test_a_made_up_or_foreign_link_is_refused_clearly(app, web, token):
    a_parcel(app)
    page = web.get(f"/t/{token}")
    assert page.status_code == 404 and "not valid" in page.text


def test_a_token_for_another_purpose_does_not_open_a_tracking_page(app, web):
    _number, shipment_id = a_parcel(app)
    page = web.get(f"/t/{make_token(app.outbox.secret, 'unsubscribe', str(shipment_id))}")
    assert page.status_code == 404


@pytest.mark.parametrize("proof", ["ada@example.com", "ADA@example.com ", "bs14dj", "BS1 4DJ"])
def test_lookup_by_order_number_and_email_or_postcode_leads_to_the_page(app, web, proof):
    number, _shipment_id = a_parcel(app)
    answer = web.post("/lookup", data={"number": number.lstrip("#"), "proof": proof}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/t/")
    assert "SB123" in web.get(answer.headers["location"]).text


def test_lookup_with_a_wrong_detail_says_nothing_about_which_was_wrong(app, web):
    number, _ = a_parcel(app)
    for form in ({"number": number, "proof": "eve@example.com"}, {"number": "#9999", "proof": "ada@example.com"}):
        answer = web.post("/lookup", data=form)
        assert answer.status_code == 404 and "could not find an order" in answer.text
        assert "ada@example.com" not in answer.text


def test_emails_link_to_the_tracking_page_when_the_web_side_is_on(app):
    import asyncio

    from emails.outbox import enqueue

    app.config = app.outbox.config = dataclasses.replace(app.config, web=WEB)
    with Session(app.engine) as session:
        order = add_order(session)
        shipment = add_shipment(session, order, "SB9")
        enqueue(session, app.config, "shipment_confirmation", order, now=T0, shipment=shipment)
        session.commit()
    asyncio.run(app.outbox.send_due(app.engine, T0))
    html = next(app.config.emails.outbox_dir.glob("*.html")).read_text()
    links = re.findall(r'href="(http://shop\.test/t/[^"]+)"', html)
    assert links, "the track button should open the shop's own tracking page"
