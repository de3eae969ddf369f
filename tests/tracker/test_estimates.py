"""Delivery estimates and stuck-shipment detection: what history teaches, where it falls back, and how the
learned limits behave on the sandbox courier's realistic journeys."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta, timezone
from itertools import pairwise

import pytest

from carriers.sandbox import COUNTRIES, journey, make_tracking_number
from tracker.estimates import (
    DEFAULT_GAPS,
    DEFAULT_TRANSIT,
    GAP_FACTOR,
    MIN_LEARNED_GAP,
    MIN_SAMPLES,
    SAMPLE_LIMIT,
    History,
    Lane,
    check_delay,
    delay_reason,
    estimate_delivery,
    expectation,
    expected_gap,
    human_span,
    is_delayed,
    percentile,
)
from tracker.status import FINAL, ShipmentStatus

S = ShipmentStatus
H = timedelta(hours=1)
D = timedelta(days=1)
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday
UPS_DE = Lane("ups", "DE")
UPS_FR = Lane("ups", "FR")
LIVE = sorted(set(S) - FINAL)


def rows(lane: Lane, longest: list[timedelta], status: ShipmentStatus = S.IN_TRANSIT, *,
         transits: list[timedelta] | None = None, start: int = 0) -> list[tuple]:
    """One past parcel per entry, each with a single silence of that length in `status`."""
    transits = transits or [None] * len(longest)
    out = []
    for i, (gap, transit) in enumerate(zip(longest, transits, strict=True)):
        shipped = T0 + (start + i) * H
        out.append((lane.courier, lane.country, shipped, shipped + transit if transit else None, [(status, gap)]))
    return out


def hours(n: int) -> list[timedelta]:
    return [h * H for h in range(1, n + 1)]


# ── What a lane's history teaches ─────────────────────────────────────────────────────────────────────────


def test_a_lane_with_enough_parcels_allows_half_again_its_90th_percentile_silence():
    history = History.from_rows(rows(UPS_DE, hours(20)))  # parcels silent at most 1 h, 2 h, ... 20 h
    expected = expectation(history, UPS_DE, S.IN_TRANSIT)
    assert expected.usual == 18 * H  # nearest rank: 18 of the 20 parcels were quiet 18 h or less
    assert expected.limit == 18 * H * GAP_FACTOR == 27 * H
    assert (expected.source, expected.samples) == ("lane", 20)
    assert expected_gap(history, UPS_DE, S.IN_TRANSIT) == 27 * H


def test_each_parcel_counts_once_per_status_with_its_longest_silence():
    gaps = [(S.IN_TRANSIT, 2 * H), (S.IN_TRANSIT, 30 * H), (S.IN_TRANSIT, 5 * H), (S.OUT_FOR_DELIVERY, 3 * H)]
    history = History.from_rows([("ups", "DE", T0, T0 + 3 * D, gaps)])
    assert history.gap_seconds(UPS_DE, S.IN_TRANSIT) == [30 * 3600]
    assert history.gap_seconds(UPS_DE, "out_for_delivery") == [3 * 3600]
    assert history.gap_seconds("ups", S.IN_TRANSIT) == [30 * 3600]  # the courier-wide pool learns it too


def test_statuses_are_learned_apart_so_a_door_step_delay_is_caught_in_hours():
    history = History.from_rows(rows(UPS_DE, [40 * H] * 20, S.IN_TRANSIT)
                                + rows(UPS_DE, [5 * H] * 20, S.OUT_FOR_DELIVERY, start=100))
    assert expected_gap(history, UPS_DE, S.IN_TRANSIT) == 60 * H
    assert expected_gap(history, UPS_DE, S.OUT_FOR_DELIVERY) == 7.5 * H
    assert expectation(history, UPS_DE, S.AVAILABLE_FOR_PICKUP).source == "default"


def test_a_bare_gap_counts_as_in_transit():
    history = History.from_rows([("ups", "DE", T0, None, [4 * H, 9 * H])])
    assert history.gap_seconds(UPS_DE, S.IN_TRANSIT) == [9 * 3600]


def test_gaps_of_zero_or_less_are_no_silence():
    history = History.from_rows([("ups", "DE", T0, None, [(S.IN_TRANSIT, timedelta(0)), (S.EXCEPTION, -H)])])
    assert history.gap_seconds(UPS_DE, S.IN_TRANSIT) == []
    assert history.gap_seconds(UPS_DE, S.EXCEPTION) == []


def test_statuses_may_arrive_as_plain_strings_from_database_rows():
    history = History.from_rows(rows(UPS_DE, hours(20), "in_transit"))  # type: ignore[arg-type]
    assert expectation(history, UPS_DE, "in_transit").source == "lane"


# ── Fallbacks: lane → courier → default ───────────────────────────────────────────────────────────────────


def test_nineteen_parcels_are_too_few_and_twenty_are_enough():
    assert expectation(History.from_rows(rows(UPS_DE, hours(MIN_SAMPLES - 1))), UPS_DE, S.IN_TRANSIT).source \
        == "default"
    assert expectation(History.from_rows(rows(UPS_DE, hours(MIN_SAMPLES))), UPS_DE, S.IN_TRANSIT).source == "lane"


def test_a_thin_lane_falls_back_to_the_courier_across_all_countries():
    history = History.from_rows(rows(UPS_DE, [10 * H] * 10) + rows(UPS_FR, [30 * H] * 15, start=100))
    expected = expectation(history, UPS_DE, S.IN_TRANSIT)
    assert (expected.source, expected.samples) == ("courier", 25)
    assert expected.usual == 30 * H  # the 23rd of 25 parcels, one of France's
    assert expected.limit == 45 * H
    assert expectation(history, Lane("ups", "IT"), S.IN_TRANSIT).source == "courier"  # a lane never seen


def test_another_couriers_history_never_leaks_into_a_lane():
    history = History.from_rows(rows(Lane("dhl", "DE"), [10 * H] * 50))
    expected = expectation(history, UPS_DE, S.IN_TRANSIT)
    assert (expected.source, expected.limit) == ("default", DEFAULT_GAPS[S.IN_TRANSIT])


@pytest.mark.parametrize(("status", "limit"), [
    (S.PENDING, 5 * D), (S.INFO_RECEIVED, 3 * D), (S.IN_TRANSIT, 3 * D), (S.OUT_FOR_DELIVERY, 12 * H),
    (S.FAILED_ATTEMPT, 2 * D), (S.AVAILABLE_FOR_PICKUP, 7 * D), (S.EXCEPTION, 4 * D), (S.UNKNOWN, 3 * D),
])
def test_with_no_history_the_default_table_applies(status, limit):
    expected = expectation(History(), UPS_DE, status)
    assert (expected.limit, expected.source, expected.samples) == (limit, "default", 0)


def test_the_default_table_covers_every_live_status_and_a_final_one_is_refused():
    assert sorted(DEFAULT_GAPS) == LIVE
    for status in FINAL:
        with pytest.raises(ValueError, match="final"):
            expected_gap(History(), UPS_DE, status)


def test_a_learned_limit_never_drops_below_the_floor():
    history = History.from_rows(rows(UPS_DE, [timedelta(minutes=1)] * 30))  # a courier uploading in bursts
    assert expected_gap(history, UPS_DE, S.IN_TRANSIT) == MIN_LEARNED_GAP


# ── Bounded memory ────────────────────────────────────────────────────────────────────────────────────────


def test_each_pool_keeps_only_the_newest_parcels_whatever_order_rows_arrive_in():
    many = 4 * SAMPLE_LIMIT
    past = rows(UPS_DE, [timedelta(minutes=i + 1) for i in range(many)],
                transits=[timedelta(hours=i + 1) for i in range(many)])
    random.Random(1).shuffle(past)
    history = History.from_rows(past)
    newest = range(many - SAMPLE_LIMIT, many)
    assert history.gap_seconds(UPS_DE, S.IN_TRANSIT) == [(i + 1) * 60.0 for i in newest]
    assert history.gap_seconds("ups", S.IN_TRANSIT) == [(i + 1) * 60.0 for i in newest]
    assert history.transit_seconds(UPS_DE) == [(i + 1) * 3600.0 for i in newest]
    assert len(history.transit_seconds("ups")) == SAMPLE_LIMIT


def test_the_pool_size_is_a_parameter():
    history = History.from_rows(rows(UPS_DE, hours(10)), limit=3)
    assert history.gap_seconds(UPS_DE, S.IN_TRANSIT) == [8 * 3600, 9 * 3600, 10 * 3600]


# ── Percentiles, delays and their reasons ─────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(("p", "value"), [(0, 1), (20, 2), (50, 5), (80, 8), (90, 9), (91, 10), (100, 10)])
def test_percentile_is_the_nearest_rank_so_it_is_always_a_real_sample(p, value):
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], p) == value


def test_percentile_of_a_single_sample_is_that_sample():
    assert percentile([7.0], 90) == 7.0


@pytest.mark.parametrize("status", LIVE)
def test_silence_of_exactly_the_limit_is_on_time_and_one_second_more_is_delayed(status):
    since = T0
    assert not is_delayed(status, since, since + 2 * D, 2 * D)
    assert is_delayed(status, since, since + 2 * D + timedelta(seconds=1), 2 * D)


@pytest.mark.parametrize("status", sorted(FINAL))
def test_a_final_shipment_is_never_delayed(status):
    assert not is_delayed(status, T0, T0 + 365 * D, H)
    assert check_delay(History(), UPS_DE, status, T0, T0 + 365 * D) is None


def test_check_delay_gives_the_reason_once_the_silence_outgrows_the_lane():
    history = History.from_rows(rows(UPS_DE, hours(20)))  # limit 27 h
    assert check_delay(history, UPS_DE, S.IN_TRANSIT, T0, T0 + 27 * H) is None
    assert check_delay(history, UPS_DE, "in_transit", T0, T0 + 5 * D) == (
        "no courier news for 5 days (in transit); usually at most 18 hours on ups → DE")


def test_the_reason_names_where_the_expectation_came_from():
    thin = History.from_rows(rows(UPS_FR, [36 * H] * 20))
    courier = expectation(thin, UPS_DE, S.IN_TRANSIT)
    assert delay_reason(UPS_DE, courier, T0, T0 + 4 * D) == (
        "no courier news for 4 days (in transit); usually at most 36 hours on ups (all countries)")
    default = expectation(History(), UPS_DE, S.OUT_FOR_DELIVERY)
    assert delay_reason(UPS_DE, default, T0, T0 + 20 * H) == (
        "no courier news for 20 hours (out for delivery); "
        "expected within 12 hours (default: too few past ups → DE parcels to learn from)")


def test_a_pending_parcel_is_counted_from_shipping():
    pending = expectation(History(), UPS_DE, S.PENDING)
    assert delay_reason(UPS_DE, pending, T0, T0 + 6 * D).startswith("no courier news for 6 days since it shipped;")
    assert check_delay(History(), UPS_DE, S.PENDING, T0, T0 + 5 * D) is None


@pytest.mark.parametrize(("span", "text"), [
    (timedelta(seconds=-5), "0 minutes"), (timedelta(seconds=59), "0 minutes"), (timedelta(minutes=1), "1 minute"),
    (59 * timedelta(minutes=1), "59 minutes"), (H, "1 hour"), (47 * H + timedelta(minutes=59), "47 hours"),
    (2 * D, "2 days"), (2 * D + 23 * H, "2 days"), (30 * D, "30 days"),
])
def test_spans_are_rounded_down_so_a_silence_is_never_overstated(span, text):
    assert human_span(span) == text


def test_a_lane_reads_as_courier_to_country_whatever_the_case():
    assert Lane("ups", " de ") == UPS_DE
    assert str(UPS_DE) == "ups → DE"
    assert str(Lane("ups", "")) == "ups"


# ── Delivery estimates ────────────────────────────────────────────────────────────────────────────────────


def transit_rows(lane: Lane, transits: list[timedelta], start: int = 0) -> list[tuple]:
    return rows(lane, [H] * len(transits), transits=transits, start=start)


SIX_HOURLY = [(i + 1) * 6 * H for i in range(20)]  # 6 h, 12 h, ... 120 h: p20 24 h, p50 60 h, p80 96 h


def test_the_couriers_own_estimate_wins_even_over_rich_history():
    history = History.from_rows(transit_rows(UPS_DE, SIX_HOURLY))
    estimate = estimate_delivery(history, UPS_DE, T0, date(2026, 1, 20), UTC)
    assert (estimate.date, estimate.source, estimate.low, estimate.high) == (
        date(2026, 1, 20), "courier", date(2026, 1, 20), date(2026, 1, 20))


def test_history_gives_the_median_transit_with_the_middle_sixty_percent_as_range():
    history = History.from_rows(transit_rows(UPS_DE, SIX_HOURLY))
    estimate = estimate_delivery(history, UPS_DE, T0, None, UTC)  # Monday 09:00
    assert estimate.source == "history"
    assert estimate.date == date(2026, 1, 7)  # + 60 h: Wednesday 21:00
    assert (estimate.low, estimate.high) == (date(2026, 1, 6), date(2026, 1, 9))  # + 24 h, + 96 h


def test_a_thin_lane_estimates_from_the_courier_across_all_countries():
    history = History.from_rows(transit_rows(UPS_DE, [1 * D] * 5) + transit_rows(UPS_FR, [3 * D] * 20, start=50))
    estimate = estimate_delivery(history, UPS_DE, T0, None, UTC)
    assert (estimate.source, estimate.date) == ("history", date(2026, 1, 8))


def test_with_no_history_the_default_is_four_days_give_or_take():
    assert DEFAULT_TRANSIT == (2 * D, 4 * D, 7 * D)
    estimate = estimate_delivery(History(), UPS_DE, T0, None, UTC)
    assert (estimate.date, estimate.source, estimate.low, estimate.high) == (
        date(2026, 1, 9), "default", date(2026, 1, 7), date(2026, 1, 12))


def test_parcels_never_delivered_or_delivered_before_shipping_teach_no_transit_time():
    past = [("ups", "DE", T0, None, []), ("ups", "DE", T0, T0 - H, []), ("ups", "DE", T0, T0, [])]
    assert History.from_rows(past).transit_seconds(UPS_DE) == []


def test_the_estimate_is_a_day_in_the_time_zone_asked_for():
    evening = datetime(2026, 1, 5, 20, 0, tzinfo=UTC)  # + 4 days: Friday 20:00 UTC, Saturday 05:00 in Tokyo
    assert estimate_delivery(History(), UPS_DE, evening, None, UTC).date == date(2026, 1, 9)
    assert estimate_delivery(History(), UPS_DE, evening, None, timezone(timedelta(hours=9))).date == date(2026, 1, 10)


def test_a_naive_shipping_time_is_refused_rather_than_read_as_local_time():
    with pytest.raises(ValueError, match="aware"):
        estimate_delivery(History(), UPS_DE, datetime(2026, 1, 5, 9), None, UTC)


# ── On the sandbox courier's realistic journeys ───────────────────────────────────────────────────────────

SANDBOX_T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SANDBOX_DE = Lane("sandbox", "DE")


def sandbox_journeys(country: str, count: int, start: int = 0) -> list:
    cities = len(COUNTRIES[country].cities)
    numbers = (make_tracking_number(SANDBOX_T0 + i * 7 * H, country, i % cities, i)
               for i in range(start, start + count))
    return [journey(7, number) for number in numbers]


def delivered(journeys: list) -> list:
    return [j for j in journeys if j.events[-1].status is S.DELIVERED]


def sandbox_row(country: str, j) -> tuple:
    """What the lead's history query yields for a delivered parcel: each silence tagged with its status."""
    gaps = [(a.status, b.at - a.at) for a, b in pairwise(j.events)]
    return ("sandbox", country, j.events[0].at, j.events[-1].at, gaps)


@pytest.fixture(scope="module")
def sandbox_history() -> History:
    return History.from_rows(sandbox_row("DE", j) for j in delivered(sandbox_journeys("DE", 500)))


def test_few_normal_sandbox_deliveries_would_ever_have_been_flagged(sandbox_history):
    """Most journeys have one slow leg (no Sunday rounds); learning each parcel's longest silence keeps
    those off the merchant's digest. Pooling every gap instead flagged 15% of them."""
    unseen = delivered(sandbox_journeys("DE", 300, start=500))
    flagged = [j for j in unseen if any(
        b.at - a.at > expected_gap(sandbox_history, SANDBOX_DE, a.status) for a, b in pairwise(j.events))]
    assert len(unseen) > 200
    assert len(flagged) / len(unseen) < 0.05


def test_a_lost_sandbox_parcel_is_flagged_once_its_silence_outgrows_the_lane(sandbox_history):
    lost = next(j for j in sandbox_journeys("DE", 300, start=500) if j.scenario == "lost")
    last = lost.events[-1]
    limit = expected_gap(sandbox_history, SANDBOX_DE, last.status)
    assert H * 12 < limit < 4 * D
    assert check_delay(sandbox_history, SANDBOX_DE, last.status, last.at, last.at + limit) is None
    reason = check_delay(sandbox_history, SANDBOX_DE, last.status, last.at, last.at + limit + timedelta(minutes=1))
    assert reason is not None and reason.endswith("on sandbox → DE")


def test_sandbox_deliveries_mostly_land_in_the_estimated_range(sandbox_history):
    unseen = delivered(sandbox_journeys("DE", 300, start=500))
    estimates = [(estimate_delivery(sandbox_history, SANDBOX_DE, j.events[0].at, None, UTC), j.events[-1].at.date())
                 for j in unseen]
    assert {e.source for e, _ in estimates} == {"history"}
    inside = sum(e.low <= day <= e.high for e, day in estimates)
    assert inside / len(estimates) > 0.75
