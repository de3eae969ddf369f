"""Courier call budgets: how many calls an account may still make, counted in the database.

Couriers ration their APIs per account and per day (DHL: 250 calls, reset at 00:00 GMT). Several daemons
may share one database, so the day's count lives in a table (`CourierCalls`), locked and incremented in the
same transaction that claims the work: together the daemons never exceed the budget. Per-second pacing
stays in memory (carriers/http.py `RateLimiter`): a second is too short to be worth a database round trip.

A courier that answers 429 (or sends Retry-After) is paused as a whole account (`CourierPause`), and every
daemon sees the pause: one parcel's backoff would let the next parcel hit the same wall a second later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import select, update
from sqlmodel import Session

from carriers.base import CarrierError, Courier
from tracker.db import insert_ignore
from tracker.models import CourierCalls, CourierPause

DAY = timedelta(days=1)
# The day's budget is earned evenly through the day, this far ahead: a busy morning cannot spend the
# evening's calls, and unspent calls carry over to the hours that need them.
PACE_AHEAD = timedelta(hours=1)
BANK = timedelta(hours=3)  # unspent calls kept for news-rich hours, at most this many hours' worth
DEFAULT_PAUSE = timedelta(minutes=15)  # a 429 without Retry-After


@dataclass(frozen=True, slots=True)
class Budget:
    """One account's limits as the poller uses them; None: no daily cap."""

    per_day: int | None
    per_second: float | None
    batch_size: int


def budget_of(courier: Courier) -> Budget:
    """The account's limits: adapters keep them on their `Http` (carriers/http.py) or on themselves."""
    limits = getattr(courier, "limits", None) or getattr(getattr(courier, "http", None), "limits", None)
    return Budget(getattr(limits, "per_day", None), getattr(limits, "per_second", None),
                  max(1, int(courier.batch_size)))


def window_start(now: datetime) -> datetime:
    """The UTC day `now` falls in: the window the couriers' daily quotas count in."""
    return datetime.combine(now.astimezone(UTC).date(), time(), UTC)


def allowance(per_day: int, used: int, now: datetime, ahead: timedelta = PACE_AHEAD) -> int:
    """Calls the account may still make now: the day's budget earned evenly, never more than the day's."""
    elapsed = now - window_start(now)
    earned = min(per_day, math.ceil(per_day * min(1.0, (elapsed + ahead) / DAY)))
    return max(0, earned - used)


def unbanked(per_day: int, used: int, now: datetime, bank: timedelta = BANK) -> int:
    """Calls to spend now whatever they find: what is earned beyond `bank`'s worth (or beyond what the rest of
    the window can use). The rest is banked for better moments, e.g. the morning delivery rounds."""
    to_end = window_start(now) + DAY - now
    keep = math.floor(per_day * min(bank, to_end) / DAY)
    return max(0, allowance(per_day, used, now) - keep)


def lock_calls(session: Session, account: str, now: datetime) -> int:
    """Calls already spent in `now`'s window, with the counter row locked until the caller commits.

    The first statement writes (insert, then a no-op update), so SQLite takes its write lock before reading
    and PostgreSQL locks the row: a second daemon waits here until this one has counted its claim."""
    window = window_start(now)
    insert_ignore(session, CourierCalls, account=account, window=window, calls=0)
    key = (CourierCalls.account == account, CourierCalls.window == window)
    session.execute(update(CourierCalls).where(*key).values(calls=CourierCalls.calls))
    return session.execute(select(CourierCalls.calls).where(*key).with_for_update()).scalar_one()


def add_calls(session: Session, account: str, now: datetime, calls: int) -> None:
    """Count `calls` against `now`'s window (after `lock_calls` in the same transaction)."""
    if calls:
        session.execute(update(CourierCalls)
                        .where(CourierCalls.account == account, CourierCalls.window == window_start(now))
                        .values(calls=CourierCalls.calls + calls))


def calls_spent(session: Session, account: str, now: datetime) -> int:
    """Calls counted in `now`'s window (a plain read, for reports and tests)."""
    return session.execute(select(CourierCalls.calls).where(
        CourierCalls.account == account, CourierCalls.window == window_start(now))).scalar_one_or_none() or 0


def paused_until(session: Session, account: str, now: datetime) -> datetime | None:
    """When a paused account may be called again, or None if it is not paused."""
    until = session.execute(select(CourierPause.until).where(CourierPause.account == account)).scalar_one_or_none()
    return until if until is not None and until > now else None


def pause(session: Session, account: str, until: datetime, reason: str) -> None:
    """Pause the account until `until`; an existing later pause is kept."""
    if not insert_ignore(session, CourierPause, account=account, until=until, reason=reason[:500]):
        session.execute(update(CourierPause).where(CourierPause.account == account, CourierPause.until < until)
                        .values(until=until, reason=reason[:500]))


def pause_for(error: CarrierError, now: datetime) -> datetime | None:
    """Until when an error asks the whole account to wait: a 429, or any answer with Retry-After."""
    if error.status_code != 429 and error.retry_after is None:
        return None
    wait = timedelta(seconds=error.retry_after) if error.retry_after is not None else DEFAULT_PAUSE
    return now + wait
