"""Clocks. Every job takes `now` from one of these, so the daemon, a sped-up demo and `simulate` share code."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class ScaledClock:
    """Real time multiplied by `speed` from `start`: the sandbox demo lives a day in a few real seconds."""

    def __init__(self, start: datetime, speed: float) -> None:
        self.start = start
        self.speed = speed
        self._real_start = time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._real_start) * self.speed)


class ManualClock:
    """A clock that only moves when told to: `simulate` jumps it from one due time to the next."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, value: datetime) -> None:
        if value < self.now:
            raise ValueError("a manual clock never goes back")
        self.now = value


def as_measured_by(clock: Clock, real: timedelta) -> timedelta:
    """A span of real time in `clock`'s units. Leases are real time (they must outlast the work and end soon
    after a crash), but are compared with the jobs' `now`: on the sped-up demo clock 10 real minutes are
    `speed` × 10 minutes long, not a few milliseconds."""
    return real * getattr(clock, "speed", 1)
