"""The sandbox courier's journeys: everything that will ever happen to a parcel, replayed from
`random.Random(f"{seed}:{number}")` and the number alone, with the courier's own code table.

A pure function of (seed, number): the courier answers for any moment by cutting the journey at `now`
(`Journey.result`), so a clock can jump and two processes agree on every scan.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from carriers.base import CarrierEvent, TrackingResult
from carriers.sandbox_numbers import Parcel, parse_tracking_number
from tracker.status import ShipmentStatus

WAREHOUSE = "Venlo, NL"
ORIGIN_HUB = "Eindhoven, NL"

# ── The courier's own code table, as a reviewer would diff it against a courier's documentation ──────────

STATUS_CODES: dict[str, ShipmentStatus] = {
    "LC": ShipmentStatus.INFO_RECEIVED,  # label created
    "PU": ShipmentStatus.IN_TRANSIT,  # picked up
    "AR": ShipmentStatus.IN_TRANSIT,  # arrived at hub
    "DP": ShipmentStatus.IN_TRANSIT,  # departed hub
    "CU": ShipmentStatus.EXCEPTION,  # held by customs
    "CC": ShipmentStatus.IN_TRANSIT,  # customs cleared
    "EX": ShipmentStatus.EXCEPTION,  # delayed (weather)
    "OD": ShipmentStatus.OUT_FOR_DELIVERY,
    "FA": ShipmentStatus.FAILED_ATTEMPT,
    "PP": ShipmentStatus.AVAILABLE_FOR_PICKUP,  # at pickup point
    "PK": ShipmentStatus.DELIVERED,  # collected from pickup point
    "DL": ShipmentStatus.DELIVERED,
    "RF": ShipmentStatus.EXCEPTION,  # refused by recipient
    "RS": ShipmentStatus.RETURNED,  # returned to sender
}

DESCRIPTIONS: dict[str, str] = {
    "LC": "Shipment information received, label created",
    "PU": "Picked up by the courier",
    "AR": "Arrived at the sorting facility",
    "DP": "Departed the sorting facility",
    "CU": "Held by customs, awaiting clearance",
    "CC": "Released by customs",
    "EX": "Delayed by adverse weather conditions",
    "OD": "Out for delivery",
    "FA": "Delivery attempted, recipient not at home; we will try again on the next working day",
    "PP": "Available for collection at the pickup point",
    "PK": "Collected from the pickup point",
    "DL": "Delivered",
    "RF": "Refused by the recipient, returning to sender",
    "RS": "Returned to sender",
}
DELIVERED_NOTES = ("Delivered, handed to the recipient", "Delivered, left with a neighbour",
                   "Delivered, left at the front door")
LAST_ATTEMPT = "Second delivery attempt failed, recipient not at home; returning to sender"

# Scenario → share of parcels. Over many numbers the journeys come out near these shares.
SCENARIOS: tuple[tuple[str, float], ...] = (
    ("delivered", 0.72),
    ("failed_attempt", 0.08),
    ("pickup_point", 0.08),
    ("exception", 0.06),
    ("returned", 0.04),
    ("lost", 0.02),
)


# ── Journeys ──────────────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Journey:
    """Everything that will ever happen to a parcel, and when the courier's estimate changed."""

    scenario: str
    events: tuple[CarrierEvent, ...]
    estimates: tuple[tuple[datetime, date | None], ...]

    def result(self, number: str, now: datetime) -> TrackingResult:
        """What the courier would answer at `now`: nothing is known before the label exists."""
        events = tuple(e for e in self.events if e.at <= now)
        if not events:
            return TrackingResult(number, found=False)
        estimate = None
        for since, day in self.estimates:
            if since <= now:
                estimate = day
        return TrackingResult(number, events, estimated_delivery=estimate)


@dataclass(slots=True)
class _Trail:
    """A journey being written, one scan after another."""

    parcel: Parcel
    at: datetime
    events: list[CarrierEvent] = field(default_factory=list)
    estimates: list[tuple[datetime, date | None]] = field(default_factory=list)

    def scan(self, code: str, location: str, *, after: timedelta = timedelta(), at: datetime | None = None,
             description: str | None = None) -> None:
        self.at = at if at is not None else self.at + after
        text = description or DESCRIPTIONS[code]
        self.events.append(CarrierEvent(self.at, STATUS_CODES[code], code, text, location))

    def estimate(self, day: date | None) -> None:
        self.estimates.append((self.at, day))

    def local_date(self, moment: datetime) -> date:
        return (moment + timedelta(hours=self.parcel.city.utc_offset)).date()

    def local_time(self, day: date, earliest: int, latest: int, rng: random.Random) -> datetime:
        """A moment on `day` between two local times given in minutes after midnight, in UTC."""
        minutes = rng.randint(earliest, latest) - self.parcel.city.utc_offset * 60
        return datetime.combine(day, time(), UTC) + timedelta(minutes=minutes)


def _working_day(day: date) -> date:
    return day + timedelta(days=1) if day.weekday() == 6 else day  # no rounds on Sundays


def _delivery_day(trail: _Trail, arrival: datetime) -> date:
    """The first round after the parcel reaches the depot, never the day it was labelled."""
    local = arrival + timedelta(hours=trail.parcel.city.utc_offset)
    day = local.date() if local.hour < 6 else local.date() + timedelta(days=1)
    return _working_day(max(day, trail.local_date(trail.parcel.label_at) + timedelta(days=1)))


def _route(rng: random.Random, parcel: Parcel) -> list[tuple[str, str]]:
    """2–5 hub scans, in route order (real tracking skips scans too)."""
    hub = f"{parcel.country.hub}, {parcel.country.code}"
    full = [("AR", ORIGIN_HUB), ("DP", ORIGIN_HUB), ("AR", hub), ("DP", hub),
            ("AR", f"{parcel.city.name}, {parcel.country.code}")]
    return [full[i] for i in sorted(rng.sample(range(len(full)), rng.randint(2, 5)))]


def _hold(rng: random.Random, parcel: Parcel, scans: list[tuple[str, str]]) -> tuple[int, str, str]:
    """Where a delay strikes: customs on entering a non-EU country, else weather at some hub."""
    if parcel.country.customs:
        index = sum(1 for _, location in scans if location == ORIGIN_HUB)
        return index, "CU", f"{parcel.country.hub}, {parcel.country.code}"
    index = rng.randint(1, len(scans))
    return index, "EX", scans[index - 1][1]


def _line_haul(rng: random.Random, trail: _Trail, scenario: str) -> bool:
    """Pickup and hub scans; False if the parcel is lost on the way."""
    trail.scan("PU", WAREHOUSE, after=timedelta(minutes=rng.randint(120, 720)))
    scans = _route(rng, trail.parcel)
    gaps = [timedelta(minutes=rng.randint(120, 600)) for _ in scans]
    trail.estimate(_delivery_day(trail, trail.at + sum(gaps, timedelta())))
    stop = rng.randint(1, len(scans) - 1) if scenario == "lost" else len(scans)
    hold = _hold(rng, trail.parcel, scans) if scenario == "exception" else None
    for i in range(len(scans) + 1):
        if hold is not None and hold[0] == i:
            _, code, location = hold
            trail.scan(code, location, after=timedelta(minutes=rng.randint(60, 240)))
            delay = timedelta(minutes=rng.randint(24 * 60, 48 * 60))
            trail.estimate(_delivery_day(trail, trail.at + delay + sum(gaps[i:], timedelta())))
            if code == "CU":
                trail.scan("CC", location, after=delay)
            else:
                trail.at += delay
        if i == stop:
            return i == len(scans)
        trail.scan(*scans[i], after=gaps[i])
    return True


def _last_mile(rng: random.Random, trail: _Trail, scenario: str) -> None:
    here = f"{trail.parcel.city.name}, {trail.parcel.country.code}"
    day = _delivery_day(trail, trail.at)
    if scenario == "pickup_point":
        trail.scan("PP", here, at=trail.local_time(day, 8 * 60, 12 * 60, rng))
        collected = _working_day(day + timedelta(days=rng.randint(1, 3)))
        trail.scan("PK", here, at=trail.local_time(collected, 13 * 60, 19 * 60, rng))
        return
    trail.scan("OD", here, at=trail.local_time(day, 7 * 60 + 30, 10 * 60, rng))
    if scenario == "returned" and rng.random() < 0.5:
        trail.scan("RF", here, after=timedelta(minutes=rng.randint(20, 240)))
        return _return_to_sender(rng, trail)
    failures = {"failed_attempt": 1, "returned": 2}.get(scenario, 0)
    for attempt in range(failures):
        last = scenario == "returned" and attempt == failures - 1
        trail.scan("FA", here, after=timedelta(minutes=rng.randint(60, 360)),
                   description=LAST_ATTEMPT if last else None)
        if last:
            return _return_to_sender(rng, trail)
        day = _working_day(day + timedelta(days=1))
        trail.estimate(day)
        trail.scan("OD", here, at=trail.local_time(day, 7 * 60 + 30, 10 * 60, rng))
    minutes = rng.randint(60, 420)
    trail.scan("DL", here, after=timedelta(minutes=minutes), description=rng.choice(DELIVERED_NOTES))


def _return_to_sender(rng: random.Random, trail: _Trail) -> None:
    trail.estimate(None)
    trail.scan("RS", WAREHOUSE, after=timedelta(minutes=rng.randint(2 * 1440, 5 * 1440)))


def _pick_scenario(rng: random.Random) -> str:
    names, shares = zip(*SCENARIOS, strict=True)
    return rng.choices(names, weights=shares)[0]


@functools.lru_cache(maxsize=16384)
def journey(seed: int, number: str) -> Journey | None:
    """The whole life of a parcel, or None if the number is not a sandbox number."""
    parcel = parse_tracking_number(number)
    if parcel is None:
        return None
    rng = random.Random(f"{seed}:{number}")
    scenario = _pick_scenario(rng)
    trail = _Trail(parcel, parcel.label_at)
    trail.scan("LC", WAREHOUSE)
    if _line_haul(rng, trail, scenario):
        _last_mile(rng, trail, scenario)
    return Journey(scenario, tuple(trail.events), tuple(trail.estimates))
