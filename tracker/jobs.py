"""The four jobs, in the order one cycle runs them. Each takes the app and `now`, and returns a report."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tracker.app import App
from tracker.followups import plan_followups
from tracker.poll import poll_shipments
from tracker.sync import sync_orders
from tracker.watch import watch_shipments


async def _plan_followups(app: App, now: datetime) -> int:
    return plan_followups(app, now)


async def send_emails(app: App, now: datetime) -> Any:
    return await app.outbox.send_due(app.engine, now)


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[App, datetime], Awaitable[Any]]


JOBS = (
    Job("sync_orders", sync_orders),
    Job("poll_shipments", poll_shipments),
    Job("watch_shipments", watch_shipments),
    Job("plan_followups", _plan_followups),
    Job("send_emails", send_emails),
)


async def run_cycle(app: App, now: datetime, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Every job once, in order: what `trackmail run --once` and each `simulate` step do."""
    return {job.name: await job.run(app, now) for job in JOBS if job.name not in skip}
