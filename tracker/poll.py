"""The poll_shipments job: ask couriers about due shipments and apply what they say.

Claim (short transaction; a budgeted account's calls are counted in it, tracker/budget.py, and its shipments
chosen by tracker/priority.py) → fetch concurrently (no transaction open) → apply the answers in chunks, one
transaction each: the status change, its history and the email it causes commit together or not at all
(tracker/apply.py applies each answer).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlmodel import Session

from carriers.base import CarrierError, Courier, ResponseError, TrackingResult
from tracker.app import App
from tracker.apply import Pending, apply_result, retry_later
from tracker.budget import (
    Budget,
    add_calls,
    allowance,
    budget_of,
    lock_calls,
    pause,
    pause_for,
    paused_until,
    unbanked,
)
from tracker.db import claim
from tracker.models import CourierPause, Customer, Order, Shipment, TrackingEvent
from tracker.priority import PollFacts, Rounds, rank, round_shares, worth_a_call
from tracker.status import FINAL, MIN_POLL_GAP, ShipmentStatus

log = logging.getLogger("trackmail.poll")
LEASE = timedelta(minutes=10)
CLAIM_LIMIT = 1000
ROUNDS_LOOKBACK = timedelta(days=30)
APPLY_CHUNK = 200  # answers applied per transaction (bench/pipeline.py measured its figures with 200)


@dataclass
class PollReport:
    polled: int = 0
    changed: int = 0
    emails_planned: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


async def _fetch(courier: Courier, numbers: list[str], gate: asyncio.Semaphore) -> list[TrackingResult]:
    async with gate:
        try:
            results = await courier.track(numbers)
        except CarrierError as exc:
            return [TrackingResult(n, found=False, error=exc) for n in numbers]
        except Exception as exc:  # an adapter bug must cost this batch a retry, never the whole poll
            log.exception("courier %s failed unexpectedly", courier.name)
            error = ResponseError(f"unexpected error in the adapter: {exc!r}", source=courier.name)
            return [TrackingResult(n, found=False, error=error) for n in numbers]
    by_number = {r.tracking_number: r for r in results}
    missing = CarrierError("the courier's answer left this number out", source=courier.name)
    return [by_number.get(n) or TrackingResult(n, found=False, error=missing) for n in numbers]


Work = dict[str, list[tuple[int, str]]]  # courier account → claimed (shipment id, tracking number)


def _claim(app: App, now: datetime) -> Work:
    """Lease this tick's work, account by account; an account with a daily budget gets only what its budget
    allows now, chosen by `tracker.priority`, and the calls are counted in the same transaction."""
    work: Work = {}
    lease = app.lease(LEASE)  # real time: a sped-up demo clock stretches it
    with Session(app.engine) as session:
        for name, courier in app.couriers.items():
            if paused_until(session, name, now) is None:
                budget = budget_of(courier)
                budgeted = budget.per_day is not None
                items = (_claim_budgeted(session, name, budget, now, lease, _rounds(app, session, name, now),
                                         real_lease=app.config.schedule.lease or LEASE)
                         if budgeted else _claim_due(session, name, now, lease))
                if items:
                    session.execute(update(Shipment).where(Shipment.id.in_([i for i, _n in items]))
                                    .values(last_polled_at=now))
                    work[name] = items
            session.commit()  # per account: a counter row stays locked only while its own claim is made
    return work


def _rounds(app: App, session: Session, account: str, now: datetime) -> Rounds:
    """When this courier's delivery rounds start, by destination country, from the last ROUNDS_LOOKBACK of
    out-for-delivery scans; learned again once an hour (kept in `app.cache`)."""
    key = ("rounds", account)
    learned_at, rounds = app.cache.get(key, (None, {}))
    if learned_at is None or now - learned_at >= timedelta(hours=1):
        hours = session.execute(
            select(Order.country, TrackingEvent.at).join(Shipment, Shipment.id == TrackingEvent.shipment_id)
            .join(Order, Order.id == Shipment.order_id)
            .where(Shipment.courier == account, TrackingEvent.status == ShipmentStatus.OUT_FOR_DELIVERY,
                   TrackingEvent.at >= now - ROUNDS_LOOKBACK)
        ).all()
        rounds = round_shares((country, at.hour) for country, at in hours)
        app.cache[key] = (now, rounds)
    return rounds


def _claim_due(session: Session, account: str, now: datetime, lease: timedelta) -> list[tuple[int, str]]:
    """No daily cap: every due shipment, at its status cadence (`status.POLL_EVERY`)."""
    ids = claim(session, Shipment, due=Shipment.next_poll_at, now=now, lease=lease, limit=CLAIM_LIMIT,
                where=[Shipment.courier == account, Shipment.status.not_in(list(FINAL))])
    rows = session.execute(select(Shipment.id, Shipment.tracking_number).where(Shipment.id.in_(ids))).all()
    return [(shipment_id, number) for shipment_id, number in rows]


def _claim_budgeted(session: Session, account: str, budget: Budget, now: datetime, lease: timedelta = LEASE,
                    rounds: Rounds | None = None, real_lease: timedelta = LEASE) -> list[tuple[int, str]]:
    """As many calls as the budget allows now, each filled to the courier's batch size, best shipments first.
    `lease` is in the jobs' clock; `real_lease` is the same lease in real seconds, which the per-second pacing
    of carriers/http.py counts in."""
    assert budget.per_day is not None
    used = lock_calls(session, account, now)
    calls = allowance(budget.per_day, used, now)
    if budget.per_second:  # no more than the in-memory limiter lets through while the lease lasts
        calls = min(calls, max(1, int(budget.per_second * real_lease.total_seconds() / 2)))
    if calls <= 0:
        return []
    rows = session.execute(
        select(Shipment.id, Shipment.tracking_number, Shipment.status, Shipment.last_event_at,
               Shipment.last_polled_at, Shipment.first_seen_at, Shipment.estimated_delivery, Order.country)
        .join(Order, Order.id == Shipment.order_id)
        .where(Shipment.courier == account, Shipment.next_poll_at <= now, Shipment.status.not_in(list(FINAL)),
               or_(Shipment.claimed_until.is_(None), Shipment.claimed_until < now))
    ).all()
    facts = {(r.id, r.tracking_number): PollFacts(r.status, r.last_event_at, r.last_polled_at, r.first_seen_at,
                                                  r.estimated_delivery, r.country) for r in rows}
    ranked = rank(facts.items(), now, rounds)
    worth = sum(worth_a_call(facts[key], now, rounds) for key in ranked)  # they rank first
    spend = max(math.ceil(worth / budget.batch_size), unbanked(budget.per_day, used, now))  # in calls
    # a call that goes anyway carries a full batch; no more per tick than an uncapped account's claim
    chosen = ranked[:min(min(spend, calls) * budget.batch_size, CLAIM_LIMIT)]
    if not chosen:
        return []
    claimed = set(session.execute(
        update(Shipment).where(Shipment.id.in_([i for i, _n in chosen]),
                               or_(Shipment.claimed_until.is_(None), Shipment.claimed_until < now))
        .values(claimed_until=now + lease).returning(Shipment.id)
    ).scalars())
    items = [(i, n) for i, n in chosen if i in claimed]  # best first, so the first batches carry the best
    add_calls(session, account, now, math.ceil(len(items) / budget.batch_size))
    return items


def _preload(session: Session, batch: list[tuple[int, str]],
             results: list[TrackingResult]) -> tuple[dict[int, Shipment], dict[int, set[tuple]], list]:
    """The batch's shipments and stored event keys in one query each, and the orders and customers of those
    with news (the emails they may cause), so applying them costs no query per shipment. The returned list
    keeps the orders and customers alive in the session's (weak) identity map, where get_one finds them."""
    ids = [shipment_id for shipment_id, _number in batch]
    shipments = {s.id: s for s in session.execute(select(Shipment).where(Shipment.id.in_(ids))).scalars()}
    seen: dict[int, set[tuple]] = defaultdict(set)
    rows = select(TrackingEvent.shipment_id, TrackingEvent.at, TrackingEvent.code, TrackingEvent.location)
    for shipment_id, at, code, location in session.execute(rows.where(TrackingEvent.shipment_id.in_(ids))):
        seen[shipment_id].add((at, code, location))
    news = {shipments[i].order_id for (i, _n), r in zip(batch, results, strict=True)
            if i in shipments and r.found and any(e.key not in seen[i] for e in r.events)}
    orders = list(session.execute(select(Order).where(Order.id.in_(news))).scalars()) if news else []
    customers = {o.customer_id for o in orders}
    kept = [*orders, *(session.execute(select(Customer).where(Customer.id.in_(customers))).scalars()
                       if customers else [])]
    return shipments, seen, kept


def _apply_each(app: App, session: Session, batch: list[tuple[int, str]], results: list[TrackingResult],
                now: datetime, report: PollReport, isolate: bool) -> None:
    """`isolate`: each shipment in its own savepoint, a failure recorded on its shipment; else a failure
    raises and the caller rolls everything back."""
    shipments, seen, _kept = _preload(session, batch, results)
    pending = Pending()  # together: the batch's new events and emails in one statement each
    for (shipment_id, number), result in zip(batch, results, strict=True):
        shipment = shipments.get(shipment_id) or session.get_one(Shipment, shipment_id)
        before = shipment.status
        if result.error is not None:
            report.failed += 1
            report.errors.append(str(result.error))
        if not isolate:
            apply_result(app, session, shipment, result, now, seen[shipment_id], pending)
        else:
            try:
                with session.begin_nested():  # one bad answer (a naive time, a vanished shop) stays its own
                    planned = apply_result(app, session, shipment, result, now, seen[shipment_id])
                    report.emails_planned += planned is not None
            except Exception as exc:
                log.exception("shipment %s (%s): could not apply the courier's answer", shipment_id, number)
                session.expire(shipment)
                retry_later(shipment, ResponseError(f"could not apply the answer: {exc!r}", source=shipment.courier,
                                                    tracking_number=number), now)
                shipment.claimed_until = None
                session.add(shipment)
                report.errors.append(f"{number}: {exc!r}")
        report.changed += shipment.status != before
        report.polled += 1
    report.emails_planned += pending.insert(session)


def _apply_batch(app: App, batch: list[tuple[int, str]], results: list[TrackingResult], now: datetime,
                 report: PollReport) -> None:
    """Apply many answers in one transaction: one flush and one commit, not one savepoint and one commit per
    shipment (bench/pipeline.py). Should any fail (an answer that cannot be applied, a row the database
    refuses), that transaction is rolled back and the batch applied again with a savepoint per shipment, so
    the failure costs only its own shipment a retry."""
    if len(batch) > 1:
        together = PollReport()
        try:
            with Session(app.engine) as session:
                with session.no_autoflush:
                    _apply_each(app, session, batch, results, now, together, isolate=False)
                session.commit()
        except Exception as exc:
            log.warning("applying %d answers together failed (%r): applying them one by one", len(batch), exc)
        else:
            for name in (f.name for f in fields(PollReport)):
                setattr(report, name, getattr(report, name) + getattr(together, name))
            return
    with Session(app.engine) as session:
        _apply_each(app, session, batch, results, now, report, isolate=True)
        session.commit()


async def poll_shipments(app: App, now: datetime) -> PollReport:
    return await poll_work(app, _claim(app, now), now)


async def poll_work(app: App, work: Work, now: datetime) -> PollReport:
    """Fetch claimed work (no transaction open), pause accounts that were told to wait, apply the answers."""
    report = PollReport()
    jobs, batches = [], []
    for courier_name, items in work.items():
        courier = app.couriers[courier_name]
        gate = asyncio.Semaphore(courier.concurrency)
        for start in range(0, len(items), courier.batch_size):
            batch = items[start:start + courier.batch_size]
            batches.append((courier_name, batch))
            jobs.append(_fetch(courier, [number for _id, number in batch], gate))
    answers = await asyncio.gather(*jobs)
    _pause_refused(app, [(name, results) for (name, _batch), results in zip(batches, answers, strict=True)], now)
    pending: list[tuple[tuple[int, str], TrackingResult]] = []
    for (_name, batch), results in zip(batches, answers, strict=True):
        errors = {str(r.error) for r in results if r.error is not None}
        for error in errors:
            log.error("polling failed, shipments kept as they were and retried later: %s", error)
        pending += zip(batch, results, strict=True)
    for start in range(0, len(pending), APPLY_CHUNK):  # one transaction per chunk, not per courier call
        chunk = pending[start:start + APPLY_CHUNK]
        _apply_batch(app, [item for item, _r in chunk], [r for _item, r in chunk], now, report)
    _floor_budgeted(app, pending, now)
    return report


def _pause_refused(app: App, answers: list[tuple[str, list[TrackingResult]]], now: datetime) -> None:
    """A 429 or a Retry-After pauses the whole account, in the database, so every daemon waits."""
    pauses: dict[str, tuple[datetime, str]] = {}
    for name, results in answers:
        for result in results:
            until = pause_for(result.error, now) if result.error is not None else None
            if until is not None and until > pauses.get(name, (now, ""))[0]:
                pauses[name] = (until, str(result.error))
    if not pauses:
        return
    with Session(app.engine) as session:
        for name, (until, reason) in pauses.items():
            log.warning("courier account %s paused until %s: %s", name, until.isoformat(), reason)
            pause(session, name, until, reason)
        session.commit()


def _floor_budgeted(app: App, polled: list[tuple[tuple[int, str], TrackingResult]], now: datetime) -> None:
    """Accounts with a day budget: a shipment answered well is due again after MIN_POLL_GAP, and the
    priority decides whether it is worth a call then; the status cadence is for uncapped accounts."""
    budgeted = {name for name, courier in app.couriers.items() if budget_of(courier).per_day}
    ids = [shipment_id for (shipment_id, _n), result in polled if result.error is None]
    if not ids or not budgeted:
        return
    soon = now + MIN_POLL_GAP
    with Session(app.engine) as session:
        session.execute(update(Shipment).where(
            Shipment.id.in_(ids), Shipment.courier.in_(budgeted), Shipment.poll_failures == 0,
            Shipment.next_poll_at > soon).values(next_poll_at=soon))
        session.commit()


def next_poll(app: App) -> datetime | None:
    """When the next shipment falls due, counting an account's pause (a spent budget shows as due now)."""
    with Session(app.engine) as session:
        due = session.execute(
            select(Shipment.courier, func.min(Shipment.next_poll_at))
            .where(Shipment.next_poll_at.is_not(None), Shipment.courier.in_(list(app.couriers)))
            .group_by(Shipment.courier)
        ).all()
        pauses = dict(session.execute(select(CourierPause.account, CourierPause.until)).all())
    times = [max(first, pauses.get(courier) or first) for courier, first in due if first is not None]
    return min(times, default=None)
