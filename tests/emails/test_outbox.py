"""The outbox plans each email once, sends it once, retries what may succeed later and loses nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import email
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlmodel import Session

from emails.outbox import SendReport, cancel_for_order, enqueue, release_held, suppress
from emails.send import Message, PermanentSendError, TransientSendError
from tests.factories import T0, add_order, add_shipment
from tracker.models import Coupon, Email, EmailState, OrderState, SuppressionScope


def plan(app, kind="order_confirmation", **order_fields):
    with Session(app.engine) as session:
        order = add_order(session, **order_fields)
        shipment = add_shipment(session, order) if kind != "order_confirmation" else None
        enqueue(session, app.config, kind, order, now=T0, shipment=shipment)
        session.commit()
        return order.id


def emails(app) -> list[Email]:
    with Session(app.engine) as session:
        return list(session.execute(select(Email).order_by(Email.id)).scalars())


def send(app, now=T0):
    return asyncio.run(app.outbox.send_due(app.engine, now))


def outbox_files(app) -> list[Path]:
    return sorted(app.config.emails.outbox_dir.glob("*.eml"))


class FlakySender:
    """Fails the first `failures` sends with `error`, then delivers to the real folder sender."""

    def __init__(self, inner, failures: int, error: Exception) -> None:
        self.inner, self.failures, self.error, self.calls = inner, failures, error, 0

    async def send(self, message: Message, name: str) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return await self.inner.send(message, name)


def test_planning_the_same_email_twice_plans_it_once(app):
    with Session(app.engine) as session:
        order = add_order(session)
        assert enqueue(session, app.config, "order_confirmation", order, now=T0) is True
        assert enqueue(session, app.config, "order_confirmation", order, now=T0 + timedelta(hours=1)) is False
        session.commit()
    assert len(emails(app)) == 1


def test_nothing_is_planned_for_history_a_cancelled_order_or_a_kind_switched_off(app):
    with Session(app.engine) as session:
        history = add_order(session, number="#1", notify=False)
        cancelled = add_order(session, number="#2")
        cancelled.state = OrderState.CANCELLED
        assert not enqueue(session, app.config, "order_confirmation", history, now=T0)
        assert not enqueue(session, app.config, "order_confirmation", cancelled, now=T0)
        off = dataclasses.replace(app.config, emails=dataclasses.replace(app.config.emails, enabled=frozenset()))
        assert not enqueue(session, off, "order_confirmation", add_order(session, number="#3"), now=T0)
        session.commit()
    assert emails(app) == []


def test_a_due_email_is_sent_once_as_a_complete_multipart_message(app):
    plan(app)
    report = send(app)
    assert report.sent == 1
    assert send(app).sent == 0
    [row] = emails(app)
    assert row.state is EmailState.SENT and row.sent_at == T0
    [eml] = outbox_files(app)
    message = email.message_from_bytes(eml.read_bytes())
    assert message["Message-ID"] == row.message_id
    assert message["X-Trackmail-Kind"] == "order_confirmation"
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Your order #1001 is confirmed"
    assert [p.get_content_type() for p in message.walk()][1:] == ["text/plain", "text/html"]
    assert eml.with_suffix(".html").read_text().startswith("<!doctype html>")


def test_an_email_not_yet_due_waits(app):
    with Session(app.engine) as session:
        order = add_order(session)
        enqueue(session, app.config, "order_confirmation", order, now=T0, due_at=T0 + timedelta(days=7))
        session.commit()
    assert send(app).sent == 0
    assert send(app, T0 + timedelta(days=7)).sent == 1


def test_a_transient_failure_is_retried_later_and_then_sent_once(app):
    plan(app)
    app.outbox.sender = FlakySender(app.outbox.sender, 2, TransientSendError("connection refused"))
    first = send(app)
    assert first.retried == 1 and first.sent == 0
    [row] = emails(app)
    assert row.state is EmailState.QUEUED and row.attempts == 1 and "connection refused" in row.last_error
    assert send(app).sent == 0  # backing off: not due yet
    send(app, T0 + timedelta(minutes=5))
    assert send(app, T0 + timedelta(minutes=15)).sent == 1
    assert emails(app)[0].state is EmailState.SENT
    assert len(outbox_files(app)) == 1


def test_a_server_down_for_longer_than_retry_for_dead_letters_with_the_reason(app):
    plan(app)
    app.outbox.sender = FlakySender(app.outbox.sender, 10**6, TransientSendError("connection refused"))
    assert send(app, T0).retried == 1  # the first failure starts the budget
    report = send(app, T0 + app.config.emails.retry_for)
    assert report.dead == 1
    [row] = emails(app)
    assert row.state is EmailState.DEAD and "connection refused" in row.last_error


def test_an_email_planned_days_ahead_gets_its_full_retry_budget_when_it_falls_due(app):
    with Session(app.engine) as session:
        enqueue(session, app.config, "order_confirmation", add_order(session), now=T0, due_at=T0 + timedelta(days=7))
        session.commit()
    app.outbox.sender = FlakySender(app.outbox.sender, 1, TransientSendError("connection refused"))
    assert send(app, T0 + timedelta(days=7)).retried == 1
    assert send(app, T0 + timedelta(days=7, hours=1)).sent == 1


def test_a_worker_whose_lease_ran_out_does_not_send_what_another_took_over(app):
    plan(app)
    sent = []

    class Recording:
        async def send(self, message, name):
            sent.append(message.message_id)
            return "ok"

    app.outbox.sender = Recording()
    with Session(app.engine) as session:  # worker A claimed at T0; worker B took it over 6 minutes later
        session.execute(update(Email).values(claimed_until=T0 + timedelta(minutes=11)))
        session.commit()
    report = SendReport()
    asyncio.run(app.outbox.send_one(app.engine, 1, T0, report, claimed_until=T0 + timedelta(minutes=5)))
    assert sent == [] and report.sent == 0
    asyncio.run(app.outbox.send_one(app.engine, 1, T0, report, claimed_until=T0 + timedelta(minutes=11)))
    assert len(sent) == 1


def test_a_server_that_cannot_be_reached_stops_the_batch_instead_of_timing_out_on_each(app):
    for n in range(5):
        with Session(app.engine) as session:
            enqueue(session, app.config, "order_confirmation", add_order(session, number=f"#{n}"), now=T0)
            session.commit()
    down = FlakySender(app.outbox.sender, 10**6, TransientSendError("cannot connect", server_down=True))
    app.outbox.sender = down
    report = send(app)
    assert down.calls == 1 and report.retried == 1
    assert all(row.claimed_until is None for row in emails(app))  # the rest wait, unclaimed, for the next run


def test_a_permanent_failure_is_dead_lettered_at_once(app):
    plan(app)
    app.outbox.sender = FlakySender(app.outbox.sender, 1, PermanentSendError("550 no such user"))
    assert send(app).dead == 1
    assert emails(app)[0].state is EmailState.DEAD
    assert emails(app)[0].last_error == "550 no such user"


def test_a_crash_before_marking_sent_resends_only_that_message_with_the_same_message_id(app):
    plan(app)
    send(app)
    with Session(app.engine) as session:  # as if the process died before the row was marked sent
        session.execute(update(Email).values(state=EmailState.QUEUED, sent_at=None))
        session.commit()
    assert send(app).sent == 1
    [eml] = outbox_files(app)  # the same file, rewritten: not a second email
    assert email.message_from_bytes(eml.read_bytes())["Message-ID"] == emails(app)[0].message_id


def test_a_cancelled_order_takes_its_waiting_emails_with_it(app):
    order_id = plan(app)
    with Session(app.engine) as session:
        from tracker.models import Order

        cancel_for_order(session, session.get_one(Order, order_id), T0)
        session.commit()
    assert send(app).sent == 0
    assert emails(app)[0].state is EmailState.CANCELLED


def test_marketing_without_consent_is_skipped_with_the_reason(app):
    plan(app, "feedback_request", consent=False)
    report = send(app)
    assert report.skipped == 1
    assert emails(app)[0].state is EmailState.SKIPPED
    assert "not agreed to marketing" in emails(app)[0].last_error


def test_a_broken_template_holds_the_email_until_it_is_fixed(app, tmp_path):
    broken = tmp_path / "templates"
    broken.mkdir()
    (broken / "order_confirmation.mjml").write_text("subject: Hi {{ order.number\n---\n<mj-section></mj-section>")
    shop = dataclasses.replace(app.config.shops["demo"], templates_dir=broken)
    from emails.render import Renderer

    app.outbox.renderers["demo"] = Renderer(shop.templates_dir)
    plan(app)
    report = send(app)
    assert report.held == 1 and report.sent == 0
    [row] = emails(app)
    assert row.state is EmailState.HELD and "order_confirmation.mjml" in row.last_error
    (broken / "order_confirmation.mjml").unlink()  # the merchant fixes it (here: back to the built-in)
    app.outbox.renderers["demo"] = Renderer(shop.templates_dir)
    assert release_held(app.engine) == 1
    assert send(app).sent == 1


def test_a_coupon_is_minted_once_per_email_even_when_sending_is_retried(app):
    plan(app, "resell_coupon")
    app.outbox.sender = FlakySender(app.outbox.sender, 1, TransientSendError("timeout"))
    send(app)
    send(app, T0 + timedelta(hours=1))
    with Session(app.engine) as session:
        coupons = list(session.execute(select(Coupon)).scalars())
    assert len(coupons) == 1
    assert coupons[0].code in outbox_files(app)[0].read_text()


def test_a_worker_whose_lease_ran_out_decides_nothing_about_what_another_took_over(app):
    plan(app)
    with Session(app.engine) as session:  # worker B holds it now; worker A's batch is late
        session.execute(update(Email).values(claimed_until=T0 + timedelta(minutes=11)))
        session.commit()
    # the customer unsubscribed meanwhile: A, judging alone, would mark the email skipped under B's lease
    suppress(app.engine, emails(app)[0].to_address, SuppressionScope.ALL, "complaint", "test", T0)
    report = SendReport()
    asyncio.run(app.outbox.send_one(app.engine, 1, T0, report, claimed_until=T0 + timedelta(minutes=5)))
    [row] = emails(app)
    assert (row.state, row.due_at, row.claimed_until) == (EmailState.QUEUED, T0, T0 + timedelta(minutes=11))
    assert report == SendReport()
