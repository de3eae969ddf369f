"""`trackmail simulate`: the daemon's jobs on a virtual clock that jumps from one due time to the next.

Same jobs, same database code, same templates; only the clock and the accounts (sandbox only) differ. A
merchant previews their flows with it, and the tests drive the whole pipeline through it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel import Session

from emails.outbox import next_due
from tracker.app import App
from tracker.clock import ManualClock
from tracker.config import Config
from tracker.db import open_db
from tracker.jobs import run_cycle
from tracker.models import Customer, Email, EmailState, Order, Shipment
from tracker.poll import next_poll

DEFAULT_START = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)  # fixed, so a seed always tells the same story
SYNC_EVERY = timedelta(hours=1)
MIN_STEP = timedelta(minutes=15)


@dataclass
class Summary:
    start: datetime
    end: datetime
    seed: int | None
    orders: int
    shipments_by_status: dict[str, int]
    emails_by_kind: dict[str, int]  # sent, over the whole database
    emails_by_state: dict[str, int]
    sent_this_run: int
    steps: int
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["start"], data["end"] = self.start.isoformat(), self.end.isoformat()
        return data


def emails_per_customer(database_url: str) -> dict[str, list[dict]]:
    """Every customer's emails in time order, with what happened to each: what a merchant reads to check
    that their flows do what they meant."""
    engine = open_db(database_url)
    try:
        with Session(engine) as session:
            rows = session.execute(
                select(Customer.name, Customer.email, Email.kind, Email.flow, Email.state, Email.sent_at,
                       Email.due_at, Email.last_error, Order.number)
                .join(Customer, Customer.id == Email.customer_id).join(Order, Order.id == Email.order_id)
                .order_by(Customer.email, func.coalesce(Email.sent_at, Email.due_at), Email.id)
            ).all()
    finally:
        engine.dispose()
    result: dict[str, list[dict]] = {}
    for name, address, kind, flow, state, sent_at, due_at, error, number in rows:
        when = sent_at or due_at
        result.setdefault(f"{name} <{address}>", []).append({
            "at": when.isoformat(), "order": number, "kind": kind, "flow": flow, "state": str(state),
            "reason": error if state is not EmailState.SENT else ""})
    return result


def sandbox_only(config: Config) -> Config:
    """The config with its real accounts left out: a simulation never calls a real API."""
    return dataclasses.replace(
        config,
        marketplaces={n: a for n, a in config.marketplaces.items() if a.type == "sandbox"},
        couriers={n: a for n, a in config.couriers.items() if a.type == "sandbox"},
    )


def _summarise(app: App, start: datetime, end: datetime, seed: int | None, sent: int, steps: int,
               errors: list[str]) -> Summary:
    with Session(app.engine) as session:
        orders = session.execute(select(func.count()).select_from(Order)).scalar_one()
        shipments = dict(session.execute(select(Shipment.status, func.count()).group_by(Shipment.status)).all())
        by_kind = dict(session.execute(
            select(Email.kind, func.count()).where(Email.state == EmailState.SENT).group_by(Email.kind)
        ).all())
        by_state = dict(session.execute(select(Email.state, func.count()).group_by(Email.state)).all())
    return Summary(start, end, seed, orders, {str(k): v for k, v in sorted(shipments.items())},
                   dict(sorted(by_kind.items())), {str(k): v for k, v in sorted(by_state.items())}, sent, steps,
                   errors[:20])


async def simulate(
    config: Config,
    days: float,
    *,
    seed: int | None = None,
    database_url: str | None = None,
    outbox_dir: Path | None = None,
    start: datetime = DEFAULT_START,
) -> Summary:
    config = sandbox_only(config)
    if not config.marketplaces or not config.couriers:
        raise ValueError("simulate needs a sandbox marketplace and a sandbox courier in the config")
    clock = ManualClock(start)
    engine = open_db(database_url or config.database_url)
    app = App.create(config, clock, engine=engine, outbox_dir=outbox_dir, seed=seed)
    end = start + timedelta(days=days)
    sent, steps, next_sync, errors = 0, 0, start, []
    try:
        while clock() <= end:
            now = clock()
            steps += 1
            skip = frozenset() if now >= next_sync else frozenset({"sync_orders"})
            if not skip:
                next_sync = now + SYNC_EVERY
            reports = await run_cycle(app, now, skip=skip)
            sent += reports["send_emails"].sent
            for report in reports.values():
                errors += getattr(report, "errors", [])
            due = [t for t in (next_sync, next_poll(app), next_due(engine)) if t is not None]
            clock.set(max(min(due), now + MIN_STEP))
    finally:
        await app.aclose()
    if seed is None:  # report the seed the sandbox actually used
        seed = next(iter(config.marketplaces.values())).section.data.get("seed")
    summary = _summarise(app, start, end, seed, sent, steps, errors)
    engine.dispose()
    return summary
