"""The watch_shipments job: notice parcels that went quiet, estimate delivery days, and send each shop's
merchant one digest a day of the parcels that need attention.

What is normal is learned from the shop's own delivered parcels (tracker/estimates.py); this module only
loads that history, applies the answers and remembers what it already did (a delay is flagged and emailed
once; a digest goes once per shop and day).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo
from itertools import pairwise

from sqlalchemy import select, update
from sqlmodel import Session

from emails.outbox import enqueue
from emails.policy import customer_zone
from emails.send import Message, SendError
from tracker.app import App, stored_setting, swap_setting
from tracker.config import ShopSettings
from tracker.digest import PROBLEM_OF_STATUS, ProblemShipment, build_digest, classify
from tracker.estimates import History, Lane, check_delay, estimate_delivery
from tracker.models import Customer, Order, Shipment, TrackingEvent
from tracker.status import FINAL, ShipmentStatus

log = logging.getLogger("trackmail.watch")
EVERY = timedelta(hours=1)  # learning from history is not free: at most once an hour
HISTORY_LIMIT = 3000  # recent delivered parcels to learn from
BATCH = 1000  # live parcels read, estimated and checked per transaction
RELEARN_EVERY = timedelta(hours=6)  # habits change slowly; reading the history is the costly part
DIGEST_AT = time(8)  # the merchant's morning, in the shop's time zone


@dataclass
class WatchReport:
    delayed: int = 0
    estimated: int = 0
    digests: int = 0
    errors: list[str] = field(default_factory=list)


def load_history(session: Session) -> History:
    """The newest delivered parcels, each as its lane, times and silences per status."""
    shipments = session.execute(
        select(Shipment.id, Shipment.courier, Order.country, Shipment.shipped_at, Shipment.delivered_at)
        .join(Order, Order.id == Shipment.order_id)
        .where(Shipment.status == ShipmentStatus.DELIVERED, Shipment.courier != "")
        .order_by(Shipment.delivered_at.desc()).limit(HISTORY_LIMIT)
    ).all()
    events: dict[int, list[tuple[datetime, ShipmentStatus]]] = {}
    ids = [s.id for s in shipments]
    for start in range(0, len(ids), 500):
        for shipment_id, at, status in session.execute(
            select(TrackingEvent.shipment_id, TrackingEvent.at, TrackingEvent.status)
            .where(TrackingEvent.shipment_id.in_(ids[start:start + 500]), TrackingEvent.applied.is_(True))
            .order_by(TrackingEvent.shipment_id, TrackingEvent.at)
        ):
            events.setdefault(shipment_id, []).append((at, status))
    rows = []
    for shipment_id, courier, country, shipped_at, delivered_at in shipments:
        scans = events.get(shipment_id, [])
        gaps = [(a[1], b[0] - a[0]) for a, b in pairwise(scans)]
        if scans:
            gaps.append((ShipmentStatus.PENDING, scans[0][0] - shipped_at))
        rows.append((courier, country, shipped_at, delivered_at, gaps))
    return History.from_rows(rows)


def _live_batch(session: Session, after: int):
    """The next BATCH live parcels after id `after`, as plain columns: a shop with a million parcels on the
    road must not be loaded at once."""
    return session.execute(
        select(Shipment.id, Shipment.order_id, Shipment.courier, Shipment.status, Shipment.shipped_at,
               Shipment.last_event_at, Shipment.estimated_delivery, Shipment.delayed_at, Order.country, Order.shop)
        .join(Order, Order.id == Shipment.order_id)
        .where(Shipment.status.not_in(list(FINAL)), Shipment.notify.is_(True), Shipment.courier != "",
               Shipment.next_poll_at.is_not(None), Shipment.id > after,
               Shipment.estimated_delivery.is_(None) | Shipment.delayed_at.is_(None))
        .order_by(Shipment.id).limit(BATCH)
    ).all()


def flag_delays(app: App, session: Session, history: History, now: datetime, report: WatchReport) -> None:
    """Estimate the delivery day of live parcels without one and flag (and email about) newly stuck ones,
    a batch at a time, each batch committed with the emails it plans."""
    zones: dict[tuple[str, str], tzinfo] = {}
    after = 0
    while rows := _live_batch(session, after):
        after = rows[-1].id
        estimates, delayed = [], []
        for row in rows:
            lane = Lane(row.courier, row.country)
            if row.estimated_delivery is None:
                key = (row.country, row.shop)
                if key not in zones:
                    zones[key] = customer_zone(row.country, app.config.shops[row.shop].timezone)
                day = estimate_delivery(history, lane, row.shipped_at, None, zones[key]).date
                estimates.append({"id": row.id, "estimated_delivery": day})
                report.estimated += 1
            if row.delayed_at is None:
                reason = check_delay(history, lane, row.status, row.last_event_at or row.shipped_at, now)
                if reason is not None:
                    delayed.append((row.id, row.order_id, reason))
        if estimates:
            session.execute(update(Shipment), estimates)  # bulk UPDATE by primary key
        for shipment_id, order_id, reason in delayed:
            shipment, order = session.get_one(Shipment, shipment_id), session.get_one(Order, order_id)
            shipment.delayed_at, shipment.delay_reason = now, reason
            report.delayed += 1
            log.info("shipment %s (%s) delayed: %s", shipment.id, shipment.tracking_number, reason)
            enqueue(session, app.config, "delayed", order, now=now, shipment=shipment)
            session.add(shipment)
        session.commit()
        session.expunge_all()


def _problems(session: Session, shop: str, since: datetime) -> Iterator[ProblemShipment]:
    """The shop's parcels that need a person, streamed as plain columns; SQL keeps only the candidates
    (`classify` has the last word)."""
    problem_statuses = [status for status in PROBLEM_OF_STATUS if status not in FINAL]
    rows = session.execute(
        select(Shipment.status, Shipment.delayed_at, Shipment.delay_reason, Shipment.status_description,
               Shipment.last_event_at, Shipment.shipped_at, Shipment.tracking_number, Shipment.courier,
               Shipment.tracking_url, Order.number, Customer.name)
        .join(Order, Order.id == Shipment.order_id)
        .join(Customer, Customer.id == Order.customer_id)
        .where(Order.shop == shop, Shipment.notify.is_(True))
        .where((Shipment.status.not_in(list(FINAL))) | (Shipment.final_at >= since))
        .where(Shipment.status.in_(problem_statuses) | Shipment.status.in_(list(FINAL))
               | Shipment.delayed_at.is_not(None))
        .execution_options(yield_per=BATCH)
    )
    for row in rows:
        kind = classify(row.status, row.delayed_at is not None)
        if kind is None:
            continue
        detail = row.delay_reason if kind == "delayed" else row.status_description
        when = (row.delayed_at if kind == "delayed" else row.last_event_at) or row.shipped_at
        yield ProblemShipment(row.number, row.name, row.tracking_number, row.courier, row.status, kind, when,
                              detail or "", row.tracking_url)


async def send_digests(app: App, now: datetime, report: WatchReport) -> None:
    """Once a day per shop, after the merchant's morning, to its alerts address."""
    for key, shop in app.config.shops.items():
        recipient = shop.alerts_email or shop.support_email
        zone = customer_zone("", shop.timezone)
        local = now.astimezone(zone)
        setting = f"digest:{key}"
        stored = stored_setting(app.engine, setting, (now - timedelta(days=1)).isoformat())
        last = datetime.fromisoformat(stored)
        if not recipient or local.time() < DIGEST_AT or last.astimezone(zone).date() >= local.date():
            continue
        if not swap_setting(app.engine, setting, stored, now.isoformat()):
            continue  # another daemon is sending today's digest
        try:
            sent = await _send_digest(app, key, shop, recipient, last, local, now)
        except BaseException as exc:  # not sent: the claim on today is given back, so the next run tries again
            swap_setting(app.engine, setting, now.isoformat(), stored)
            if not isinstance(exc, SendError):
                raise
            report.errors.append(f"digest for {key}: {exc}")
            continue
        report.digests += sent


async def _send_digest(app: App, key: str, shop: ShopSettings, recipient: str, last: datetime, local: datetime,
                       now: datetime) -> int:
    """Build and send one shop's digest; 0 when there is nothing to report."""
    with Session(app.engine) as session:
        digest = build_digest(shop.name, _problems(session, key, last), now)
    if digest is None:
        return 0
    message = Message(message_id=f"<digest-{key}-{local.date()}@trackmail.invalid>", sender=shop.sender,
                      to=recipient, subject=digest.subject, html=digest.html, text=digest.text, date=now,
                      kind="merchant_digest", shop=key,
                      headers={"X-Trackmail-Ref": f"merchant_digest:shop:{key}:{local.date()}"})
    sender = app.outbox.shop_senders.get(key, app.outbox.sender)
    await sender.send(message, f"digest-{key}-{local.date()}")
    return 1


async def watch_shipments(app: App, now: datetime) -> WatchReport:
    report = WatchReport()
    stored = stored_setting(app.engine, "watch:last_run", (now - EVERY).isoformat())
    if now - datetime.fromisoformat(stored) < EVERY or not swap_setting(app.engine, "watch:last_run", stored,
                                                                          now.isoformat()):
        return report  # ran within the hour, here or in another daemon
    try:
        with Session(app.engine) as session:
            learned_at, history = app.cache.get("history", (None, None))
            if learned_at is None or now - learned_at >= RELEARN_EVERY:
                history = load_history(session)
                app.cache["history"] = (now, history)
            flag_delays(app, session, history, now, report)
            session.commit()
    except BaseException:  # the hour is given back: the next tick tries again instead of an hour later
        swap_setting(app.engine, "watch:last_run", now.isoformat(), stored)
        raise
    await send_digests(app, now, report)
    return report
