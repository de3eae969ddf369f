"""Follow-up flows: timing in business days and local time, conditions checked when due, chained steps,
coupons redeemed."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import select
from sqlmodel import Session

from tests.factories import add_order, add_shipment
from tests.tracker.test_config import MINIMAL, error_for, write
from tracker.calendar import Delay
from tracker.config import load
from tracker.flows import Condition, Flow, Step
from tracker.followups import plan_followups
from tracker.models import Coupon, Email, EmailState, Order
from tracker.status import ShipmentStatus
from tracker.sync import record_redemptions

DELIVERED = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)  # a Friday afternoon


def deliver(app, *, number="#1", country="DE", consent=True, customer=None):
    with Session(app.engine) as session:
        order = add_order(session, number=number, consent=consent, customer=customer)
        order.country = country
        add_shipment(session, order, number=f"SB{number}", status=ShipmentStatus.DELIVERED, delivered_at=DELIVERED)
        session.commit()
        return order.id


def emails(app) -> list[Email]:
    with Session(app.engine) as session:
        return list(session.execute(select(Email).order_by(Email.id)).scalars())


def send(app, now):
    return asyncio.run(app.outbox.send_due(app.engine, now))


def with_flows(app, *flows: Flow):
    app.config = app.outbox.config = dataclasses.replace(app.config, flows=flows)


def test_the_built_in_flows_plan_a_feedback_request_and_a_coupon_for_the_customers_morning(app):
    deliver(app)
    assert plan_followups(app, DELIVERED) == 2
    feedback, coupon = emails(app)
    assert (feedback.kind, feedback.flow, feedback.marketing) == ("feedback_request", "feedback", True)
    # 7 days after Friday 16:00 in Berlin, moved to 10:00 local the next morning
    assert feedback.due_at == datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
    assert coupon.due_at == datetime(2026, 3, 21, 9, 0, tzinfo=UTC)
    assert plan_followups(app, DELIVERED) == 0  # planned once


def test_a_business_day_delay_skips_the_weekend_and_holidays(app):
    shop = app.config.shops["demo"]
    holidays = dataclasses.replace(shop.calendar, holidays=frozenset({datetime(2026, 3, 11).date()}))
    app.config.shops["demo"] = dataclasses.replace(shop, calendar=holidays)
    with_flows(app, Flow("thanks", "delivered", (Step("feedback_request", Delay(business_days=3), (), time(10)),)))
    deliver(app)
    plan_followups(app, DELIVERED)
    # Fri → Mon, Tue, (Wed is a holiday) Thu: the morning of the third business day, 10:00 in Berlin
    assert emails(app)[0].due_at == datetime(2026, 3, 12, 9, 0, tzinfo=UTC)


def test_a_condition_that_turns_false_after_planning_skips_the_email_when_due(app):
    order_id = deliver(app)
    plan_followups(app, DELIVERED)
    with Session(app.engine) as session:  # refunded a week later
        session.get_one(Order, order_id).refunded = True
        session.commit()
    send(app, datetime(2026, 3, 14, 9, 0, tzinfo=UTC))
    feedback = emails(app)[0]
    assert feedback.state is EmailState.SKIPPED and "refunded" in feedback.last_error


def test_a_parcel_that_never_arrived_stops_the_feedback_request(app):
    with_flows(app, Flow("feedback", "delivered", (
        Step("feedback_request", Delay(calendar=timedelta(days=1)), (Condition("all_delivered"),)),)))
    with Session(app.engine) as session:
        order = add_order(session)
        add_shipment(session, order, number="SB1", status=ShipmentStatus.DELIVERED, delivered_at=DELIVERED)
        add_shipment(session, order, number="SB2", status=ShipmentStatus.EXPIRED)
        session.commit()
    plan_followups(app, DELIVERED)
    send(app, DELIVERED + timedelta(days=1))
    assert "not delivered (expired)" in emails(app)[0].last_error


def test_a_recent_feedback_request_to_the_same_customer_holds_the_next_one(app):
    with_flows(app, Flow("feedback", "delivered", (Step("feedback_request", Delay(calendar=timedelta(hours=1)), (
        Condition("no_recent", "feedback_request", timedelta(days=30)),)),)))
    deliver(app, number="#1")
    plan_followups(app, DELIVERED)
    send(app, DELIVERED + timedelta(hours=1))
    with Session(app.engine) as session:
        first = session.get_one(Order, 1)
        customer_id = first.customer_id
    from tracker.models import Customer

    with Session(app.engine) as session:
        customer = session.get_one(Customer, customer_id)
        session.expunge(customer)
    deliver(app, number="#2", customer=customer)
    plan_followups(app, DELIVERED + timedelta(hours=2))
    send(app, DELIVERED + timedelta(hours=2))
    second = emails(app)[1]
    assert second.state is EmailState.SKIPPED and "within 30 days" in second.last_error


def test_an_unused_coupon_gets_its_reminder_with_the_same_code_and_a_used_one_does_not(app):
    first, second = deliver(app, number="#1"), deliver(app, number="#2")
    plan_followups(app, DELIVERED)
    coupon_due = datetime(2026, 3, 21, 9, 0, tzinfo=UTC)
    send(app, coupon_due)  # feedback requests and coupons (the cap allows two a week per customer)
    with Session(app.engine) as session:
        codes = {c.email_id: c.code for c in session.execute(select(Coupon)).scalars()}
        used = session.execute(select(Coupon).join(Email).where(Email.order_id == second)).scalar_one()
        record_redemptions(session, session.get_one(Order, second), (used.code.lower(),), coupon_due)
        session.commit()
    assert len(codes) == 2
    assert plan_followups(app, coupon_due) == 2  # each sent coupon plans its reminder
    reminder_due = datetime(2026, 3, 28, 9, 0, tzinfo=UTC)
    send(app, reminder_due)
    reminders = [e for e in emails(app) if e.kind == "coupon_reminder"]
    by_order = {e.order_id: e for e in reminders}
    assert by_order[first].state is EmailState.SENT
    assert by_order[second].state is EmailState.SKIPPED and "already used" in by_order[second].last_error
    eml = next(app.config.emails.outbox_dir.glob(f"{by_order[first].id:07d}-coupon_reminder.eml")).read_text()
    first_code = next(code for email_id, code in codes.items()
                      if next(e for e in emails(app) if e.id == email_id).order_id == first)
    assert first_code in eml


def test_a_redeemed_coupon_records_the_order_and_its_revenue(app):
    deliver(app)
    plan_followups(app, DELIVERED)
    send(app, datetime(2026, 3, 21, 9, 0, tzinfo=UTC))
    with Session(app.engine) as session:
        coupon = session.execute(select(Coupon)).scalar_one()
        again = add_order(session, number="#9")
        assert record_redemptions(session, again, (f" {coupon.code.lower()} ", "OTHER"), DELIVERED) == 1
        assert record_redemptions(session, again, (coupon.code,), DELIVERED) == 0  # counted once
        expected = (again.id, again.total, "EUR")
        session.commit()
        coupon = session.execute(select(Coupon)).scalar_one()
        assert (coupon.redeemed_order_id, coupon.revenue, coupon.currency) == expected


def test_flows_are_read_from_config_with_their_chain(tmp_path):
    text = MINIMAL + """
[[flows]]
name = "review"
trigger = "delivered"
delay = "5bd"
send_at = "09:30"
kind = "feedback_request"
conditions = ["all_delivered", "no_recent:feedback_request:60d"]
[flows.then]
delay = "3d"
kind = "resell_coupon"
conditions = ["no_reorder"]
"""
    [flow] = load(write(tmp_path, text)).flows
    assert flow.name == "review" and [s.kind for s in flow.steps] == ["feedback_request", "resell_coupon"]
    assert flow.steps[0].delay == Delay(business_days=5) and flow.steps[0].send_at == time(9, 30)
    assert flow.steps[0].conditions[1] == Condition("no_recent", "feedback_request", timedelta(days=60))
    assert flow.steps[1].delay == Delay(calendar=timedelta(days=3))


@pytest.mark.parametrize("entry, key, words", [
    ('name = "x"\ntrigger = "birthday"\nkind = "feedback_request"', "flows[0].trigger", "unknown trigger"),
    ('name = "x"\ntrigger = "delivered"\nkind = "poem"', "flows[0].kind", "no template for 'poem'"),
    ('name = "x"\ntrigger = "delivered"\nkind = "feedback_request"\nconditions = ["sunny"]',
     "flows[0].conditions", "unknown condition 'sunny'"),
    ('name = "x"\ntrigger = "delivered"\nkind = "feedback_request"\nsend_at = "noon"', "flows[0].send_at",
     "time of day"),
])
def test_a_bad_flow_names_the_key(tmp_path, entry, key, words):
    err = error_for(tmp_path, MINIMAL + "\n[[flows]]\n" + entry + "\n")
    assert err.key == key and words in err.problem


def test_a_custom_template_can_be_a_flow_step(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "care_tips.mjml").write_text("subject: Caring for {{ order.number }}\n---\n<mj-section></mj-section>")
    (folder / "care_tips.txt").write_text("Tips")
    text = MINIMAL.replace('name = "Demo"', 'name = "Demo"\ntemplates_dir = "mine"') + """
[[flows]]
name = "care"
trigger = "delivered"
delay = "2d"
kind = "care_tips"
marketing = false
"""
    [flow] = load(write(tmp_path, text)).flows
    assert flow.steps[0].kind == "care_tips" and flow.marketing is False
