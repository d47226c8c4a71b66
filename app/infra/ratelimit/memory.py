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

    async def hit(self, key: str, limit: int, window_seconds: int) -> int:
        now = self._monotonic()
        if len(self._windows) > SWEEP_THRESHOLD:
            self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
        ends_at, count = self._windows.get(key, (0.0, 0))
        if ends_at <= now:
            ends_at, count = now + window_seconds, 0
        count += 1
        self._windows[key] = (ends_at, count)
        return 0 if count <= limit else max(1, math.ceil(ends_at - now))
