"""Which shipments are worth a courier call now: a pure function of what we know about each and `now`.

What a customer notices is the time between a courier event and its email. If a shipment's email-worthy
news arrives at rate λ (per hour) and we last asked the courier t hours ago, the news waiting for us has
been waiting λ·t²/2 hours in expectation; one call ends that wait. Spending each call on the largest λ·t²
is the greedy form of the classic result for polling under a budget: poll each item at an interval
proportional to 1/√λ. Parcels near the door (out for delivery, due today, just scanned) get called often;
line-haul and stale ones rarely, but never less than every MAX_QUIET while the budget allows.

λ comes from the status and a few facts (below). The figures are judged from how parcels move (a van
round takes hours, a customs hold a day or two) and were tuned on the sandbox's journeys (bench/polling.py):
they order shipments, their absolute size does not matter. A parcel due today waits for its round, which
starts in the destination's morning: the hours rounds start are learned per destination country from past
out-for-delivery scans (`round_shares`), so no call is spent on it at night.
On the sandbox, a larger boost for a recent scan cost delay (hub scans email nobody), hence its small factor.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TypeVar

from tracker.status import FINAL, STALE_AFTER, ShipmentStatus

K = TypeVar("K", bound=Hashable)

S = ShipmentStatus
MAX_QUIET = timedelta(hours=12)  # an active shipment is asked at least this often while the budget allows
RECENT_SCAN = timedelta(hours=6)  # a parcel scanned this recently is moving: more news is near
RECENT_FACTOR = 1.25
MIN_VALUE = 0.05  # hours of expected waiting (3 minutes) a call must end while the budget is scarce
STALE_FACTOR = 0.25  # no scan for STALE_AFTER: line-haul or lost, news is rare

# Email-worthy events per hour, by status, when the delivery day is not (yet) today.
RATES: dict[ShipmentStatus, float] = {
    S.PENDING: 1 / 4,  # the first scan may already be a pickup (in-transit email)
    S.INFO_RECEIVED: 1 / 4,  # pickup within hours of the label, the same working day
    S.IN_TRANSIT: 1 / 96,  # hub scans email nobody; only a hold (a few parcels in a hundred) would
    S.OUT_FOR_DELIVERY: 1 / 3,  # delivered or attempted within the round, a few hours
    S.FAILED_ATTEMPT: 1 / 24,  # the next attempt is the next working day
    S.AVAILABLE_FOR_PICKUP: 1 / 36,  # collected within a few days
    S.EXCEPTION: 1 / 24,  # customs and weather holds last a day or two
    S.UNKNOWN: 1 / 12,
}
DUE_TODAY_RATE = 1 / 3  # estimated delivery today (or overdue): the out-for-delivery scan comes this morning
NO_ESTIMATE_RATE = 1 / 12  # in transit and the courier gives no date: we cannot tell line-haul from the last leg
MIN_ROUND_SAMPLES = 20  # out-for-delivery scans before a lane's round hours are trusted
DUE_TODAY = frozenset({S.IN_TRANSIT, S.FAILED_ATTEMPT, S.EXCEPTION})


@dataclass(frozen=True, slots=True)
class PollFacts:
    """What the scoring needs of one shipment (columns of `Shipment`, the destination from its `Order`)."""

    status: ShipmentStatus
    last_event_at: datetime | None  # the courier event that set the status
    last_polled_at: datetime | None  # None: never asked
    first_seen_at: datetime
    estimated_delivery: date | None = None
    lane: str = ""  # destination country: when its delivery rounds run (`rounds` below)


Rounds = Mapping[str, Sequence[float]]  # lane (or "" for the whole courier) → share of rounds by UTC hour


def round_shares(hours: Iterable[tuple[str, int]], min_samples: int = MIN_ROUND_SAMPLES) -> dict[str, list[float]]:
    """When delivery rounds start, learned from past out-for-delivery scans as (lane, UTC hour): the share of
    scans in each hour, per lane with enough samples and for the whole courier under the key ""."""
    counts: dict[str, list[int]] = {}
    for lane, hour in hours:
        for key in (lane, ""):
            counts.setdefault(key, [0] * 24)[hour % 24] += 1
    return {key: [c / sum(row) for c in row] for key, row in counts.items() if sum(row) >= min_samples}


def due_rate(shares: Sequence[float] | None, now: datetime) -> float:
    """News per hour for a parcel due today: the chance its round starts this hour, given it has not yet
    (a hazard), or DUE_TODAY_RATE when no rounds are known yet. Today's rounds over: it slipped a day."""
    if shares is None:
        return DUE_TODAY_RATE
    left = sum(shares[now.hour:])
    if left < 0.02:
        return RATES[S.IN_TRANSIT]
    return shares[now.hour] / left


def news_rate(facts: PollFacts, now: datetime, rounds: Rounds | None = None) -> float:
    """Expected email-worthy courier events per hour for this shipment now (0 once final)."""
    if facts.status in FINAL:
        return 0.0
    due = facts.estimated_delivery is not None and facts.estimated_delivery <= now.date()
    if facts.status in DUE_TODAY and due:
        rounds = rounds or {}
        shares = rounds.get(facts.lane) or rounds.get("")
        return max(RATES[facts.status], due_rate(shares, now))
    rate = RATES[facts.status]
    if facts.status is S.IN_TRANSIT and facts.estimated_delivery is None:
        rate = NO_ESTIMATE_RATE
    quiet = None if facts.last_event_at is None else now - facts.last_event_at
    if facts.status is S.IN_TRANSIT and quiet is not None and quiet <= RECENT_SCAN:
        rate *= RECENT_FACTOR  # moving: the next scan may be the last hub before the door
    elif quiet is not None and quiet > STALE_AFTER:
        rate *= STALE_FACTOR
    return rate


def hours_unasked(facts: PollFacts, now: datetime) -> float:
    since = facts.last_polled_at or facts.first_seen_at
    return max(0.0, (now - since).total_seconds() / 3600)


def value(facts: PollFacts, now: datetime, rounds: Rounds | None = None) -> float:
    """Expected hours of waiting that one call ends now: λ·t²/2."""
    t = hours_unasked(facts, now)
    return news_rate(facts, now, rounds) * t * t / 2


def priority(facts: PollFacts, now: datetime, rounds: Rounds | None = None) -> tuple[int, float]:
    """Sort key, larger first: never asked or quiet past MAX_QUIET comes first (longest waiting first), then
    by expected value."""
    if facts.status in FINAL:
        return (0, 0.0)
    if facts.last_polled_at is None or now - facts.last_polled_at >= MAX_QUIET:
        return (2, hours_unasked(facts, now))
    return (1, value(facts, now, rounds))


def worth_a_call(facts: PollFacts, now: datetime, rounds: Rounds | None = None) -> bool:
    """Whether a call is worth spending while calls are scarce: overdue, or ending at least MIN_VALUE hours
    of expected waiting. Calls the budget would otherwise lose at the window's end go regardless."""
    tier, score = priority(facts, now, rounds)
    return tier == 2 or (tier == 1 and score >= MIN_VALUE)


def rank(candidates: Iterable[tuple[K, PollFacts]], now: datetime, rounds: Rounds | None = None) -> list[K]:
    """The candidates' keys, most worth a call first; ties keep the given order."""
    scored = [(priority(facts, now, rounds), index, key) for index, (key, facts) in enumerate(candidates)]
    scored.sort(key=lambda item: (-item[0][0], -item[0][1], item[1]))
    return [key for _score, _index, key in scored]
