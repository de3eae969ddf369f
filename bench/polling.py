"""Quota-aware polling against polling every shipment every 2 hours, on one sandbox world, at one budget.

    python -m bench.polling [--days 14] [--batch-size 1] [--orders-per-day 12] [--seed 7]

Both strategies run the real jobs (sync_orders, then polling and applying the answers into the database)
on a ManualClock that steps every `--step` minutes through the same seeded sandbox shop and courier.

Fairness: (a) fixed polling runs first, with no cap, and the busiest full day it needed becomes the daily
budget B (`--budget mean`: its mean day instead, so (b) gets what (a) spends on average). Then (b), the
quota-aware poller, runs with the sandbox courier's simulated quota set to B (over it the courier answers
429). With the busiest day, (a) is never starved and both obey B; (b) may spend all of B every day, which is
what a budget is for, and its calls per day are printed beside (a)'s.

Delay: from the courier event that reached a milestone (the first event of that status in the shipment's
history, TrackingEvent.at) to the moment its email was planned (Email.created_at). Events in the warm-up
(the first `--warmup` days, while the shop fills up) and in the last day (their emails may still be coming)
are left out. `--batch-size 1` plays DHL, UPS or USPS, which take one number per call.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, update
from sqlmodel import Session

from bench.report import Figure, table
from tracker.app import App
from tracker.budget import add_calls, lock_calls
from tracker.clock import ManualClock
from tracker.config import Config, load
from tracker.db import claim, open_db
from tracker.models import CourierCalls, Email, Shipment, TrackingEvent
from tracker.poll import LEASE, poll_shipments, poll_work
from tracker.settings import Section
from tracker.simulate import DEFAULT_START
from tracker.status import FINAL, MILESTONE_KINDS, ShipmentStatus
from tracker.sync import sync_orders

REPO = Path(__file__).resolve().parents[1]
FIXED_EVERY = timedelta(hours=2)
SYNC_EVERY = timedelta(minutes=15)
KIND_STATUS = {kind: status for status, kind in MILESTONE_KINDS.items()}


@dataclasses.dataclass
class Run:
    name: str
    delays: list[float]  # minutes, one per milestone email
    calls_by_day: dict[datetime, int]  # counted by the courier itself (refused calls included)
    delivered: int
    refused: int  # calls over the courier's quota
    seconds: float

    def per_day(self, days: list[datetime]) -> float:
        return statistics.fmean(self.calls_by_day.get(day, 0) for day in days)


def world(config: Config, *, seed: int, orders_per_day: float, batch_size: int, per_day: int | None,
          folder: Path) -> Config:
    """The bundled config with one sandbox shop and courier, the courier's batch size and quota set."""
    def with_keys(account, **keys):
        data = {k: v for k, v in account.section.data.items() if k not in keys}
        data.update({k: v for k, v in keys.items() if v is not None})
        return dataclasses.replace(account, section=Section(account.section.file, account.section.path, data))

    shop = next(a for a in config.marketplaces.values() if a.type == "sandbox")
    courier = next(a for a in config.couriers.values() if a.type == "sandbox")
    return dataclasses.replace(
        config, database_url=f"sqlite:///{folder / 'bench.db'}",
        emails=dataclasses.replace(config.emails, outbox_dir=folder / "outbox"),
        marketplaces={shop.name: with_keys(shop, seed=seed, orders_per_day=orders_per_day, lookback="0d")},
        couriers={courier.name: with_keys(courier, seed=seed, batch_size=batch_size, per_day=per_day)},
    )


async def poll_fixed(app: App, now: datetime):
    """Baseline: every active shipment every FIXED_EVERY, in due order, within the day cap if there is one."""
    name, courier = next(iter(app.couriers.items()))
    per_day = courier.limits.per_day
    with Session(app.engine) as session:
        ids = claim(session, Shipment, due=Shipment.next_poll_at, now=now, lease=LEASE, limit=100_000,
                    where=[Shipment.courier == name, Shipment.status.not_in(list(FINAL))])
        calls, used = math.ceil(len(ids) / courier.batch_size), lock_calls(session, name, now)
        if per_day is not None:
            calls = min(calls, max(0, per_day - used))
        keep, drop = ids[:calls * courier.batch_size], ids[calls * courier.batch_size:]
        session.execute(update(Shipment).where(Shipment.id.in_(drop)).values(claimed_until=None))
        session.execute(update(Shipment).where(Shipment.id.in_(keep)).values(last_polled_at=now))
        add_calls(session, name, now, calls)
        rows = session.execute(select(Shipment.id, Shipment.tracking_number).where(Shipment.id.in_(keep))).all()
        session.commit()
    report = await poll_work(app, {name: [(i, n) for i, n in rows]}, now)
    with Session(app.engine) as session:
        session.execute(update(Shipment).where(Shipment.id.in_(keep), Shipment.next_poll_at.is_not(None),
                                               Shipment.poll_failures == 0).values(next_poll_at=now + FIXED_EVERY))
        session.commit()
    return report


def _delays(app: App, first: datetime, last: datetime) -> list[float]:
    with Session(app.engine) as session:
        firsts = {(s, status): at for s, status, at in session.execute(
            select(TrackingEvent.shipment_id, TrackingEvent.status, func.min(TrackingEvent.at))
            .group_by(TrackingEvent.shipment_id, TrackingEvent.status)).all()}
        emails = session.execute(select(Email.shipment_id, Email.kind, Email.created_at)
                                 .where(Email.shipment_id.is_not(None), Email.kind.in_(list(KIND_STATUS)))).all()
    delays = []
    for shipment_id, kind, planned in emails:
        event_at = firsts.get((shipment_id, KIND_STATUS[kind]))
        if event_at is not None and first <= event_at <= last:
            delays.append((planned - event_at).total_seconds() / 60)
    return delays


async def run(name: str, config: Config, args: argparse.Namespace, fixed: bool) -> Run:
    started = time.perf_counter()
    start = DEFAULT_START
    end = start + timedelta(days=args.days)
    clock = ManualClock(start)
    engine = open_db(config.database_url)
    app = App.create(config, clock, engine=engine)
    step, next_sync = timedelta(minutes=args.step), start
    try:
        while clock() <= end:
            now = clock()
            if now >= next_sync:
                await sync_orders(app, now)
                next_sync = now + SYNC_EVERY
            await (poll_fixed(app, now) if fixed else poll_shipments(app, now))
            clock.set(now + step)
        courier = next(iter(app.couriers.values()))
        per_day = courier.limits.per_day
        calls = {datetime.combine(day, datetime.min.time(), start.tzinfo): n for day, n in courier.calls.items()}
        refused = sum(max(0, n - per_day) for n in calls.values()) if per_day else 0
        with Session(engine) as session:
            delivered = session.execute(select(func.count()).select_from(Shipment)
                                        .where(Shipment.status == ShipmentStatus.DELIVERED)).scalar_one()
            counted = dict(session.execute(select(CourierCalls.window, CourierCalls.calls)).all())
        if counted != calls:
            raise AssertionError(f"{name}: the database counted {counted}, the courier saw {calls}")
        delays = _delays(app, start + timedelta(days=args.warmup), end - timedelta(days=1))
    finally:
        await app.aclose()
        engine.dispose()
    return Run(name, delays, calls, delivered, refused, time.perf_counter() - started)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(args: argparse.Namespace) -> list[Figure]:
    bundled = load(REPO / "config.toml")
    with tempfile.TemporaryDirectory() as tmp:
        folders = [Path(tmp) / "fixed", Path(tmp) / "quota"]
        for folder in folders:
            folder.mkdir()
        base = dict(seed=args.seed, orders_per_day=args.orders_per_day, batch_size=args.batch_size)
        fixed = asyncio.run(run("fixed", world(bundled, per_day=None, folder=folders[0], **base), args, True))
        days = [DEFAULT_START.replace(hour=0) + timedelta(days=d) for d in range(args.warmup, args.days)]
        spent = [fixed.calls_by_day.get(day, 0) for day in days]
        budget = max(spent) if args.budget == "busiest" else math.floor(statistics.fmean(spent))
        quota = asyncio.run(run("quota", world(bundled, per_day=budget, folder=folders[1], **base), args, False))
    section = "polling"
    what = f"sandbox, {args.orders_per_day:g} orders/day, batch {args.batch_size}, budget {budget} calls/day"
    median_q, median_f = statistics.median(quota.delays), statistics.median(fixed.delays)
    per_delivered_q, per_delivered_f = (sum(r.calls_by_day.values()) / max(1, r.delivered) for r in (quota, fixed))
    return [
        Figure(section, f"median event→email delay, quota-aware ({what})", median_q, "min",
               "fixed 2-hour polling", median_f, "≤ 0.5× fixed", median_q <= 0.5 * median_f),
        Figure(section, "p95 event→email delay, quota-aware", _p(quota.delays, 0.95), "min",
               "fixed 2-hour polling", _p(fixed.delays, 0.95)),
        Figure(section, "calls per delivered shipment, quota-aware", per_delivered_q, "calls",
               "fixed 2-hour polling", per_delivered_f),
        Figure(section, "calls per day, quota-aware", quota.per_day(days), "calls/day",
               "fixed 2-hour polling", fixed.per_day(days)),
        Figure(section, "busiest day, quota-aware", max(quota.calls_by_day.get(d, 0) for d in days), "calls",
               "the budget", budget, "≤ budget", max(quota.calls_by_day.values()) <= budget),
        Figure(section, "calls refused with 429, quota-aware", quota.refused, "calls", target="0",
               met=quota.refused == 0),
        Figure(section, f"milestone emails measured, quota-aware ({quota.seconds:.0f} s run)", len(quota.delays),
               "emails", f"fixed ({fixed.seconds:.0f} s run)", len(fixed.delays)),
    ]


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--warmup", type=int, default=2, help="days left out while the shop fills up")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--orders-per-day", type=float, default=12.0)
    parser.add_argument("--batch-size", type=int, default=1, help="numbers per courier call")
    parser.add_argument("--step", type=int, default=5, help="minutes between polling ticks")
    parser.add_argument("--budget", choices=("busiest", "mean"), default="busiest",
                        help="(a)'s busiest day, so (a) is never starved, or its mean day: what (a) spends")
    return parser


def main() -> None:
    print(table(measure(parser().parse_args())))


if __name__ == "__main__":
    main()
