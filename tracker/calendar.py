"""Shop calendars: delays counted in calendar or business days, landing at a local time of day.

"5 business days after delivery, in the customer's morning" is how merchants think about follow-ups; these
pure functions turn that into one UTC instant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_BUSINESS = re.compile(r"^\s*(\d+)\s*(bd|business days?)\s*$")


@dataclass(frozen=True)
class ShopCalendar:
    working_days: frozenset[int] = frozenset(range(5))  # Monday = 0
    holidays: frozenset[date] = frozenset()

    def is_business_day(self, day: date) -> bool:
        return day.weekday() in self.working_days and day not in self.holidays


@dataclass(frozen=True)
class Delay:
    """A wait written like '7d' (calendar time) or '5bd' / '5 business days' (shop working days)."""

    calendar: timedelta = timedelta(0)
    business_days: int = 0

    def __str__(self) -> str:
        return f"{self.business_days} business days" if self.business_days else str(self.calendar)


def parse_business_days(text: str) -> int | None:
    """The number of business days in '5bd' or '5 business days', else None."""
    match = _BUSINESS.match(text) if isinstance(text, str) else None
    return int(match.group(1)) if match else None


def add_business_days(start: datetime, days: int, calendar: ShopCalendar, zone: ZoneInfo) -> datetime:
    """The same local time of day, `days` working days later (weekends and holidays skipped)."""
    local = start.astimezone(zone)
    day = local.date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if calendar.is_business_day(day):
            counted += 1
    return datetime.combine(day, local.timetz().replace(tzinfo=None), zone).astimezone(start.tzinfo)


def after(start: datetime, delay: Delay, calendar: ShopCalendar, zone: ZoneInfo) -> datetime:
    if delay.business_days:
        return add_business_days(start, delay.business_days, calendar, zone)
    return start + delay.calendar


def at_local_time(moment: datetime, when: time, zone: ZoneInfo, calendar: ShopCalendar | None = None) -> datetime:
    """The first `when` o'clock in `zone` at or after `moment` (on a business day if a calendar is given)."""
    local = moment.astimezone(zone)
    day = local.date() if local.time() <= when else local.date() + timedelta(days=1)
    while calendar is not None and not calendar.is_business_day(day):
        day += timedelta(days=1)
    return datetime.combine(day, when, zone).astimezone(moment.tzinfo)
