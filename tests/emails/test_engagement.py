"""Engagement tracking in the email: links go through a signed click redirect (except mailto, tel, anchors
and the unsubscribe link), an open pixel is added, and flow steps can branch on whether the previous email
was clicked."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import select
from sqlmodel import Session

from emails import conditions
from emails.engagement import CLICK, clicked, instrument, no_click, read_click, read_open
from emails.outbox import enqueue
from emails.tokens import make_token
from tests.factories import T0, add_order, add_shipment
from tracker.calendar import Delay
from tracker.config import WebSettings
from tracker.flows import Condition, Flow, Step
from tracker.followups import plan_followups
from tracker.models import Customer, Email, EmailEvent, EmailState, Order
from tracker.status import ShipmentStatus

SECRET = b"s" * 32
BASE = "https://shop.example.com/trackmail"
PAGE = """<html><head><link href="https://fonts.googleapis.com/css?family=Lato" rel="stylesheet"></head>
<body><a href="https://shop.example.com/p/beanie?utm_source=mail&amp;utm_medium=email" class="button">Shop</a>
<a class="x" href='http://example.org/a'>plain</a>
<a href="mailto:help@shop.example.com">mail us</a> <a href="tel:+4930123">call</a> <a href="#top">top</a>
<a data-href="https://ignored.example" href="https://shop.example.com/unsubscribe/abc123">Unsubscribe</a>
</body></html>"""


def hrefs(html: str) -> list[str]:
    return re.findall(r"""<a\b[^>]*?\shref=["']([^"']*)""", html)


def token_of(href: str) -> str:
    return href.rsplit("/c/", 1)[1]


def test_web_links_go_through_the_signed_click_redirect_for_this_email():
    out = instrument(PAGE, base_url=BASE, secret=SECRET, email_id=7)
    first, second = hrefs(out)[:2]
    assert first.startswith(f"{BASE}/c/") and second.startswith(f"{BASE}/c/")
    assert read_click(SECRET, token_of(first)) == (7, "https://shop.example.com/p/beanie?utm_source=mail&utm_medium=email")
    assert read_click(SECRET, token_of(second)) == (7, "http://example.org/a")


def test_the_token_signs_the_unescaped_url_as_the_brief_spells_it():
    out = instrument(PAGE, base_url=BASE, secret=SECRET, email_id=7)
    expected = make_token(SECRET, CLICK, "7|https://shop.example.com/p/beanie?utm_source=mail&utm_medium=email")
    assert token_of(hrefs(out)[0]) == expected


def test_mailto_tel_anchors_the_unsubscribe_link_and_stylesheets_are_left_alone():
    out = instrument(PAGE, base_url=BASE, secret=SECRET, email_id=7)
    assert hrefs(out)[2:] == ["mailto:help@shop.example.com", "tel:+4930123", "#top",
                              "https://shop.example.com/unsubscribe/abc123"]
    assert '<link href="https://fonts.googleapis.com/css?family=Lato"' in out
    assert 'data-href="https://ignored.example"' in out  # only the href attribute counts



def test_the_rest_of_each_tag_is_kept_and_any_quoting_or_case_is_understood():
    out = instrument(PAGE + '<A HREF=https://example.net/b title="a > b">x</A>', base_url=BASE, secret=SECRET,
                     email_id=7)
    assert re.search(rf'<a href="{BASE}/c/[^"]+" class="button">Shop</a>', out)
    assert re.search(rf'<a class="x" href="{BASE}/c/[^"]+">plain</a>', out)
    tag = re.search(r'<A HREF="([^"]+)" title="a > b">x</A>', out)
    assert tag and read_click(SECRET, token_of(tag.group(1))) == (7, "https://example.net/b")


def test_an_open_pixel_for_this_email_goes_just_before_the_end_of_the_body():
    out = instrument(PAGE, base_url=BASE + "/", secret=SECRET, email_id=7)
    pixel = re.search(r'<img src="([^"]+)" width="1" height="1" alt="" style="display:none"></body>', out)
    assert pixel is not None
    src = pixel.group(1)
    assert src.startswith(f"{BASE}/o/") and src.endswith(".gif")
    assert read_open(SECRET, src.removeprefix(f"{BASE}/o/").removesuffix(".gif")) == 7


def test_instrumenting_twice_wraps_nothing_twice():
    once = instrument(PAGE, base_url=BASE, secret=SECRET, email_id=7)
    twice = instrument(once, base_url=BASE, secret=SECRET, email_id=7)
    assert hrefs(twice) == hrefs(once)


def test_nothing_changes_when_tracking_is_off_or_there_is_no_web_side():
    assert instrument(PAGE, base_url=BASE, secret=SECRET, email_id=7, enabled=False) == PAGE
    assert instrument(PAGE, base_url="", secret=SECRET, email_id=7) == PAGE


def test_a_click_token_for_another_purpose_or_a_non_web_url_reads_as_nothing():
    assert read_click(SECRET, make_token(SECRET, "open", "7")) is None
    assert read_click(SECRET, make_token(SECRET, CLICK, "7|javascript:alert(1)")) is None
    assert read_click(SECRET, make_token(SECRET, CLICK, "https://no-email-id.example")) is None
    assert read_click(b"other" * 8, make_token(SECRET, CLICK, "7|https://x.example")) is None


def test_a_real_rendered_email_keeps_its_unsubscribe_link_and_tracks_the_rest(app):
    app.config = app.outbox.config = dataclasses.replace(app.config, web=WebSettings(public_url=BASE))
    with Session(app.engine) as session:
        order = add_order(session)
        enqueue(session, app.config, "resell_coupon", order, now=T0, shipment=add_shipment(session, order))
        session.commit()
        email_id = session.execute(select(Email.id)).scalar_one()
        message = app.outbox._prepare(session, email_id, T0)
    out = message.html  # the outbox instruments marketing emails itself when the web side is on
    links = [h for h in hrefs(out) if h.startswith("http")]
    assert links and all(h.startswith(f"{BASE}/c/") or "/unsubscribe/" in h for h in links)
    assert any("/unsubscribe/" in h for h in links)
    assert all(read_click(app.outbox.secret, token_of(h))[0] == email_id for h in links if "/c/" in h)
    assert out.count(f'{BASE}/o/') == 1


# Flow conditions

def add_flow_emails(app, first_state: EmailState = EmailState.SENT) -> tuple[int, int]:
    """A coupon email (step 0) and its reminder (step 1) for one order."""
    with Session(app.engine) as session:
        order = add_order(session)
        rows = [Email(idempotency_key=f"k{step}", message_id=f"<m{step}@x>", kind=kind, shop="demo",
                      order_id=order.id, customer_id=order.customer_id, to_address="ada@example.com",
                      state=state, created_at=T0, due_at=T0, flow="coupon", step=step, marketing=True)
                for step, kind, state in ((0, "resell_coupon", first_state),
                                          (1, "coupon_reminder", EmailState.QUEUED))]
        session.add_all(rows)
        session.commit()
        return rows[0].id, rows[1].id


def check(app, condition, email_id: int) -> str | None:
    with Session(app.engine) as session:
        email = session.get_one(Email, email_id)
        order = session.get_one(Order, email.order_id)
        customer = session.get_one(Customer, email.customer_id)
        return condition(session, email, order, customer, Condition(condition.__name__), T0)


def add_event(app, email_id: int, kind: str) -> None:
    with Session(app.engine) as session:
        session.add(EmailEvent(email_id=email_id, kind=kind, url="https://x.example", at=T0))
        session.commit()


def test_without_a_click_no_click_holds_and_clicked_does_not(app):
    _coupon, reminder = add_flow_emails(app)
    assert check(app, no_click, reminder) is None
    assert check(app, clicked, reminder) == "the customer clicked no link in the resell_coupon email"


def test_an_open_is_not_a_click(app):
    coupon, reminder = add_flow_emails(app)
    add_event(app, coupon, "open")
    assert check(app, no_click, reminder) is None


def test_after_a_click_clicked_holds_and_no_click_gives_the_reason(app):
    coupon, reminder = add_flow_emails(app)
    add_event(app, coupon, "click")
    assert check(app, no_click, reminder) == "the customer clicked a link in the resell_coupon email"
    assert check(app, clicked, reminder) is None


def test_a_click_on_another_orders_email_does_not_count(app):
    _coupon, reminder = add_flow_emails(app)
    with Session(app.engine) as session:
        other = add_order(session, number="#2", email="bob@example.com")
        row = Email(idempotency_key="other", message_id="<o@x>", kind="resell_coupon", shop="demo",
                    order_id=other.id, customer_id=other.customer_id, to_address="bob@example.com",
                    state=EmailState.SENT, created_at=T0, due_at=T0, flow="coupon", step=0)
        session.add(row)
        session.commit()
        other_id = row.id
    add_event(app, other_id, "click")
    assert check(app, no_click, reminder) is None


@pytest.mark.parametrize("condition", [no_click, clicked])
def test_both_fail_when_the_previous_step_was_never_sent_or_there_is_none(app, condition):
    coupon, reminder = add_flow_emails(app, first_state=EmailState.SKIPPED)
    assert check(app, condition, reminder) == "the previous step of this flow was not sent"
    assert check(app, condition, coupon) == "the previous step of this flow was not sent"


DELIVERED = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)


def run_coupon_flow(app, monkeypatch, *, click: bool) -> Email:
    """Coupon, then a reminder 5 days later only if the coupon email got no click."""
    monkeypatch.setitem(conditions.CHECKS, "no_click", no_click)  # until emails/conditions.py registers it
    flow = Flow("coupon", "delivered", (
        Step("resell_coupon", Delay(calendar=timedelta(days=1)), (), time(10)),
        Step("coupon_reminder", Delay(calendar=timedelta(days=5)), (Condition("no_click"),), time(10))))
    app.config = app.outbox.config = dataclasses.replace(app.config, flows=(flow,))
    with Session(app.engine) as session:
        order = add_order(session)
        order.country = "DE"
        add_shipment(session, order, status=ShipmentStatus.DELIVERED, delivered_at=DELIVERED)
        session.commit()
    later = DELIVERED + timedelta(days=2)
    plan_followups(app, DELIVERED)
    assert asyncio.run(app.outbox.send_due(app.engine, later)).sent == 1
    if click:
        with Session(app.engine) as session:
            coupon_id = session.execute(select(Email.id).where(Email.step == 0)).scalar_one()
        add_event(app, coupon_id, "click")
    plan_followups(app, later)
    asyncio.run(app.outbox.send_due(app.engine, later + timedelta(days=6)))
    with Session(app.engine) as session:
        return session.execute(select(Email).where(Email.step == 1)).scalar_one()


def test_the_reminder_goes_when_the_coupon_email_got_no_click(app, monkeypatch):
    assert run_coupon_flow(app, monkeypatch, click=False).state is EmailState.SENT


def test_the_reminder_is_skipped_when_the_coupon_email_was_clicked(app, monkeypatch):
    reminder = run_coupon_flow(app, monkeypatch, click=True)
    assert reminder.state is EmailState.SKIPPED
    assert reminder.last_error == "the customer clicked a link in the resell_coupon email"


def test_only_marketing_emails_are_tracked_unless_the_shop_asks_for_all(app):
    def prepared(kind: str, track: str):
        app.config = app.outbox.config = dataclasses.replace(
            app.config, web=WebSettings(public_url=BASE, track_engagement=track))
        with Session(app.engine) as session:
            order = add_order(session, number=f"#{kind}{track}")
            enqueue(session, app.config, kind, order, now=T0, shipment=add_shipment(session, order, f"S{kind}{track}"))
            session.commit()
            email_id = session.execute(select(Email.id).order_by(Email.id.desc())).scalars().first()
            return app.outbox._prepare(session, email_id, T0).html

    assert f"{BASE}/o/" in prepared("feedback_request", "marketing")
    assert f"{BASE}/o/" not in prepared("delivered", "marketing")
    assert f"{BASE}/o/" in prepared("delivered", "all")
    assert f"{BASE}/o/" not in prepared("feedback_request", "off")
