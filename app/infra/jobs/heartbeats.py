"""Liveness of the scheduler and worker processes, as seen by the API's readiness probe.

Each process writes ``SET taskmarket:jobs:heartbeat:<role>:<instance> <unix time> EX ttl``
every interval. A heartbeat older than three intervals is stale; one that
expired (its process is gone for a while) is simply absent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger("app.jobs")

PREFIX = "taskmarket:jobs:heartbeat:"
STALE_AFTER_INTERVALS = 3
EXPIRE_AFTER_INTERVALS = 30


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat:
    """Writes this process's heartbeat until stopped; Redis errors are logged and retried next beat."""

    def __init__(self, redis: Redis, role: str, interval: float, timeout: float) -> None:
        self._redis = redis
        self.key = f"{PREFIX}{role}:{instance_name()}"
        self._interval = interval
        self._timeout = timeout
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._beat_forever(), name=f"heartbeat {self.key}")

    async def stop(self) -> None:
        """Stop beating and remove the key (a process that stopped cleanly is not reported stale)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(self._timeout):
                await self._redis.delete(self.key)

    async def _beat_forever(self) -> None:
        ttl = max(int(self._interval * EXPIRE_AFTER_INTERVALS), 1)
        while True:
            try:
                async with asyncio.timeout(self._timeout):
                    await self._redis.set(self.key, repr(time.time()), ex=ttl)
            except (RedisError, OSError, TimeoutError) as error:
                if not self._failing:
                    logger.warning("heartbeat not written", extra={"key": self.key, "error": repr(error)})
                self._failing = True
            else:
                if self._failing:
                    logger.info("heartbeat written again", extra={"key": self.key})
                self._failing = False
            await asyncio.sleep(self._interval)


@dataclass(frozen=True, slots=True)
class HeartbeatReport:
    live: int  # instances with a fresh heartbeat
    stale: int
    newest_age_s: float | None  # None: no heartbeat at all

    def problem(self, role: str) -> str | None:
        """None when at least one instance is fresh, else what an operator should know (with the age)."""
        if self.live:
            return None
        if self.newest_age_s is None:
            return f"no {role} heartbeat"
        return f"{role} heartbeat stale: last one {self.newest_age_s:.0f} s ago"


async def read_heartbeats(redis: Redis, role: str, interval: float) -> HeartbeatReport:
    keys = [key async for key in redis.scan_iter(match=f"{PREFIX}{role}:*", count=100)]
    values = await redis.mget(keys) if keys else []
    now = time.time()
    ages = [now - float(value) for value in values if value is not None]
    stale_after = interval * STALE_AFTER_INTERVALS
    live = sum(1 for age in ages if age <= stale_after)
    return HeartbeatReport(live=live, stale=len(ages) - live, newest_age_s=min(ages) if ages else None)
