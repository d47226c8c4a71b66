"""One run of a job at a time: a second run that starts while the first still runs is skipped.

Over Redis the lock spans every worker process; it expires after the job's time
limit, so a worker killed mid-run blocks the job for at most that long.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger("app.jobs")

LOCK_PREFIX = "taskmarket:jobs:running:"
# Deletes the lock only if this run still owns it (it may have expired and been taken by another run).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class RunGuard(Protocol):
    def hold(self, job: str, run_id: str, ttl_seconds: float) -> AbstractAsyncContextManager[bool]:
        """Yield True while this run owns ``job``, False (and own nothing) when another run does."""
        ...


class LocalRunGuard:
    """One process (in-process mode, ``litestar jobs run`` without Redis)."""

    def __init__(self) -> None:
        self._running: set[str] = set()

    @asynccontextmanager
    async def hold(self, job: str, run_id: str, ttl_seconds: float) -> AsyncIterator[bool]:
        if job in self._running:
            yield False
            return
        self._running.add(job)
        try:
            yield True
        finally:
            self._running.discard(job)


class RedisRunGuard:
    """Every worker process: ``SET NX PX`` per job name, released (if still ours) at the end of the run."""

    def __init__(self, redis: Redis, timeout: float) -> None:
        self._redis = redis
        self._timeout = timeout

    @asynccontextmanager
    async def hold(self, job: str, run_id: str, ttl_seconds: float) -> AsyncIterator[bool]:
        key = LOCK_PREFIX + job
        async with asyncio.timeout(self._timeout):
            acquired = bool(await self._redis.set(key, run_id, nx=True, px=int(ttl_seconds * 1000)))
        if not acquired:
            yield False
            return
        try:
            yield True
        finally:
            try:
                async with asyncio.timeout(self._timeout):
                    await self._redis.eval(_RELEASE, 1, key, run_id)
            except (RedisError, OSError, TimeoutError) as error:
                # the lock expires by itself after the job's time limit
                logger.warning("job lock not released", extra={"job": job, "run_id": run_id, "error": repr(error)})
