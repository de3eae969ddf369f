"""A simulated shop and courier, so a new user sees trackmail work end to end with no accounts.

Everything is a pure function of (seed, the clock's value, the arguments): no state is kept between calls
(save the call counter of the optional simulated quota, `per_day`), so the daemon can compress time,
`simulate` can jump a virtual clock, and two processes agree on every order and scan. The generation lives
beside this module, one job each; this one holds the two adapters and the registry's factories:

- `sandbox_settings`: `SandboxSettings` and reading them from an account's table (`settings_from_section`);
- `sandbox_numbers`: the geography and the tracking numbers, which carry their label time and destination;
- `sandbox_customers`: the pool of customers a seed gives;
- `sandbox_orders`: the orders of each UTC day, from `random.Random(f"{seed}:{day_ordinal}")`, which makes one
  big `changes()` window return exactly what many small windows return together;
- `sandbox_journeys`: the courier's code table and each parcel's journey, replayed from
  `random.Random(f"{seed}:{number}")`. The courier shares nothing with the shop but the number.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

from carriers.base import FeedBatch, TrackingResult, TransientError
from carriers.http import Limits
from carriers.sandbox_journeys import STATUS_CODES, Journey, journey
from carriers.sandbox_numbers import COUNTRIES, make_tracking_number, parse_tracking_number
from carriers.sandbox_orders import COURIER_NAME, MAX_SHIP_DELAY, SHOP_OPENED, day_orders
from carriers.sandbox_settings import SandboxSettings, settings_from_section
from tracker.clock import Clock
from tracker.settings import Section

__all__ = [
    # Defined here: the adapters and the registry's factories (carriers/__init__.py).
    "SandboxCourier", "SandboxMarketplace", "courier_from_settings", "marketplace_from_settings",
    # Re-exported for the modules and tests that import them from here.
    "COUNTRIES", "COURIER_NAME", "STATUS_CODES", "Journey", "SandboxSettings", "day_orders", "journey",
    "make_tracking_number", "parse_tracking_number", "settings_from_section",
]


def _utc(moment: datetime, what: str) -> datetime:
    """Aware UTC; a naive time is refused (unlike carriers.read.aware_utc, which reads it as UTC): the clock and
    the feed's cursor are ours, so a naive one is a bug to surface, not a payload to tolerate."""
    if moment.tzinfo is None:
        raise ValueError(f"{what} must be an aware datetime, got {moment!r}")
    return moment.astimezone(UTC)


class SandboxMarketplace:
    """A shop's order feed, simulated."""

    def __init__(self, name: str, settings: SandboxSettings, clock: Clock) -> None:
        self.name = name
        self.settings = settings
        self.clock = clock

    async def changes(self, since: datetime) -> FeedBatch:
        now = _utc(self.clock(), "the clock")
        since = _utc(since, "since")
        first_day = max(since.date().toordinal() - MAX_SHIP_DELAY.days - 1, SHOP_OPENED.toordinal())
        orders = [
            planned.snapshot(now)
            for day in range(first_day, now.date().toordinal() + 1)
            for planned in day_orders(self.settings, day)
            if any(since < t <= now for t in planned.change_times)
        ]
        return FeedBatch(tuple(orders), now)

    async def aclose(self) -> None:
        pass


class SandboxCourier:
    """A courier account, simulated: answers for any sandbox number from the number alone.

    With `per_day` set it also plays the courier's quota, the one piece of state it keeps: calls are
    counted per UTC day of its clock (`calls`), and a call over the quota is refused as a real courier
    would, HTTP 429 with Retry-After until midnight."""

    concurrency = 4

    def __init__(self, name: str, settings: SandboxSettings, clock: Clock) -> None:
        self.name = name
        self.settings = settings
        self.clock = clock
        self.batch_size = settings.batch_size
        self.limits = Limits(concurrency=self.concurrency, per_day=settings.per_day)
        self.calls: dict[date, int] = {}  # UTC day → calls made that day (refused ones included)

    async def track(self, numbers: Sequence[str]) -> list[TrackingResult]:
        now = _utc(self.clock(), "the clock")
        used = self.calls[now.date()] = self.calls.get(now.date(), 0) + 1
        if self.settings.per_day is not None and used > self.settings.per_day:
            midnight = datetime.combine(now.date() + timedelta(days=1), time(), UTC)
            raise TransientError("daily quota exceeded", source=self.name, status_code=429,
                                 retry_after=(midnight - now).total_seconds())
        return [self._result(number, now) for number in numbers]

    def _result(self, number: str, now: datetime) -> TrackingResult:
        planned = journey(self.settings.seed, number)
        return planned.result(number, now) if planned else TrackingResult(number, found=False)

    def tracking_url(self, number: str) -> str:
        return self.settings.tracking_base_url + number

    async def aclose(self) -> None:
        pass


# ── Registry factories (carriers/__init__.py): (account name, its table, clock) ──────────────────────────


def courier_from_settings(name: str, section: Section, clock: Clock) -> SandboxCourier:
    return SandboxCourier(name, settings_from_section(section), clock)


def marketplace_from_settings(name: str, section: Section, clock: Clock) -> SandboxMarketplace:
    return SandboxMarketplace(name, settings_from_section(section), clock)

