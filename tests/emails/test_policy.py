"""Send-time decisions: transactional mail goes, marketing needs consent, room and daylight."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlmodel import Session

from emails.outbox import enqueue, suppress
from emails.policy import customer_zone, window_opens
from emails.send import PermanentSendError
from tests.factories import T0, add_order, add_shipment
from tracker.models import Customer, Email, EmailState, Order, Suppression, SuppressionScope

NOON = T0.replace(hour=12)


def plan(app, kind, *, now=NOON, email="ada@example.com", consent=True, number="#1", **order_fields):
    with Session(app.engine) as session:
        order = add_order(session, number=number, email=email, consent=consent)
        for key, value in order_fields.items():
            setattr(order, key, value)
        shipment = add_shipment(session, order, number=f"SB{number}") if kind != "order_confirmation" else None
        enqueue(session, app.config, kind, order, now=now, shipment=shipment)
        session.commit()


def send(app, now=NOON):
    return asyncio.run(app.outbox.send_due(app.engine, now))


def states(app) -> list[tuple[str, EmailState, str]]:
    with Session(app.engine) as session:
        return [(e.kind, e.state, e.last_error) for e in session.execute(select(Email).order_by(Email.id)).scalars()]


def test_an_unsubscribed_customer_still_gets_tracking_emails_but_no_marketing(app):
    suppress(app.engine, "Ada <ADA@example.com>", SuppressionScope.MARKETING, "clicked unsubscribe", "link", T0)
    plan(app, "delivered")
    plan(app, "feedback_request", number="#2")
    send(app)
    [(_, tracking, _), (_, marketing, why)] = states(app)
    assert tracking is EmailState.SENT
    assert marketing is EmailState.SKIPPED and "unsubscribed" in why


def test_a_dead_address_gets_nothing_at_all(app):
    suppress(app.engine, "ada@example.com", SuppressionScope.ALL, "hard bounce", "postmark 406", T0)
    plan(app, "delivered")
    send(app)
    assert states(app)[0][1] is EmailState.SKIPPED


def test_a_wider_suppression_replaces_a_narrower_one_and_never_the_reverse(app):
    assert suppress(app.engine, "a@example.com", SuppressionScope.MARKETING, "unsubscribed", "link", T0)
    assert suppress(app.engine, "a@example.com", SuppressionScope.ALL, "bounced", "smtp", T0)
    assert not suppress(app.engine, "a@example.com", SuppressionScope.MARKETING, "again", "link", T0)
    with Session(app.engine) as session:
        row = session.execute(select(Suppression)).scalar_one()
    assert row.scope is SuppressionScope.ALL and row.reason == "bounced"


def test_a_permanent_failure_for_a_dead_address_suppresses_it(app):
    class Refusing:
        async def send(self, message, name):
            raise PermanentSendError("550 5.1.1 no such user", suppress=True)

    app.outbox.sender = Refusing()
    plan(app, "delivered")
    send(app)
    with Session(app.engine) as session:
        row = session.execute(select(Suppression)).scalar_one()
    assert row.email == "ada@example.com" and row.scope is SuppressionScope.ALL


@pytest.mark.parametrize("policy, expected", [(False, EmailState.SKIPPED), (True, EmailState.SENT)])
def test_unknown_consent_follows_the_configured_policy(app, policy, expected):
    app.outbox.config = app.config = dataclasses.replace(
        app.config, emails=dataclasses.replace(app.config.emails, consent_when_unknown=policy))
    plan(app, "feedback_request", consent=None)
    send(app)
    assert states(app)[0][1] is expected


def test_marketing_to_a_marketplace_relay_address_is_off_unless_the_feed_allows_it(app):
    plan(app, "feedback_request", email="x1y2@marketplace.amazon.de")
    plan(app, "shipment_confirmation", email="x1y2@marketplace.amazon.de", number="#2")
    send(app)
    [(_, marketing, why), (_, tracking, _)] = states(app)
    assert marketing is EmailState.SKIPPED and "relay address" in why
    assert tracking is EmailState.SENT


def test_a_refunded_order_gets_no_marketing(app):
    plan(app, "resell_coupon", refunded=True)
    send(app)
    assert states(app)[0][1] is EmailState.SKIPPED


def test_a_customer_who_ordered_again_gets_no_coupon(app):
    plan(app, "resell_coupon")
    with Session(app.engine) as session:
        first = session.execute(select(Order)).scalar_one()
        session.add(Order(marketplace="demo-shop", shop="demo", external_id="again", number="#9",
                          customer_id=first.customer_id, created_at=NOON - timedelta(hours=1),
                          updated_at=NOON, currency="EUR", total=first.total))
        session.commit()
    send(app)
    assert states(app)[0][2] == "the customer has ordered again since"


def test_the_frequency_cap_defers_marketing_until_there_is_room(app):
    with Session(app.engine) as session:
        first = add_order(session, number="#0")
        orders = [first] + [add_order(session, number=f"#{n}", customer=session.get(Customer, first.customer_id))
                            for n in (1, 2)]
        for order in orders:
            enqueue(session, app.config, "feedback_request", order, now=NOON)
        session.commit()
    report = send(app)
    assert report.sent == 2 and report.deferred == 1
    with Session(app.engine) as session:
        waiting = session.execute(select(Email).where(Email.state == EmailState.QUEUED)).scalar_one()
    assert waiting.due_at == NOON + app.config.emails.marketing_cap_window
    assert "frequency cap" in waiting.last_error


def test_marketing_waits_for_the_customers_morning(app):
    plan(app, "feedback_request", now=T0.replace(hour=23), country="DE")
    report = send(app, T0.replace(hour=23))  # midnight in Berlin
    assert report.deferred == 1
    with Session(app.engine) as session:
        waiting = session.execute(select(Email)).scalar_one()
    assert waiting.due_at == datetime(2026, 3, 3, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
    assert send(app, waiting.due_at).sent == 1


def test_tracking_emails_go_at_night(app):
    plan(app, "out_for_delivery", now=T0.replace(hour=23), country="DE")
    assert send(app, T0.replace(hour=23)).sent == 1


def test_the_window_is_computed_in_the_customers_zone():
    zone = ZoneInfo("America/New_York")
    inside = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 10:00 in New York
    assert window_opens(inside, zone, time(9), time(20)) is None
    late = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)  # 21:00 the day before in New York
    assert window_opens(late, zone, time(9), time(20)) == datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
    early = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # 07:00 in New York
    assert window_opens(early, zone, time(9), time(20)) == datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def test_a_customers_zone_comes_from_their_country_else_the_shops():
    assert customer_zone("FR", "UTC").key == "Europe/Paris"
    assert customer_zone("", "Europe/Berlin").key == "Europe/Berlin"
    assert customer_zone("ZZ", "Asia/Tokyo").key == "Asia/Tokyo"
