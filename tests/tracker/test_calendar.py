"""Follow-up timing: business days skip weekends and holidays, and land in the customer's morning."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tracker.calendar import Delay, ShopCalendar, add_business_days, after, at_local_time, parse_business_days

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = ShopCalendar()


def test_business_days_skip_the_weekend():
    friday = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)
    assert add_business_days(friday, 1, WEEKDAYS, BERLIN) == datetime(2026, 3, 9, 15, 0, tzinfo=UTC)  # Monday
    assert add_business_days(friday, 5, WEEKDAYS, BERLIN) == datetime(2026, 3, 13, 15, 0, tzinfo=UTC)


def test_business_days_skip_holidays_and_keep_the_local_time_across_a_clock_change():
    calendar = ShopCalendar(holidays=frozenset({date(2026, 3, 30)}))
    friday = datetime(2026, 3, 27, 9, 0, tzinfo=UTC)  # 10:00 in Berlin, before summer time starts
    monday_off, tuesday = date(2026, 3, 30), datetime(2026, 3, 31, 8, 0, tzinfo=UTC)  # still 10:00 local
    assert not calendar.is_business_day(monday_off)
    assert add_business_days(friday, 1, calendar, BERLIN) == tuesday


def test_a_shop_working_six_days_counts_saturdays():
    six = ShopCalendar(working_days=frozenset(range(6)))
    friday = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
    assert add_business_days(friday, 1, six, BERLIN).date() == date(2026, 3, 7)


def test_calendar_delays_are_plain_durations():
    start = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
    assert after(start, Delay(calendar=timedelta(days=7)), WEEKDAYS, BERLIN) == start + timedelta(days=7)
    assert after(start, Delay(business_days=2), WEEKDAYS, BERLIN) == datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def test_landing_in_the_local_morning():
    evening = datetime(2026, 3, 6, 19, 0, tzinfo=UTC)  # 20:00 in Berlin, Friday
    assert at_local_time(evening, time(10), BERLIN) == datetime(2026, 3, 7, 9, 0, tzinfo=UTC)
    assert at_local_time(evening, time(10), BERLIN, WEEKDAYS) == datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
    early = datetime(2026, 3, 9, 6, 0, tzinfo=UTC)  # 07:00 Monday
    assert at_local_time(early, time(10), BERLIN) == datetime(2026, 3, 9, 9, 0, tzinfo=UTC)


def test_business_days_are_written_like_5bd():
    assert parse_business_days("5bd") == 5
    assert parse_business_days("3 business days") == 3
    assert parse_business_days("1 business day") == 1
    assert parse_business_days("7d") is None
