"""Which shipments are worth a courier call now: a pure function of what we know about each and `now`.

What a customer notices is the time between a courier event and its email. If a shipment's email-worthy
news arrives at rate λ (per hour) and we last asked the courier t hours ago, the news waiting for us has
been waiting λ·t²/2 hours in expectation; one call ends that wait. Spending each call on the largest λ·t²
is the greedy form of the classic result for polling under a budget: poll each item at an interval
proportional to 1/√λ. Parcels near the door (out for delivery, due today, just scanned) get called often;
line-haul and stale ones rarely, but never less than every MAX_QUIET while the budget allows.

λ comes from the status and a few facts (below). The figures are judged from how parcels move (a van
round takes hours, a customs hold a day or two) and tuned on the sandbox's journeys: they order shipments,
their absolute size does not matter.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TypeVar

from tracker.status import FINAL, STALE_AFTER, ShipmentStatus

K = TypeVar("K", bound=Hashable)

S = ShipmentStatus
MAX_QUIET = timedelta(hours=12)  # an active shipment is asked at least this often while the budget allows
RECENT_SCAN = timedelta(hours=6)  # a parcel scanned this recently is moving: more news is near
RECENT_FACTOR = 2.0
STALE_FACTOR = 0.25  # no scan for STALE_AFTER: line-haul or lost, news is rare

# Email-worthy events per hour, by status, when the delivery day is not (yet) today.
RATES: dict[ShipmentStatus, float] = {
    S.PENDING: 1 / 8,  # the first scan may already be a pickup (in-transit email)
    S.INFO_RECEIVED: 1 / 8,  # pickup usually within a working day
    S.IN_TRANSIT: 1 / 48,  # hub scans send nothing; only a hold or the delivery round would
    S.OUT_FOR_DELIVERY: 1 / 3,  # delivered or attempted within the round, a few hours
    S.FAILED_ATTEMPT: 1 / 24,  # the next attempt is the next working day
    S.AVAILABLE_FOR_PICKUP: 1 / 36,  # collected within a few days
    S.EXCEPTION: 1 / 24,  # customs and weather holds last a day or two
    S.UNKNOWN: 1 / 12,
}
DUE_TODAY_RATE = 1 / 3  # estimated delivery today (or overdue): the out-for-delivery scan comes this morning
NO_ESTIMATE_RATE = 1 / 12  # in transit and the courier gives no date: we cannot tell line-haul from the last leg
DUE_TODAY = frozenset({S.IN_TRANSIT, S.FAILED_ATTEMPT, S.EXCEPTION})


@dataclass(frozen=True, slots=True)
class PollFacts:
    """What the scoring needs of one shipment (columns of `Shipment`)."""

    status: ShipmentStatus
    last_event_at: datetime | None  # the courier event that set the status
    last_polled_at: datetime | None  # None: never asked
    first_seen_at: datetime
    estimated_delivery: date | None = None


def news_rate(facts: PollFacts, now: datetime) -> float:
    """Expected email-worthy courier events per hour for this shipment now (0 once final)."""
    if facts.status in FINAL:
        return 0.0
    rate = RATES[facts.status]
    if facts.status in DUE_TODAY and facts.estimated_delivery is not None:
        if facts.estimated_delivery <= now.date():
            rate = max(rate, DUE_TODAY_RATE)
    elif facts.status is S.IN_TRANSIT:
        rate = NO_ESTIMATE_RATE
    if facts.last_event_at is not None and facts.status is not S.OUT_FOR_DELIVERY:
        quiet = now - facts.last_event_at
        if quiet <= RECENT_SCAN:
            rate *= RECENT_FACTOR
        elif quiet > STALE_AFTER:
            rate *= STALE_FACTOR
    return rate


def hours_unasked(facts: PollFacts, now: datetime) -> float:
    since = facts.last_polled_at or facts.first_seen_at
    return max(0.0, (now - since).total_seconds() / 3600)


def value(facts: PollFacts, now: datetime) -> float:
    """Expected hours of waiting that one call ends now: λ·t²/2."""
    t = hours_unasked(facts, now)
    return news_rate(facts, now) * t * t / 2


def priority(facts: PollFacts, now: datetime) -> tuple[int, float]:
    """Sort key, larger first: never asked or quiet past MAX_QUIET comes first (longest waiting first), then
    by expected value."""
    if facts.status in FINAL:
        return (0, 0.0)
    if facts.last_polled_at is None or now - facts.last_polled_at >= MAX_QUIET:
        return (2, hours_unasked(facts, now))
    return (1, value(facts, now))


def rank(candidates: Iterable[tuple[K, PollFacts]], now: datetime) -> list[K]:
    """The candidates' keys, most worth a call first; ties keep the given order."""
    scored = [(priority(facts, now), index, key) for index, (key, facts) in enumerate(candidates)]
    scored.sort(key=lambda item: (-item[0][0], -item[0][1], item[1]))
    return [key for _score, _index, key in scored]
