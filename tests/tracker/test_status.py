"""The shipment state machine, over every pair of statuses and the awkward cases couriers produce."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from carriers.base import CarrierEvent
from tracker.status import (
    FINAL,
    MILESTONE_KINDS,
    ShipmentState,
    ShipmentStatus,
    advance,
    expire,
    next_poll_delay,
)

S = ShipmentStatus
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
HORIZON = timedelta(hours=48)
ALL = list(ShipmentStatus)


def ev(status: ShipmentStatus, hours_ago: float, code: str = "X", location: str = "Lyon") -> CarrierEvent:
    return CarrierEvent(NOW - timedelta(hours=hours_ago), status, code, f"{status} scan", location)


def state(status: ShipmentStatus, hours_ago: float | None = 10) -> ShipmentState:
    at = None if hours_ago is None or status is S.PENDING else NOW - timedelta(hours=hours_ago)
    return ShipmentState(status, at)


def moves(current: ShipmentStatus, incoming: ShipmentStatus) -> bool:
    """The rules, stated once: final absorbs; unknown and pending never move; no way back to pre-transit."""
    if current in FINAL or incoming in (S.UNKNOWN, S.PENDING):
        return False
    pre_transit = (S.PENDING, S.INFO_RECEIVED)
    return not (incoming in pre_transit and current not in pre_transit)


@pytest.mark.parametrize("current", ALL)
@pytest.mark.parametrize("incoming", ALL)
def test_a_newer_event_moves_the_shipment_only_where_the_rules_allow(current, incoming):
    t = advance(state(current), [ev(incoming, 1)], set(), NOW, HORIZON)
    assert len(t.new_events) == 1  # always kept in the history
    if moves(current, incoming):
        assert t.after == ShipmentState(incoming, NOW - timedelta(hours=1))
        expected_mail = MILESTONE_KINDS.get(incoming) if incoming != current else None
        assert t.notify == expected_mail
        assert t.ignored == ()
    else:
        assert t.after == t.before
        assert t.notify is None
        assert len(t.ignored) == 1


@pytest.mark.parametrize("current", [s for s in ALL if s is not S.PENDING])
@pytest.mark.parametrize("incoming", ALL)
def test_an_event_older_than_the_current_status_never_moves_it_back(current, incoming):
    t = advance(state(current, hours_ago=5), [ev(incoming, 6)], set(), NOW, HORIZON)
    assert t.after == t.before
    assert t.notify is None
    assert len(t.new_events) == 1


@pytest.mark.parametrize("current", ALL)
@pytest.mark.parametrize("incoming", ALL)
def test_an_event_seen_before_is_neither_stored_nor_applied(current, incoming):
    event = ev(incoming, 1)
    t = advance(state(current), [event, event], {event.key}, NOW, HORIZON)
    assert t.new_events == ()
    assert t.after == t.before
    assert t.notify is None


def test_the_same_event_twice_in_one_answer_is_stored_once():
    event = ev(S.IN_TRANSIT, 2)
    t = advance(state(S.INFO_RECEIVED), [event, event], set(), NOW, HORIZON)
    assert len(t.new_events) == 1
    assert t.after.status is S.IN_TRANSIT


def test_final_statuses_absorb_everything():
    for final in FINAL:
        t = advance(state(final, 30), [ev(s, 1, code=s.value) for s in ALL], set(), NOW, HORIZON)
        assert t.after.status is final
        assert t.notify is None
        assert len(t.new_events) == len(ALL)


def test_skipped_milestones_are_not_backfilled():
    journey = [ev(S.INFO_RECEIVED, 40), ev(S.IN_TRANSIT, 30), ev(S.OUT_FOR_DELIVERY, 5), ev(S.DELIVERED, 2)]
    t = advance(state(S.PENDING), journey, set(), NOW, HORIZON)
    assert t.after.status is S.DELIVERED
    assert t.notify == "delivered"
    assert t.cause.status is S.DELIVERED


def test_events_arriving_newest_first_are_applied_in_time_order():
    journey = [ev(S.DELIVERED, 1), ev(S.OUT_FOR_DELIVERY, 4), ev(S.IN_TRANSIT, 20)]
    t = advance(state(S.INFO_RECEIVED, 30), journey, set(), NOW, HORIZON)
    assert t.after.status is S.DELIVERED
    assert t.ignored == ()


def test_a_late_scan_inside_one_answer_is_kept_but_does_not_move_the_shipment():
    journey = [ev(S.OUT_FOR_DELIVERY, 3), ev(S.INFO_RECEIVED, 2, code="LC2")]
    t = advance(state(S.IN_TRANSIT, 10), journey, set(), NOW, HORIZON)
    assert t.after.status is S.OUT_FOR_DELIVERY
    assert [i.event.code for i in t.ignored] == ["LC2"]


def test_an_unknown_code_is_stored_and_moves_nothing():
    t = advance(state(S.IN_TRANSIT), [ev(S.UNKNOWN, 1, code="ZZ9")], set(), NOW, HORIZON)
    assert t.after == t.before
    assert t.new_events[0].code == "ZZ9"
    assert t.ignored[0].reason == "unknown status code"


def test_a_milestone_older_than_the_horizon_updates_the_shipment_but_emails_nobody():
    t = advance(state(S.PENDING), [ev(S.DELIVERED, 24 * 30)], set(), NOW, HORIZON)
    assert t.after.status is S.DELIVERED
    assert t.notify is None


def test_a_milestone_just_inside_the_horizon_is_emailed():
    t = advance(state(S.PENDING), [ev(S.DELIVERED, 47.9)], set(), NOW, HORIZON)
    assert t.notify == "delivered"


def test_a_repeated_status_after_a_detour_moves_the_shipment_again():
    journey = [ev(S.FAILED_ATTEMPT, 20), ev(S.IN_TRANSIT, 15), ev(S.OUT_FOR_DELIVERY, 3)]
    t = advance(state(S.OUT_FOR_DELIVERY, 25), journey, set(), NOW, HORIZON)
    assert t.after.status is S.OUT_FOR_DELIVERY
    assert t.changed  # a newer event set it; the outbox's idempotency key stops a second email
    assert t.notify is None  # status equal before and after: nothing new to tell


def test_no_events_change_nothing():
    t = advance(state(S.IN_TRANSIT), [], set(), NOW, HORIZON)
    assert not t.changed and t.notify is None and t.new_events == ()


def test_a_silent_shipment_expires_after_the_limit_and_a_final_one_never_does():
    first_seen = NOW - timedelta(days=31)
    assert expire(ShipmentState(S.PENDING, None), first_seen, NOW, timedelta(days=30)).status is S.EXPIRED
    assert expire(ShipmentState(S.PENDING, None), NOW - timedelta(days=29), NOW, timedelta(days=30)) is None
    quiet = ShipmentState(S.IN_TRANSIT, NOW - timedelta(days=31))
    assert expire(quiet, first_seen, NOW, timedelta(days=30)).status is S.EXPIRED
    assert expire(ShipmentState(S.DELIVERED, first_seen), first_seen, NOW, timedelta(days=30)) is None


def test_polling_is_fast_near_the_door_slow_in_line_haul_and_stops_when_final():
    ofd = next_poll_delay(state(S.OUT_FOR_DELIVERY, 1), NOW)
    transit = next_poll_delay(state(S.IN_TRANSIT, 1), NOW)
    stale = next_poll_delay(state(S.IN_TRANSIT, 24 * 6), NOW)
    assert ofd < transit < stale
    for final in FINAL:
        assert next_poll_delay(state(final), NOW) is None
