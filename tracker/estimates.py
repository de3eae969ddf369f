"""Delivery estimates and stuck-shipment detection, learned from the shop's own past parcels.

Pure: the caller loads past shipments as rows (`History.from_rows`) and asks about live ones; nothing here
touches a database, a network or the clock (functions that need the time take `now`).

Why learn at all: three days without a scan is normal for a parcel crossing the Atlantic and alarming for
one crossing town. Each (courier, destination country) pair, a *lane*, has its own rhythm, so we learn it
from the lane's recent parcels when there are enough of them (MIN_SAMPLES), else from the courier across all
countries, and only then fall back to the literal defaults below.

A row is ``(courier, country, shipped_at, delivered_at, gaps)``. Each gap is the silence between two
consecutive courier events, tagged with the status the shipment sat in during it: ``(status, timedelta)``,
e.g. ``(event.status, next.at - event.at)``; add ``(PENDING, first_event.at - shipped_at)`` to learn how long
the first scan takes. A bare ``timedelta`` counts as an in-transit gap, where most silences are spent.
Statuses must be kept apart: a parcel out for delivery is late after hours, one at a pickup point only
after days, and a pooled percentile would be wrong for both.

Each past parcel gives one sample per status: its *longest* silence in that status. That is the question we
ask of a live parcel ("has it been quiet longer than a normal parcel ever is?"); a percentile over every gap
instead is dominated by quick hub-to-hub scans and would flag the one slow leg most parcels have. Measured on
sandbox journeys (no Sunday rounds): p90 × 1.5 over all gaps flagged 15% of normal deliveries, nearly all on
weekends; over each parcel's longest gap, 0–3.5%.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Literal

from tracker.status import FINAL, ShipmentStatus

S = ShipmentStatus
Day = date  # Estimate has a field named `date`
Gap = timedelta | tuple[ShipmentStatus | str, timedelta]
Row = tuple[str, str, datetime, datetime | None, Iterable[Gap]]

SAMPLE_LIMIT = 500  # per pool, the newest by shipped_at: memory stays bounded and old habits fade
MIN_SAMPLES = 20  # parcels; with fewer, a 90th percentile is one or two parcels' bad luck
GAP_PERCENTILE = 90
GAP_FACTOR = 1.5  # silence half again as long as the lane's p90 gap is a delay, not a slow day
# A learned limit never goes below this: a courier that uploads scans in bursts would otherwise teach us
# that minutes of silence are normal and flag every parcel by the afternoon.
MIN_LEARNED_GAP = timedelta(hours=6)

# How long silence is normal in each status when history cannot tell (too few parcels on the lane and on
# the courier). PENDING is counted from shipped_at, every other status from the last courier event.
DEFAULT_GAPS: dict[ShipmentStatus, timedelta] = {
    S.PENDING: timedelta(days=5),  # shops print labels days before the courier collects
    S.INFO_RECEIVED: timedelta(days=3),  # label created, waiting for the pickup scan
    S.IN_TRANSIT: timedelta(days=3),  # line-haul and border legs go a couple of days without a scan
    S.OUT_FOR_DELIVERY: timedelta(hours=12),  # delivered or attempted the same day
    S.FAILED_ATTEMPT: timedelta(days=2),  # the next attempt or a pickup notice comes the next working day
    S.AVAILABLE_FOR_PICKUP: timedelta(days=7),  # pickup points hold parcels 7 to 14 days
    S.EXCEPTION: timedelta(days=4),  # customs papers and damage checks take days
    S.UNKNOWN: timedelta(days=3),  # never a shipment's status (status.py); treated as in transit
}

TRANSIT_PERCENTILES = (20, 50, 80)  # low, typical, high: the range covers the middle 60% of parcels
# Shipped → delivered when history cannot tell: typical European parcel times (low, typical, high).
DEFAULT_TRANSIT = (timedelta(days=2), timedelta(days=4), timedelta(days=7))

Source = Literal["lane", "courier", "default"]
EstimateSource = Literal["courier", "history", "default"]


@dataclass(frozen=True, slots=True)
class Lane:
    courier: str  # the courier account name (Shipment.courier)
    country: str  # destination, ISO 3166-1 alpha-2 (Order.country); "" when unknown

    def __post_init__(self) -> None:
        object.__setattr__(self, "country", self.country.strip().upper())

    def __str__(self) -> str:
        return f"{self.courier} → {self.country}" if self.country else self.courier


class _Recent:
    """The newest `limit` samples by shipped_at, whatever order rows arrive in (a min-heap on shipped_at)."""

    __slots__ = ("limit", "_heap", "_sorted")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._heap: list[tuple[datetime, float]] = []
        self._sorted: list[float] | None = None

    def add(self, shipped_at: datetime, seconds: float) -> None:
        item = (shipped_at, seconds)
        if len(self._heap) < self.limit:
            heapq.heappush(self._heap, item)
        elif item > self._heap[0]:
            heapq.heapreplace(self._heap, item)
        else:
            return
        self._sorted = None

    def ordered(self) -> list[float]:
        if self._sorted is None:
            self._sorted = sorted(seconds for _, seconds in self._heap)
        return self._sorted


_EMPTY = _Recent(0)


def _tagged(gap: Gap) -> tuple[ShipmentStatus, timedelta]:
    if isinstance(gap, timedelta):
        return S.IN_TRANSIT, gap
    status, span = gap
    return ShipmentStatus(status), span


class History:
    """Past parcels' silences and transit times, per lane and per courier; each pool keeps the `limit` newest
    parcels by shipped_at, so memory is bounded by (lanes + couriers) × statuses × limit floats."""

    def __init__(self, limit: int = SAMPLE_LIMIT) -> None:
        self.limit = limit
        self._gaps: dict[tuple[Lane | str, ShipmentStatus], _Recent] = {}
        self._transits: dict[Lane | str, _Recent] = {}

    @classmethod
    def from_rows(cls, rows: Iterable[Row], limit: int = SAMPLE_LIMIT) -> History:
        history = cls(limit)
        for courier, country, shipped_at, delivered_at, gaps in rows:
            history.add(Lane(courier, country), shipped_at, delivered_at, gaps)
        return history

    def add(self, lane: Lane, shipped_at: datetime, delivered_at: datetime | None, gaps: Iterable[Gap]) -> None:
        """Record one past parcel: its transit time, and per status its longest silence. Gaps of zero or
        less count for nothing: two scans in the same minute are one moment of news, not a silence. A delivery
        before shipping is bad data and teaches nothing."""
        if delivered_at is not None and delivered_at > shipped_at:
            transit = (delivered_at - shipped_at).total_seconds()
            for scope in (lane, lane.courier):
                self._pool(self._transits, scope).add(shipped_at, transit)
        longest: dict[ShipmentStatus, timedelta] = {}
        for gap in gaps:
            status, span = _tagged(gap)
            if span > longest.get(status, timedelta(0)):
                longest[status] = span
        for status, span in longest.items():
            for scope in (lane, lane.courier):
                self._pool(self._gaps, (scope, status)).add(shipped_at, span.total_seconds())

    def _pool(self, pools: dict, key: object) -> _Recent:
        pool = pools.get(key)
        if pool is None:
            pool = pools[key] = _Recent(self.limit)
        return pool

    def gap_seconds(self, scope: Lane | str, status: ShipmentStatus | str) -> Sequence[float]:
        """Per kept parcel, its longest silence in `status` on a lane (or a courier, given its name), in
        seconds, shortest first."""
        return self._gaps.get((scope, ShipmentStatus(status)), _EMPTY).ordered()

    def transit_seconds(self, scope: Lane | str) -> Sequence[float]:
        """The kept shipped → delivered times of a lane (or of a courier, given its name), shortest first."""
        return self._transits.get(scope, _EMPTY).ordered()


def percentile(ordered: Sequence[float], p: int) -> float:
    """Nearest rank: the smallest sample with at least p% of the samples at or below it, so every figure we
    quote is a time some parcel really took. `ordered` must be sorted and not empty."""
    rank = max(1, -(-p * len(ordered) // 100))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class Expectation:
    """How long silence is normal for a shipment in `status`, and where that figure came from."""

    status: ShipmentStatus
    limit: timedelta  # silence longer than this is a delay
    usual: timedelta  # the p90 gap the limit came from (the default itself when source is "default")
    source: Source
    samples: int


def expectation(history: History, lane: Lane, status: ShipmentStatus | str) -> Expectation:
    status = ShipmentStatus(status)
    if status in FINAL:
        raise ValueError(f"{status} is final: a final shipment is never late")
    for scope, source in ((lane, "lane"), (lane.courier, "courier")):
        samples = history.gap_seconds(scope, status)
        if len(samples) >= MIN_SAMPLES:
            usual = timedelta(seconds=percentile(samples, GAP_PERCENTILE))
            limit = max(usual * GAP_FACTOR, MIN_LEARNED_GAP)
            return Expectation(status, limit, usual, source, len(samples))
    default = DEFAULT_GAPS[status]
    return Expectation(status, default, default, "default", 0)


def expected_gap(history: History, lane: Lane, status: ShipmentStatus | str) -> timedelta:
    """How long a shipment in `status` may go without courier news before we call it delayed."""
    return expectation(history, lane, status).limit


def is_delayed(status: ShipmentStatus | str, since: datetime, now: datetime, expected: timedelta) -> bool:
    """`since` is the last courier event, or shipped_at while pending. Exactly `expected` is still on time;
    a final shipment is never delayed."""
    return ShipmentStatus(status) not in FINAL and now - since > expected


def human_span(span: timedelta) -> str:
    """Rounded down, so we never overstate a silence: minutes under an hour, hours under two days, else days."""
    minutes = max(0, int(span.total_seconds() // 60))
    if minutes < 60:
        return _plural(minutes, "minute")
    if minutes < 48 * 60:
        return _plural(minutes // 60, "hour")
    return _plural(minutes // (24 * 60), "day")


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def delay_reason(lane: Lane, expected: Expectation, since: datetime, now: datetime) -> str:
    """One line for the merchant, e.g. "no courier news for 5 days (in transit); usually at most 36 hours
    on ups → DE"."""
    silence = human_span(now - since)
    if expected.status is S.PENDING:
        head = f"no courier news for {silence} since it shipped"
    else:
        head = f"no courier news for {silence} ({expected.status.value.replace('_', ' ')})"
    if expected.source == "lane":
        tail = f"usually at most {human_span(expected.usual)} on {lane}"
    elif expected.source == "courier":
        tail = f"usually at most {human_span(expected.usual)} on {lane.courier} (all countries)"
    else:
        tail = f"expected within {human_span(expected.limit)} (default: too few past {lane} parcels to learn from)"
    return f"{head}; {tail}"


def check_delay(history: History, lane: Lane, status: ShipmentStatus | str, since: datetime,
                now: datetime) -> str | None:
    """The reason a live shipment counts as delayed, or None while it is on time (or final)."""
    status = ShipmentStatus(status)
    if status in FINAL:
        return None
    expected = expectation(history, lane, status)
    return delay_reason(lane, expected, since, now) if is_delayed(status, since, now, expected.limit) else None


@dataclass(frozen=True, slots=True)
class Estimate:
    date: Day  # the likely delivery day, in the time zone asked for
    source: EstimateSource
    low: Day  # a range for "arriving between …": the courier's own date gives no range (low == high)
    high: Day


def estimate_delivery(history: History, lane: Lane, shipped_at: datetime, courier_estimate: date | None,
                      tz: tzinfo) -> Estimate:
    """The courier's own estimate when it gave one (it knows about its backlog and holidays), else shipped_at
    plus the lane's median transit time (p20–p80 as the range), else the courier's, else DEFAULT_TRANSIT.
    Calendar days: weekends and holidays are part of the learned times, not modelled."""
    if courier_estimate is not None:
        return Estimate(courier_estimate, "courier", courier_estimate, courier_estimate)
    if shipped_at.tzinfo is None:
        raise ValueError(f"shipped_at must be an aware datetime, got {shipped_at!r}")
    spans = DEFAULT_TRANSIT
    source: EstimateSource = "default"
    for scope in (lane, lane.courier):
        samples = history.transit_seconds(scope)
        if len(samples) >= MIN_SAMPLES:
            low, mid, high = (timedelta(seconds=percentile(samples, p)) for p in TRANSIT_PERCENTILES)
            spans, source = (low, mid, high), "history"
            break
    low, mid, high = ((shipped_at + span).astimezone(tz).date() for span in spans)
    return Estimate(mid, source, low, high)
