"""Canonical shipment statuses and the state machine that moves a shipment between them.

Everything here is pure: the machine takes the shipment's state and a courier's events and returns what to
do. The caller stores the result; nothing here touches a database or a network.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol


class ShipmentStatus(StrEnum):
    PENDING = "pending"  # known to us, nothing from the courier yet
    INFO_RECEIVED = "info_received"  # label created
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    FAILED_ATTEMPT = "failed_attempt"
    AVAILABLE_FOR_PICKUP = "available_for_pickup"
    EXCEPTION = "exception"  # held, damaged, customs, delayed
    DELIVERED = "delivered"
    RETURNED = "returned"  # to sender
    EXPIRED = "expired"  # no data for too long
    UNKNOWN = "unknown"  # a courier code we cannot map; never moves a shipment


FINAL = frozenset({ShipmentStatus.DELIVERED, ShipmentStatus.RETURNED, ShipmentStatus.EXPIRED})
PRE_TRANSIT = frozenset({ShipmentStatus.PENDING, ShipmentStatus.INFO_RECEIVED})

# The status a shipment reaches → the email kind that tells the customer. Statuses not listed send nothing.
MILESTONE_KINDS: dict[ShipmentStatus, str] = {
    ShipmentStatus.IN_TRANSIT: "in_transit",
    ShipmentStatus.OUT_FOR_DELIVERY: "out_for_delivery",
    ShipmentStatus.FAILED_ATTEMPT: "failed_attempt",
    ShipmentStatus.AVAILABLE_FOR_PICKUP: "available_for_pickup",
    ShipmentStatus.EXCEPTION: "exception",
    ShipmentStatus.DELIVERED: "delivered",
    ShipmentStatus.RETURNED: "returned",
}

LABELS: dict[ShipmentStatus, str] = {
    ShipmentStatus.PENDING: "Waiting for the courier",
    ShipmentStatus.INFO_RECEIVED: "Label created",
    ShipmentStatus.IN_TRANSIT: "In transit",
    ShipmentStatus.OUT_FOR_DELIVERY: "Out for delivery",
    ShipmentStatus.FAILED_ATTEMPT: "Delivery attempted",
    ShipmentStatus.AVAILABLE_FOR_PICKUP: "Ready for pickup",
    ShipmentStatus.EXCEPTION: "Delayed",
    ShipmentStatus.DELIVERED: "Delivered",
    ShipmentStatus.RETURNED: "Returned to sender",
    ShipmentStatus.EXPIRED: "No recent updates",
    ShipmentStatus.UNKNOWN: "Unknown",
}


class Event(Protocol):
    """What the machine needs of a courier event (carriers.base.CarrierEvent is one)."""

    @property
    def at(self) -> datetime: ...

    @property
    def status(self) -> ShipmentStatus: ...

    @property
    def key(self) -> tuple: ...


@dataclass(frozen=True, slots=True)
class ShipmentState:
    status: ShipmentStatus
    last_event_at: datetime | None  # time of the event that set `status`


@dataclass(frozen=True, slots=True)
class Ignored:
    event: Event
    reason: str


@dataclass(frozen=True, slots=True)
class Transition:
    before: ShipmentState
    after: ShipmentState
    new_events: tuple[Event, ...]  # not seen before: store them in the history
    ignored: tuple[Ignored, ...]  # stored, but they did not move the shipment, and why
    notify: str | None  # the email kind to plan, or None
    cause: Event | None = None  # the event that set the status reached, if this batch moved it

    @property
    def changed(self) -> bool:
        return self.after != self.before


def _move(state: ShipmentState, event: Event) -> str | None:
    """None if `event` moves the shipment, else the reason it does not."""
    if event.status is ShipmentStatus.UNKNOWN:
        return "unknown status code"
    if event.status is ShipmentStatus.PENDING:
        return "pending is not a courier status"
    if state.status in FINAL:
        return f"shipment is already {state.status}"
    if state.last_event_at is not None and event.at < state.last_event_at:
        return "older than the event that set the current status"
    if event.status in PRE_TRANSIT and state.status not in PRE_TRANSIT:
        return f"{event.status} would move the shipment back from {state.status}"
    return None


def advance(
    state: ShipmentState,
    events: Iterable[Event],
    seen: Set[tuple],
    now: datetime,
    horizon: timedelta,
) -> Transition:
    """Apply a courier's events to a shipment.

    `seen` holds the keys of events already in the history; they are skipped. The newest event that may
    move the shipment decides its status. Only the status reached at the end earns an email: milestones
    passed within one batch are not backfilled, and an email is planned only if the event that reached it is
    no older than `horizon` (a parcel first seen delivered last month tells nobody).
    """
    fresh: list[Event] = []
    keys = set(seen)
    for event in sorted(events, key=lambda e: (e.at, str(e.key))):
        if event.key not in keys:
            keys.add(event.key)
            fresh.append(event)
    current = state
    cause = None
    ignored: list[Ignored] = []
    for event in fresh:
        reason = _move(current, event)
        if reason is None:
            current = ShipmentState(event.status, event.at)
            cause = event
        else:
            ignored.append(Ignored(event, reason))
    notify = None
    if current.status != state.status and current.last_event_at is not None:
        kind = MILESTONE_KINDS.get(current.status)
        if kind is not None and now - current.last_event_at <= horizon:
            notify = kind
    return Transition(state, current, tuple(fresh), tuple(ignored), notify, cause)


def expire(state: ShipmentState, since: datetime, now: datetime, after: timedelta) -> ShipmentState | None:
    """The expired state if nothing has happened for `after` (counted from the last event, else from
    `since`, when we first knew the shipment); None while the shipment is still alive or final."""
    if state.status in FINAL:
        return None
    quiet_since = state.last_event_at or since
    if now - quiet_since < after:
        return None
    return ShipmentState(ShipmentStatus.EXPIRED, state.last_event_at)


# How often to ask a courier that sets no daily budget, by status: fast near the door, slow in line-haul,
# never once final. An account with a daily budget is asked as often as its budget allows, in the order
# tracker/priority.py gives, but never more often than MIN_POLL_GAP per shipment.
POLL_EVERY: dict[ShipmentStatus, timedelta] = {
    ShipmentStatus.PENDING: timedelta(hours=2),
    ShipmentStatus.INFO_RECEIVED: timedelta(hours=4),
    ShipmentStatus.IN_TRANSIT: timedelta(hours=3),
    ShipmentStatus.OUT_FOR_DELIVERY: timedelta(minutes=30),
    ShipmentStatus.FAILED_ATTEMPT: timedelta(hours=2),
    ShipmentStatus.AVAILABLE_FOR_PICKUP: timedelta(hours=4),
    ShipmentStatus.EXCEPTION: timedelta(hours=3),
    ShipmentStatus.UNKNOWN: timedelta(hours=3),
}
STALE_AFTER = timedelta(days=4)  # no scan for this long: line-haul or lost, poll at most every 8 hours
STALE_POLL_EVERY = timedelta(hours=8)
MIN_POLL_GAP = timedelta(minutes=15)  # couriers rarely scan twice within it; one call could not tell them apart


def next_poll_delay(state: ShipmentState, now: datetime) -> timedelta | None:
    """How long until the next poll, or None to stop polling."""
    if state.status in FINAL:
        return None
    every = POLL_EVERY[state.status]
    if state.last_event_at is not None and now - state.last_event_at > STALE_AFTER:
        every = max(every, STALE_POLL_EVERY)
    return every
