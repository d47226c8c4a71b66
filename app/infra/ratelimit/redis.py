"""Fixed-window rate limiter on Redis: one atomic script, so every API process shares the count."""

from __future__ import annotations

import logging
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

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

    def __init__(self, redis: Redis, prefix: str = "ratelimit:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._script: Any = redis.register_script(_HIT)

    async def hit(self, key: str, limit: int, window_seconds: int) -> int:
        try:
            count, ttl_ms = cast(
                "list[int]", await self._script(keys=[self._prefix + key], args=[window_seconds * 1000])
            )
        except (RedisError, OSError):
            logger.warning("rate limiter unavailable (Redis error); allowing the attempt", exc_info=False)
            return 0
        if count <= limit:
            return 0
        return max(1, -(-int(ttl_ms) // 1000))
