"""The operator dashboard: nothing without signing in, a throttled login, figures per email kind, shipments with
their whole history, the email log with a CSRF-protected retry, and previews of every kind in every locale."""

from __future__ import annotations

import dataclasses
import re
import shutil
from datetime import timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
from sqlmodel import Session
from starlette.applications import Starlette
from starlette.testclient import TestClient

from emails.kinds import EMAIL_KINDS, MARKETING_KINDS
from emails.render import BUILTIN_DIR
from tests.factories import T0, add_order, add_shipment
from tracker.app import App
from tracker.config import WebSettings
from tracker.models import Coupon, Customer, Email, EmailEvent, EmailState, Order, Suppression, TrackingEvent
from tracker.status import ShipmentStatus
from tracker.web.admin_pages import PAGE_SIZE
from tracker.web.app import create_app
from tracker.web.throttle import Throttle

PASSWORD = "correct horse battery"
WEB = WebSettings(public_url="http://shop.test", admin_user="operator", admin_password=PASSWORD)
CUSTOMER = "grace.hopper@example.org"
SIGNED_IN_PAGES = ["/admin", "/admin/shipments", "/admin/shipments/1", "/admin/emails", "/admin/emails?state=dead",
                   "/admin/preview", "/admin/preview?kind=delivered&locale=de"]


def web_app(app: App, web: WebSettings = WEB) -> Starlette:
    app.config = app.outbox.config = dataclasses.replace(app.config, web=web)
    return create_app(app)


def client_for(app: App, web: WebSettings = WEB) -> TestClient:
    return TestClient(web_app(app, web), base_url="http://shop.test", follow_redirects=False)


@pytest.fixture
def web(app):
    with client_for(app) as client:
        yield client


@pytest.fixture
def admin(web):
    assert sign_in(web).status_code == 303
    return web


def sign_in(client: TestClient, password: str = PASSWORD, user: str = "operator"):
    return client.post("/admin/login", data={"username": user, "password": password})


def csrf(client: TestClient) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/admin").text).group(1)


def cells(html: str, row_id: str) -> list[str]:
    """The text of each cell in the table row with this id."""
    row = re.search(rf'<tr id="{row_id}"[^>]*>(.*?)</tr>', html, re.S).group(1)
    return [" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>",
                                                                                     row, re.S)]


def an_email(session: Session, order: Order, kind: str, state: EmailState = EmailState.SENT, *,
             shipment_id: int | None = None, error: str = "") -> Email:
    address = session.get_one(Customer, order.customer_id).email
    email = Email(idempotency_key=f"{kind}:{uuid4().hex}", message_id=f"<{uuid4().hex}@test>", kind=kind,
                  shop=order.shop, order_id=order.id, shipment_id=shipment_id, customer_id=order.customer_id,
                  to_address=address, state=state, created_at=T0, due_at=T0, last_error=error, attempts=3,
                  sent_at=T0 if state is EmailState.SENT else None, marketing=kind in MARKETING_KINDS)
    session.add(email)
    session.flush()
    return email


def a_dead_email(app: App, email: str = CUSTOMER) -> int:
    with Session(app.engine) as session:
        order = add_order(session, email=email)
        shipment = add_shipment(session, order)
        email_id = an_email(session, order, "in_transit", EmailState.DEAD, shipment_id=shipment.id,
                            error="550 5.1.1 mailbox unavailable").id
        session.commit()
    return email_id


def email_row(app: App, email_id: int) -> Email:
    with Session(app.engine) as session:
        return session.get_one(Email, email_id)


# --- signing in -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path", [*(("GET", p) for p in SIGNED_IN_PAGES),
                                          ("POST", "/admin/emails/1/retry"), ("POST", "/admin/logout")])
def test_every_dashboard_route_sends_a_stranger_to_the_login_page(web, method, path):
    response = web.request(method, path)

    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login"


def test_no_customer_address_is_shown_before_signing_in_and_no_retry_happens(app, web):
    email_id = a_dead_email(app)

    pages = [web.get(path, follow_redirects=True) for path in SIGNED_IN_PAGES]
    pages.append(sign_in(web, password="wrong"))
    pages.append(web.post(f"/admin/emails/{email_id}/retry", data={"csrf": "guess"}, follow_redirects=True))

    assert all(CUSTOMER not in page.text for page in pages)
    assert all('name="password"' in page.text for page in pages)  # every one of them is the login form
    assert email_row(app, email_id).state is EmailState.DEAD


def test_the_login_form_has_the_fields_the_browser_tests_use(web):
    html = web.get("/admin/login").text

    assert 'name="username"' in html and 'name="password"' in html and 'id="login"' in html


def test_the_configured_user_and_password_open_the_dashboard(admin):
    response = admin.get("/admin")

    assert response.status_code == 200
    assert 'id="figures"' in response.text
    assert admin.get("/admin/login").headers["location"] == "/admin"  # already signed in


@pytest.mark.parametrize("user, password", [("operator", "wrong"), ("admin", PASSWORD), ("", "")])
def test_a_wrong_user_or_password_gets_the_form_again_with_401(web, user, password):
    response = sign_in(web, password=password, user=user)

    assert response.status_code == 401
    assert "Wrong user name or password" in response.text and 'name="password"' in response.text
    assert web.get("/admin").status_code == 303


def test_without_a_configured_password_the_one_time_password_signs_in(app):
    from tracker.web.auth import admin_password

    with client_for(app, WebSettings(admin_user="admin")) as client:
        assert sign_in(client, password="", user="admin").status_code == 401  # an empty password never opens it
        assert sign_in(client, password=admin_password(app), user="admin").status_code == 303


def test_five_failures_from_one_address_lock_it_out_with_429(app):
    application = web_app(app)

    def client(address: str) -> TestClient:
        return TestClient(application, base_url="http://shop.test", follow_redirects=False, client=(address, 50000))

    with client("203.0.113.7") as attacker, client("198.51.100.2") as other:
        codes = [sign_in(attacker, password=f"guess-{n}").status_code for n in range(5)]
        locked = sign_in(attacker)  # even the right password, while locked out
        elsewhere = sign_in(other)

    assert codes == [401] * 5
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    assert "Too many failed sign-ins" in locked.text
    assert elsewhere.status_code == 303


def test_the_throttle_forgets_failures_older_than_its_window():
    throttle = Throttle(limit=5, window=300)
    for second in range(5):
        throttle.failed("a", now=1000 + second)

    assert throttle.wait("a", now=1010) == pytest.approx(290)
    assert throttle.wait("b", now=1010) == 0
    assert throttle.wait("a", now=1300.5) == 0  # the first failure aged out: four left
    throttle.forget("a")
    assert throttle.wait("a", now=1010) == 0


def test_logout_needs_the_csrf_token_and_ends_the_session(admin):
    assert admin.post("/admin/logout").status_code == 403
    assert admin.get("/admin").status_code == 200

    response = admin.post("/admin/logout", data={"csrf": csrf(admin)})

    assert response.status_code == 303 and response.headers["location"] == "/admin/login"
    assert admin.get("/admin").status_code == 303


# --- the email log and retry ----------------------------------------------------------------------------

def test_the_email_log_shows_failures_with_their_reason_and_a_retry_button(app, admin):
    email_id = a_dead_email(app)

    html = admin.get("/admin/emails?state=dead").text

    assert "550 5.1.1 mailbox unavailable" in html and CUSTOMER in html
    assert f'id="retry-{email_id}"' in html and ">Retry</button>" in html
    assert f'action="/admin/emails/{email_id}/retry"' in html


def test_retry_requeues_a_dead_email_due_now_and_says_so(app, admin, clock):
    email_id = a_dead_email(app)
    clock.set(T0 + timedelta(days=3))

    response = admin.post(f"/admin/emails/{email_id}/retry", data={"csrf": csrf(admin)})

    assert response.status_code == 303
    assert response.headers["location"] == "/admin/emails?state=dead"
    email = email_row(app, email_id)
    assert (email.state, email.attempts, email.due_at) == (EmailState.QUEUED, 0, T0 + timedelta(days=3))
    assert email.last_error == "re-queued by hand (was dead)"
    after = admin.get(response.headers["location"]).text
    assert f"Email {email_id} re-queued" in after and f'id="retry-{email_id}"' not in after
    assert f"Email {email_id} re-queued" not in admin.get("/admin/emails").text  # the message shows once


@pytest.mark.parametrize("form", [{}, {"csrf": ""}, {"csrf": "forged-token"}])
def test_retry_without_the_csrf_token_is_refused(app, admin, form):
    email_id = a_dead_email(app)

    response = admin.post(f"/admin/emails/{email_id}/retry", data=form)

    assert response.status_code == 403
    assert email_row(app, email_id).state is EmailState.DEAD


def test_retry_refuses_an_email_that_is_not_failed_and_one_that_does_not_exist(app, admin):
    with Session(app.engine) as session:
        sent_id = an_email(session, add_order(session), "order_confirmation").id
        session.commit()
    token = csrf(admin)

    sent = admin.post(f"/admin/emails/{sent_id}/retry", data={"csrf": token})
    missing = admin.post("/admin/emails/999/retry", data={"csrf": token})

    assert sent.status_code == 409 and "only dead, held or skipped emails are retried" in sent.text
    assert email_row(app, sent_id).state is EmailState.SENT
    assert missing.status_code == 404


def test_the_email_log_filters_by_kind_and_refuses_an_unknown_state(app, admin):
    with Session(app.engine) as session:
        order = add_order(session)
        delivered = an_email(session, order, "delivered").id
        feedback = an_email(session, order, "feedback_request").id
        session.commit()

    html = admin.get("/admin/emails?kind=delivered").text

    assert f'id="email-{delivered}"' in html and f'id="email-{feedback}"' not in html
    assert admin.get("/admin/emails?state=lost").status_code == 400


# --- figures --------------------------------------------------------------------------------------------

def test_the_overview_counts_opens_clicks_unsubscribes_and_redemptions_per_kind(app, admin):
    with Session(app.engine) as session:
        ada = add_order(session, number="#1", email="ada@example.com")
        bob = add_order(session, number="#2", email="bob@example.com")
        coupons = [an_email(session, o, "resell_coupon") for o in (ada, bob)]
        delivered = [an_email(session, o, "delivered") for o in (ada, bob)]
        an_email(session, ada, "in_transit", EmailState.DEAD)  # not sent: not counted
        for email, kind in [(coupons[0], "open"), (coupons[0], "open"), (coupons[0], "click"),
                            (coupons[1], "open"), (delivered[0], "open")]:
            session.add(EmailEvent(email_id=email.id, kind=kind, at=T0))
        session.add(Suppression(email="ada@example.com", source="unsubscribe link", created_at=T0))
        session.add(Suppression(email="nobody@example.com", source="unsubscribe link", created_at=T0))
        session.add(Suppression(email="bob@example.com", source="postmark 406", created_at=T0))  # a bounce
        redeeming = add_order(session, number="#3", email="carol@example.com")
        for n, email in enumerate(coupons):
            session.add(Coupon(code=f"THANKS-{n}", email_id=email.id, customer_id=email.customer_id, discount="10%",
                               created_at=T0, expires_at=T0 + timedelta(days=30), currency="EUR",
                               redeemed_order_id=redeeming.id if n == 0 else None,
                               revenue=Decimal("59.90") if n == 0 else None))
        session.commit()

    html = admin.get("/admin").text

    sent, opened, clicked, unsubscribed, redeemed, revenue = cells(html, "kind-resell_coupon")[1:]
    assert (sent, opened.split()[0], clicked.split()[0], unsubscribed, redeemed) == ("2", "2", "1", "1", "1")
    assert revenue == "€59.90"
    assert cells(html, "kind-delivered")[1:6] == ["2", "1 (50%)", "0", "0", "0"]
    assert cells(html, "kind-total")[1:6] == ["4", "3", "1", "2", "1"]  # the unattributed unsubscribe too


def test_the_overview_counts_shipments_by_status_and_problem(app, admin):
    with Session(app.engine) as session:
        order = add_order(session)
        for n, (status, delayed) in enumerate([(ShipmentStatus.IN_TRANSIT, True), (ShipmentStatus.IN_TRANSIT, False),
                                               (ShipmentStatus.EXCEPTION, False), (ShipmentStatus.FAILED_ATTEMPT, True),
                                               (ShipmentStatus.DELIVERED, False)]):
            add_shipment(session, order, f"SB{n}", status=status, delayed_at=T0 if delayed else None)
        session.commit()

    html = admin.get("/admin").text

    assert cells(html, "status-in_transit")[-1] == "2" and cells(html, "status-delivered")[-1] == "1"
    assert [cells(html, f"problem-{p}")[-1] for p in ("delayed", "exception", "failed_attempt", "returned")] == [
        "2", "1", "1", "0"]


# --- shipments ------------------------------------------------------------------------------------------

def test_the_shipment_list_is_newest_first_filtered_and_paginated(app, admin):
    with Session(app.engine) as session:
        order = add_order(session)
        ids = [add_shipment(session, order, f"SB{n:03}", status=ShipmentStatus.IN_TRANSIT,
                            delayed_at=T0 if n % 10 == 0 else None).id for n in range(PAGE_SIZE + 5)]
        session.commit()

    first, second = admin.get("/admin/shipments").text, admin.get("/admin/shipments?page=2").text
    delayed = admin.get("/admin/shipments?problem=delayed").text

    assert first.index(f'id="shipment-{ids[-1]}"') < first.index(f'id="shipment-{ids[-2]}"')
    assert first.count('<tr id="shipment-') == PAGE_SIZE and 'href="/admin/shipments?page=2"' in first
    assert second.count('<tr id="shipment-') == 5 and f'id="shipment-{ids[0]}"' in second
    assert delayed.count('<tr id="shipment-') == 6
    assert admin.get("/admin/shipments?status=delivered").text.count('<tr id="shipment-') == 0
    assert admin.get("/admin/shipments?problem=lost").status_code == 400
    assert admin.get("/admin/shipments?page=zero").status_code == 400


def test_a_shipment_shows_every_event_with_the_unapplied_ones_marked_its_order_and_its_emails(app, admin):
    with Session(app.engine) as session:
        order = add_order(session, number="#2042", email=CUSTOMER)
        shipment = add_shipment(session, order, "SB777", status=ShipmentStatus.IN_TRANSIT)
        applied = TrackingEvent(shipment_id=shipment.id, at=T0 + timedelta(hours=2), status=ShipmentStatus.IN_TRANSIT,
                                code="AR", description="Arrived at hub", recorded_at=T0)
        late = TrackingEvent(shipment_id=shipment.id, at=T0 + timedelta(hours=1), status=ShipmentStatus.INFO_RECEIVED,
                             code="LC", description="Label created", recorded_at=T0, applied=False,
                             note="older than the current status")
        session.add_all([applied, late])
        an_email(session, order, "in_transit", EmailState.SKIPPED, shipment_id=shipment.id, error="unsubscribed")
        an_email(session, order, "order_confirmation")
        session.commit()
        shipment_id, applied_id, late_id = shipment.id, applied.id, late.id

    html = admin.get(f"/admin/shipments/{shipment_id}").text

    assert 'class="unapplied"' in html.split(f'id="event-{late_id}"')[1].split(">")[0]
    assert 'class="unapplied"' not in html.split(f'id="event-{applied_id}"')[1].split(">")[0]
    assert "older than the current status" in html and "not applied" in html
    assert "#2042" in html and CUSTOMER in html
    assert "in_transit" in html and "unsubscribed" in html and "order_confirmation" in html
    assert admin.get("/admin/shipments/999").status_code == 404


# --- previews -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("locale", ["en", "de", "fr"])
@pytest.mark.parametrize("kind", EMAIL_KINDS)
def test_the_preview_renders_every_kind_in_every_locale_inside_an_escaped_iframe(admin, kind, locale):
    response = admin.get(f"/admin/preview?kind={kind}&locale={locale}&shop=demo")

    assert response.status_code == 200
    srcdoc = re.search(r'<iframe [^>]*srcdoc="([^"]*)"', response.text).group(1)
    assert "&lt;html" in srcdoc and "<" not in srcdoc  # the whole email, escaped into the attribute
    assert f'<option value="{kind}" selected>' in response.text
    assert f'<option value="{locale}" selected>' in response.text


def test_the_preview_offers_locales_found_in_a_shops_templates_and_shows_template_errors(app, config, clock,
                                                                                           tmp_path):
    folder = tmp_path / "templates"
    folder.mkdir()
    dutch = (BUILTIN_DIR / "delivered.mjml").read_text().replace("subject:", "subject: [nl]", 1)
    (folder / "delivered.nl.mjml").write_text(dutch)
    shutil.copy(BUILTIN_DIR / "in_transit.txt", folder / "in_transit.txt")
    (folder / "in_transit.mjml").write_text("subject: {{ order.number\n---\n<mj-text>broken</mj-text>\n")
    shops = {"demo": dataclasses.replace(config.shops["demo"], templates_dir=folder)}
    shop_app = App.create(dataclasses.replace(config, shops=shops), clock, engine=app.engine)

    with client_for(shop_app) as client:
        sign_in(client)
        dutch_page = client.get("/admin/preview?kind=delivered&locale=nl")
        broken = client.get("/admin/preview?kind=in_transit")
        unknown = client.get("/admin/preview?kind=no_such_kind")

    assert '<option value="nl" selected>' in dutch_page.text
    assert re.search(r'id="subject">\[nl\]', dutch_page.text)
    assert broken.status_code == 500 and "in_transit.mjml" in broken.text and "Traceback" not in broken.text
    assert unknown.status_code == 400
