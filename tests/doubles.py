"""Test doubles shared by the adapter and sender tests."""

from __future__ import annotations


class Sleeps:
    """Records the waits a retry policy asks for instead of sleeping: tests never wait for real."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
