"""Fixed-window rate limiter for a single process (no Redis configured)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

# Expired windows are swept when the table grows past this, so memory stays bounded.
SWEEP_THRESHOLD = 10_000


class InMemoryRateLimiter:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._windows: dict[str, tuple[float, int]] = {}
        self._monotonic = monotonic
        self._live_after_sweep = 0

    def __len__(self) -> int:
        """Keys currently tracked (live windows plus expired ones not yet swept)."""
        return len(self._windows)

    async def hit(self, key: str, limit: int, window_seconds: int) -> int:
        now = self._monotonic()
        # Sweep only once the table has doubled since the last sweep: when every key is
        # still live (many distinct keys in one window), sweeping on each hit would
        # scan the whole table per request. Memory stays within twice the live set.
        if len(self._windows) > max(SWEEP_THRESHOLD, 2 * self._live_after_sweep):
            self._sweep(now)
        ends_at, count = self._windows.get(key, (0.0, 0))
        if ends_at <= now:
            ends_at, count = now + window_seconds, 0
        count += 1
        self._windows[key] = (ends_at, count)
        return 0 if count <= limit else max(1, math.ceil(ends_at - now))

    def _sweep(self, now: float) -> None:
        self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
        self._live_after_sweep = len(self._windows)
