"""Sixty simulated days: the follow-ups, reminders, delay emails and digests come in the numbers the flows
imply, at the times they promise."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlmodel import Session

from emails.policy import customer_zone
from tests.factories import REPO
from tests.outbox_check import read_outbox
from tests.postgres import BACKENDS, database_for
from tracker.config import load
from tracker.db import open_db
from tracker.models import Coupon, Email, EmailState, Order, Shipment
from tracker.simulate import DEFAULT_START, simulate
from tracker.status import ShipmentStatus

DAYS = 60


@pytest.fixture(scope="module", params=BACKENDS)
def sixty_days(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sixty")
    config = load(REPO / "config.toml")
    with database_for(request.param, folder, "sixty_") as url:
        summary = asyncio.run(simulate(config, DAYS, database_url=url, outbox_dir=folder / "outbox"))
        engine = open_db(url)
        with Session(engine) as session:
            emails = list(session.execute(select(Email)).scalars())
            orders = {o.id: o for o in session.execute(select(Order)).scalars()}
            shipments = list(session.execute(select(Shipment)).scalars())
            coupons = {c.email_id: c for c in session.execute(select(Coupon)).scalars()}
        engine.dispose()
    return config, summary, emails, orders, shipments, coupons, folder / "outbox"


def sent(emails, kind):
    return [e for e in emails if e.kind == kind and e.state is EmailState.SENT]


def test_every_fully_delivered_order_starts_both_flows_and_each_email_is_accounted_for(sixty_days):
    config, _summary, emails, orders, shipments, _coupons, _outbox = sixty_days
    end = DEFAULT_START + timedelta(days=DAYS)
    by_order = defaultdict(list)
    for shipment in shipments:
        by_order[shipment.order_id].append(shipment)
    settled = {order_id for order_id, parcels in by_order.items()
               if all(p.status is ShipmentStatus.DELIVERED for p in parcels) and any(p.notify for p in parcels)
               and max(p.delivered_at for p in parcels) < end - timedelta(days=1)}
    started = defaultdict(set)
    for email in emails:
        if email.flow and email.step == 0:
            started[email.flow].add(email.order_id)
    assert settled and settled <= started["feedback"] and settled <= started["coupon"]
    for email in emails:  # nothing is silently dropped: every planned email was sent, is waiting, or says why not
        assert email.state in (EmailState.SENT, EmailState.QUEUED) or email.last_error, email


def test_feedback_requests_go_a_week_after_the_last_delivery_in_the_customers_morning(sixty_days):
    config, _summary, emails, orders, shipments, _coupons, _outbox = sixty_days
    delivered = defaultdict(list)
    for shipment in shipments:
        if shipment.delivered_at:
            delivered[shipment.order_id].append(shipment.delivered_at)
    requests = sent(emails, "feedback_request")
    assert len(requests) > 100
    for email in requests:
        order = orders[email.order_id]
        assert email.sent_at >= max(delivered[email.order_id]) + config.emails.feedback_after
        local = email.sent_at.astimezone(customer_zone(order.country, config.shops[order.shop].timezone))
        assert local.time().hour >= 9 and local.time().hour < 20  # morning, or later if the cap deferred it


def test_a_reminder_follows_only_an_unused_coupon_a_week_later_with_the_same_code(sixty_days):
    _config, _summary, emails, _orders, _shipments, coupons, outbox = sixty_days
    coupon_of_order = {e.order_id: (e, coupons[e.id]) for e in sent(emails, "resell_coupon")}
    reminders = sent(emails, "coupon_reminder")
    assert coupon_of_order and reminders
    files = {m.ref: m.file for m in read_outbox(outbox)}
    for reminder in reminders:
        coupon_email, coupon = coupon_of_order[reminder.order_id]
        assert reminder.sent_at >= coupon_email.sent_at + timedelta(days=7)
        assert coupon.redeemed_order_id is None
        assert coupon.code in files[reminder.idempotency_key].read_text()
    # every coupon sent early enough either got its reminder or a recorded reason not to
    late_enough = [e for e, _c in coupon_of_order.values()
                   if e.sent_at < DEFAULT_START + timedelta(days=DAYS - 9)]
    reminded = {e.order_id: e for e in emails if e.kind == "coupon_reminder"}
    for coupon_email in late_enough:
        reminder = reminded.get(coupon_email.order_id)
        assert reminder is not None and (reminder.state is EmailState.SENT or reminder.last_error)


def test_quiet_parcels_are_flagged_once_and_their_customers_told_once(sixty_days):
    _config, summary, emails, _orders, shipments, _coupons, _outbox = sixty_days
    delayed_mail = [e for e in emails if e.kind == "delayed"]
    assert summary.emails_by_kind.get("delayed", 0) > 0
    assert len({e.shipment_id for e in delayed_mail}) == len(delayed_mail)  # one per parcel
    lost = [s for s in shipments if s.status is ShipmentStatus.EXPIRED]
    assert lost and all(any(e.shipment_id == s.id for e in delayed_mail) for s in lost if s.notify)


def test_the_merchant_gets_one_digest_a_day_naming_the_problem_parcels(sixty_days):
    _config, _summary, _emails, _orders, _shipments, _coupons, outbox = sixty_days
    digests = [m for m in read_outbox(outbox, digests=True) if m.kind == "merchant_digest"]
    days = sorted(m.file.stem[-10:] for m in digests)  # digest-<shop>-YYYY-MM-DD
    assert len(days) == len(set(days)) and len(days) >= DAYS - 5  # a quiet day sends none
    assert all(m.to == "ops@northwind.example.com" and "need" in m.subject for m in digests)
