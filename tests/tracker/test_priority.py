"""The scoring that decides which shipments get a courier call: pure, so these are hand-made shipments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tracker.priority import (
    DUE_TODAY_RATE,
    MAX_QUIET,
    PollFacts,
    news_rate,
    priority,
    rank,
    round_shares,
    worth_a_call,
)
from tracker.status import ShipmentStatus as S

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TODAY = NOW.date()
H = timedelta(hours=1)


def facts(status: S, *, asked: timedelta | None, scanned: timedelta | None = 10 * H, due_in_days: int | None = None,
          seen: timedelta = 3 * 24 * H, lane: str = "DE") -> PollFacts:
    return PollFacts(status, None if scanned is None else NOW - scanned, None if asked is None else NOW - asked,
                     NOW - seen, None if due_in_days is None else TODAY + timedelta(days=due_in_days), lane)


def test_overdue_and_new_shipments_first_then_those_most_likely_to_have_news() -> None:
    shipments = {
        "line-haul": facts(S.IN_TRANSIT, asked=2 * H, due_in_days=2),
        "label only": facts(S.INFO_RECEIVED, asked=1 * H),
        "out for delivery": facts(S.OUT_FOR_DELIVERY, asked=1 * H, scanned=2 * H),
        "new": facts(S.PENDING, asked=None, scanned=None, seen=timedelta(minutes=30)),
        "forgotten": facts(S.IN_TRANSIT, asked=MAX_QUIET + H, scanned=6 * 24 * H, due_in_days=3),
        "delivered": facts(S.DELIVERED, asked=5 * H),
    }
    assert rank(shipments.items(), NOW) == [
        "forgotten", "new", "out for delivery", "label only", "line-haul", "delivered"]


def test_a_quiet_line_haul_parcel_outranks_one_at_the_door_that_was_just_asked() -> None:
    line_haul = facts(S.IN_TRANSIT, asked=8 * H, due_in_days=2)
    at_the_door = facts(S.OUT_FOR_DELIVERY, asked=timedelta(minutes=20), scanned=H)
    assert priority(line_haul, NOW) > priority(at_the_door, NOW)
    assert news_rate(at_the_door, NOW) > 10 * news_rate(line_haul, NOW)


def test_a_parcel_due_today_waits_for_its_lanes_delivery_rounds() -> None:
    morning = [("DE", 7)] * 15 + [("DE", 8)] * 10  # rounds start 07:00-09:00 UTC in this lane
    rounds = round_shares(morning)
    due = facts(S.IN_TRANSIT, asked=H, due_in_days=0, scanned=24 * H)
    later = facts(S.IN_TRANSIT, asked=H, due_in_days=2, scanned=24 * H)
    at = {hour: NOW.replace(hour=hour) for hour in (3, 7, 8, 15)}
    assert news_rate(due, at[3], rounds) == news_rate(later, at[3], rounds)  # before the rounds: like line-haul
    assert news_rate(due, at[7], rounds) == 15 / 25  # the hazard: 15 of the 25 rounds still to come start now
    assert news_rate(due, at[8], rounds) == 1.0  # every round left starts this hour
    assert news_rate(due, at[15], rounds) < news_rate(due, at[7], rounds)  # today's rounds are over: it slipped
    assert news_rate(due, at[3]) == DUE_TODAY_RATE  # nothing learned yet: due today is simply likely


def test_round_hours_are_learned_per_lane_with_enough_samples_and_for_the_whole_courier() -> None:
    rounds = round_shares([("DE", 7)] * 20 + [("US", 14)] * 5)
    assert set(rounds) == {"DE", ""}  # five US scans are not enough for a lane of its own
    assert rounds["DE"][7] == 1.0 and sum(rounds["DE"]) == 1.0
    assert rounds[""][7] == 0.8 and rounds[""][14] == 0.2
    assert round_shares([]) == {}


def test_stale_and_final_shipments_have_little_or_no_news() -> None:
    fresh = facts(S.IN_TRANSIT, asked=H, scanned=24 * H, due_in_days=2)
    stale = facts(S.IN_TRANSIT, asked=H, scanned=5 * 24 * H, due_in_days=2)
    assert news_rate(stale, NOW) < news_rate(fresh, NOW)
    assert news_rate(facts(S.RETURNED, asked=H), NOW) == 0.0
    assert priority(facts(S.DELIVERED, asked=48 * H), NOW) == (0, 0.0)


def test_a_call_is_worth_it_once_enough_news_may_be_waiting() -> None:
    assert not worth_a_call(facts(S.OUT_FOR_DELIVERY, asked=timedelta(minutes=5), scanned=H), NOW)
    assert worth_a_call(facts(S.OUT_FOR_DELIVERY, asked=H, scanned=2 * H), NOW)
    assert worth_a_call(facts(S.IN_TRANSIT, asked=MAX_QUIET, due_in_days=5), NOW)  # overdue always is
