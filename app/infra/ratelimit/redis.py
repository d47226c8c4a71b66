"""Fixed-window rate limiter on Redis: one atomic script, so every API process shares the count."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

WARNING_INTERVAL_SECONDS = 30.0

_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
local ttl = redis.call('PTTL', KEYS[1])
return {count, ttl}
"""


class RedisRateLimiter:
    """Fails open: while Redis is unreachable logins are not limited, and a warning says so."""

    def __init__(
        self, redis: Redis, prefix: str = "ratelimit:", monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._script: Any = redis.register_script(_HIT)
        self._monotonic = monotonic
        self._last_warning = -WARNING_INTERVAL_SECONDS
        self._failures_since_warning = 0

    async def hit(self, key: str, limit: int, window_seconds: int) -> int:
        try:
            count, ttl_ms = cast(
                "list[int]", await self._script(keys=[self._prefix + key], args=[window_seconds * 1000])
            )
        except (RedisError, OSError) as error:
            self._warn(error)
            return 0
        if count <= limit:
            return 0
        return max(1, -(-int(ttl_ms) // 1000))

    def _warn(self, error: BaseException) -> None:
        """At most one warning per interval, with the count of failures it stands for (no log flood)."""
        self._failures_since_warning += 1
        now = self._monotonic()
        if now - self._last_warning >= WARNING_INTERVAL_SECONDS:
            logger.warning(
                "rate limiter unavailable (Redis error); allowing attempts",
                extra={"error": type(error).__name__, "failures": self._failures_since_warning},
            )
            self._last_warning = now
            self._failures_since_warning = 0
