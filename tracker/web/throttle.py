"""Counting failures per key (a client address, an order number) in a sliding window, in memory.

Per process: several daemons, or a restart, count separately; behind a reverse proxy every client shares
the proxy's address unless the proxy passes the real one on (uvicorn's --forwarded-allow-ips).
"""

from __future__ import annotations

import threading
from collections import deque


class Throttle:
    """Failed logins per client address within a sliding window; `limit` of them lock that address out until
    the oldest ages out of the window. Times are `time.monotonic()` seconds, never the (maybe sped-up) clock."""

    def __init__(self, limit: int = 5, window: float = 300.0) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.get(client, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def wait(self, client: str, now: float) -> float:
        """Seconds until `client` may try again; 0 when it may now."""
        with self._lock:
            failures = self._recent(client, now)
            return failures[0] + self.window - now if len(failures) >= self.limit else 0.0

    def failed(self, client: str, now: float) -> None:
        with self._lock:
            if len(self._failures) > 10_000:  # many addresses: keep only those still inside the window
                self._failures = {c: f for c, f in self._failures.items() if self._recent(c, now)}
            self._failures[client] = self._recent(client, now)
            self._failures[client].append(now)

    def forget(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)
