"""End to end in a real headless Chromium: from the link in a sent email to the page it opens, and the operator's
dashboard, against the app served by uvicorn (screenshots in test-artifacts/)."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select, update
from sqlmodel import Session

from emails.outbox import SendReport, enqueue
from emails.unsubscribe import make_token
from tests.factories import T0, add_order, add_shipment
from tests.web.browser import ADMIN_PASSWORD, WAIT, chrome, html_links, missing_browser, phone, read_eml, screenshot
from tests.web.browser import serve as serve_app
from tracker.app import App
from tracker.models import Customer, Email, EmailState, Suppression, TrackingEvent
from tracker.status import ShipmentStatus

MISSING = missing_browser()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")

NOON = T0.replace(hour=12)  # the customer's daytime: country "" falls back to the shop's zone, UTC


@pytest.fixture
def site(app: App) -> Iterator[str]:
    with serve_app(app) as base_url:
        yield base_url


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[WebDriver]:
    with chrome(tmp_path / "chromium-profile") as browser:
        yield browser


def wait(driver: WebDriver) -> WebDriverWait:
    return WebDriverWait(driver, WAIT)


def shown(driver: WebDriver, element_id: str):
    return wait(driver).until(EC.visibility_of_element_located((By.ID, element_id)))


def send(app: App, now: datetime) -> SendReport:
    return asyncio.run(app.outbox.send_due(app.engine, now))


def sent_message(app: App, kind: str):
    """The one .eml of this kind the outbox folder holds."""
    files = sorted(app.config.emails.outbox_dir.glob(f"*-{kind}.eml"))
    assert len(files) == 1, files
    return read_eml(files[0])


def email_row(app: App, email_id: int) -> Email:
    with Session(app.engine) as session:
        return session.get_one(Email, email_id)


def png_size(path: Path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


def a_shipped_parcel(app: App) -> int:
    """An order in transit with two courier events, and its shipping confirmation planned."""
    with Session(app.engine) as session:
        order = add_order(session)
        shipment = add_shipment(session, order, "SB4242", status=ShipmentStatus.IN_TRANSIT,
                                last_event_at=T0 - timedelta(hours=2))
        for hours, status, code, text in ((6, ShipmentStatus.INFO_RECEIVED, "LC", "Label created by the shop"),
                                          (2, ShipmentStatus.IN_TRANSIT, "DP", "Departed the Bristol hub")):
            session.add(TrackingEvent(shipment_id=shipment.id, at=T0 - timedelta(hours=hours), status=status,
                                      code=code, description=text, location="Bristol, GB", recorded_at=T0))
        enqueue(session, app.config, "shipment_confirmation", order, now=T0, shipment=shipment)
        session.commit()
        return shipment.id


def test_the_track_your_parcel_link_in_the_email_opens_the_tracking_page(app, site, driver):
    a_shipped_parcel(app)
    assert send(app, T0).sent == 1
    link = html_links(sent_message(app, "shipment_confirmation"))["Track your parcel"]
    assert link.startswith(f"{site}/t/")

    driver.get(link)
    assert shown(driver, "status").text == "In transit"
    assert "SB4242" in driver.find_element(By.ID, "summary").text
    timeline = [item.text for item in driver.find_elements(By.CSS_SELECTOR, "#timeline li")]
    assert len(timeline) == 2
    assert "Departed the Bristol hub" in timeline[0] and "Label created by the shop" in timeline[1]  # newest first
    assert [heading.text for heading in driver.find_elements(By.TAG_NAME, "h2")] == ["Tracking history", "Items"]
    assert "Merino beanie" in driver.find_element(By.TAG_NAME, "main").text
    screenshot(driver, "tracking-page.png")

    with phone(driver):
        driver.get(link)
        shown(driver, "status")
        assert driver.execute_script("return document.documentElement.scrollWidth") <= 390  # no sideways scroll
        assert png_size(screenshot(driver, "tracking-page-phone.png")) == (390, 844)


def a_customer_with_consent(app: App) -> int:
    """A delivered order from a customer who agreed to marketing, with its feedback request planned."""
    with Session(app.engine) as session:
        order = add_order(session, consent=True, email="grace@example.com")
        add_shipment(session, order, "SB7000", status=ShipmentStatus.DELIVERED, delivered_at=T0)
        enqueue(session, app.config, "feedback_request", order, now=NOON)
        session.commit()
        return order.customer_id


def test_one_click_on_the_unsubscribe_link_stops_marketing_and_never_order_news(app, site, driver):
    customer_id = a_customer_with_consent(app)
    assert send(app, NOON).sent == 1
    message = sent_message(app, "feedback_request")
    link = html_links(message)["Unsubscribe"]
    assert link.startswith(f"{site}/unsubscribe/") and message["List-Unsubscribe"] == f"<{link}>"

    forged = f"{site}/unsubscribe/{make_token(b'not the shop secret', customer_id)}"
    driver.get(forged)
    wait(driver).until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Link not valid"))
    assert "not valid or has been altered" in driver.find_element(By.TAG_NAME, "main").text
    assert driver.find_elements(By.ID, "unsubscribe") == []

    driver.get(link)
    shown(driver, "unsubscribe").click()
    assert "You're unsubscribed" in shown(driver, "done").text
    screenshot(driver, "unsubscribed.png")
    with Session(app.engine) as session:
        assert session.execute(select(Suppression.email)).scalars().all() == ["grace@example.com"]

    later = NOON + timedelta(hours=1)
    with Session(app.engine) as session:
        again = add_order(session, number="#1002", customer=session.get_one(Customer, customer_id))
        shipment = add_shipment(session, again, "SB7001", status=ShipmentStatus.IN_TRANSIT)
        enqueue(session, app.config, "feedback_request", again, now=later)
        enqueue(session, app.config, "in_transit", again, now=later, shipment=shipment)
        session.commit()
    report = send(app, later)
    assert (report.sent, report.skipped) == (1, 1)
    with Session(app.engine) as session:
        states = {e.kind: (e.state, e.last_error) for e in session.execute(
            select(Email).where(Email.created_at == later)).scalars()}
    assert states["in_transit"] == (EmailState.SENT, "")
    assert states["feedback_request"][0] is EmailState.SKIPPED and "unsubscribed" in states["feedback_request"][1]


def a_dead_email(app: App) -> int:
    with Session(app.engine) as session:
        order = add_order(session)
        shipment = add_shipment(session, order)
        enqueue(session, app.config, "shipment_confirmation", order, now=T0, shipment=shipment)
        session.flush()
        email_id = session.execute(select(Email.id)).scalar_one()
        session.execute(update(Email).where(Email.id == email_id).values(
            state=EmailState.DEAD, attempts=7, last_error="550 5.1.1 mailbox unavailable"))
        session.commit()
        return email_id


def test_an_operator_logs_in_and_retries_a_dead_email(app, site, driver):
    email_id = a_dead_email(app)

    driver.get(f"{site}/admin")
    wait(driver).until(EC.url_to_be(f"{site}/admin/login"))
    shown(driver, "login")
    driver.find_element(By.NAME, "username").send_keys(app.config.web.admin_user)
    driver.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    driver.find_element(By.ID, "login").click()
    wait(driver).until(lambda d: not d.current_url.startswith(f"{site}/admin/login"))

    driver.get(f"{site}/admin/emails?state=dead")
    retry = shown(driver, f"retry-{email_id}")
    assert "mailbox unavailable" in driver.find_element(By.TAG_NAME, "body").text
    screenshot(driver, "dashboard-dead-emails.png")
    retry.click()
    wait(driver).until(EC.staleness_of(retry))  # the form posted and the browser moved on
    wait(driver).until(lambda _d: email_row(app, email_id).state is EmailState.QUEUED)
    wait(driver).until(lambda d: d.execute_script("return document.readyState") == "complete")
    assert driver.find_elements(By.ID, f"retry-{email_id}") == []  # no longer among the dead
    screenshot(driver, "dashboard.png")
