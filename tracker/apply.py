"""Applying one courier answer to one shipment: its status, its history, the email it causes, when to ask again.

Shared by the poll job (tracker/poll.py, answers in batches) and the AfterShip webhook (tracker/web/webhooks.py,
one answer at a time). The caller owns the transaction: what an answer changes commits together or not at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import insert, select
from sqlmodel import Session

from carriers.base import AuthError, CarrierError, TrackingResult
from emails.outbox import email_row, enqueue, enqueue_rows
from tracker.app import App
from tracker.models import Order, Shipment, TrackingEvent
from tracker.status import FINAL, ShipmentState, ShipmentStatus, Transition, advance, expire, next_poll_delay

log = logging.getLogger("trackmail.poll")  # the poll job's logger, as before these lines left tracker/poll.py
ERROR_BACKOFF = (timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4))
AUTH_BACKOFF = timedelta(hours=1)


@dataclass
class Pending:
    """Rows a batch applied in one transaction inserts at its end, one statement per table: a statement per
    parcel cost more than the rest of applying an answer (bench/pipeline.py, on PostgreSQL most of all)."""

    events: list[dict] = field(default_factory=list)
    emails: list[dict] = field(default_factory=list)

    def insert(self, session: Session) -> int:
        """Insert what is pending; how many of the emails were new."""
        if self.events:
            session.execute(insert(TrackingEvent.__table__), self.events)
        return enqueue_rows(session, self.emails)


def _error_delay(failures: int) -> timedelta:
    return ERROR_BACKOFF[min(failures, len(ERROR_BACKOFF)) - 1]


def _store_events(session: Session, shipment: Shipment, transition: Transition, now: datetime,
                  pending: Pending | None) -> None:
    """Plain rows, inserted at once, or added to `pending` for the caller to insert with the rest of its
    batch: building a TrackingEvent object per event, or a statement per parcel, cost more than the rest of
    applying an answer (bench/pipeline.py profile)."""
    ignored = {id(item.event): item.reason for item in transition.ignored}
    rows = []
    for event in transition.new_events:
        reason = ignored.get(id(event), "")
        if event.status is ShipmentStatus.UNKNOWN:
            log.warning("shipment %s (%s): unknown courier code %r (%s) kept in history, status unchanged",
                        shipment.id, shipment.tracking_number, event.code, event.description)
        rows.append({"shipment_id": shipment.id, "at": event.at, "status": event.status, "code": event.code,
                     "description": event.description, "location": event.location, "recorded_at": now,
                     "applied": not reason, "note": reason})
    if pending is not None:
        pending.events += rows
    elif rows:
        session.execute(insert(TrackingEvent.__table__), rows)


def apply_result(app: App, session: Session, shipment: Shipment, result: TrackingResult, now: datetime,
                 seen: set[tuple] | None = None, pending: Pending | None = None) -> str | None:
    """Apply one courier answer to one shipment; returns the email kind planned, if any. `seen`: the keys of
    its stored events, when the caller read them for a whole batch at once (else they are read here);
    `pending`: where its new event and email rows go when the caller inserts a whole batch's at once (the
    kind is then returned as planned, and the caller counts which emails were new)."""
    shipment.claimed_until = None
    if result.error is not None:
        retry_later(shipment, result.error, now)
        _expire_if_silent(app, shipment, now)  # a number that only ever errors must not be polled forever
        return None
    shipment.poll_failures, shipment.last_error = 0, ""
    notify = None
    if result.found:
        if seen is None:
            seen = {(at, code, location) for at, code, location in session.execute(
                select(TrackingEvent.at, TrackingEvent.code, TrackingEvent.location)
                .where(TrackingEvent.shipment_id == shipment.id))}
        state = ShipmentState(shipment.status, shipment.last_event_at)
        transition = advance(state, result.events, seen, now, app.config.notification_horizon)
        _store_events(session, shipment, transition, now, pending)
        if transition.cause is not None:
            shipment.status, shipment.last_event_at = transition.after.status, transition.after.last_event_at
            shipment.delayed_at, shipment.delay_reason = None, ""  # news: no longer quiet
            shipment.status_code, shipment.status_description = transition.cause.code, transition.cause.description
            if shipment.status is ShipmentStatus.DELIVERED:
                shipment.delivered_at = transition.cause.at
        shipment.estimated_delivery = result.estimated_delivery or shipment.estimated_delivery
        shipment.signed_by = result.signed_by or shipment.signed_by
        if transition.notify:
            order = session.get_one(Order, shipment.order_id)
            if pending is not None:
                row = email_row(session, app.config, transition.notify, order, now=now, shipment=shipment)
                if row is not None:
                    pending.emails.append(row)
                    notify = transition.notify
            elif enqueue(session, app.config, transition.notify, order, now=now, shipment=shipment):
                notify = transition.notify
    _expire_if_silent(app, shipment, now)
    delay = next_poll_delay(ShipmentState(shipment.status, shipment.last_event_at), now)
    shipment.next_poll_at = None if delay is None else now + delay
    session.add(shipment)
    return notify


def _expire_if_silent(app: App, shipment: Shipment, now: datetime) -> None:
    expired = expire(ShipmentState(shipment.status, shipment.last_event_at), shipment.first_seen_at, now,
                     app.config.expire_after)
    if expired is not None:
        log.info("shipment %s (%s) expired: no news for %s", shipment.id, shipment.tracking_number,
                 app.config.expire_after)
        shipment.status, shipment.next_poll_at = expired.status, None
    if shipment.status in FINAL and shipment.final_at is None:
        shipment.final_at = now


def retry_later(shipment: Shipment, error: CarrierError, now: datetime) -> None:
    """Keep the shipment exactly as it was; try again later."""
    shipment.poll_failures += 1
    shipment.last_error = str(error)
    delay = AUTH_BACKOFF if isinstance(error, AuthError) else _error_delay(shipment.poll_failures)
    if error.retry_after:
        delay = max(delay, timedelta(seconds=error.retry_after))
    shipment.next_poll_at = now + delay
