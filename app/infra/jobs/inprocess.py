"""The job catalogue run inside the API process, on its own event loop (mode without Redis).

One task per job sleeps until the job's next due time and then runs it
(awaiting the run, so a job never overlaps itself here). With several API
processes, only the one holding the leadership runs jobs; the others try again
every ``retry_seconds``. Stopping (the runtime's "stop scheduler" shutdown step)
stops the ticking, waits a bounded time for the runs in progress, cancels what
is left, and gives the leadership back, all before the database is disposed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from datetime import tzinfo
from typing import Any

from app.domain.jobs.model import Job, next_due, tick_of
from app.domain.shared.ports import Clock
from app.infra.jobs.leadership import Leadership
from app.infra.jobs.runner import JobRunner

logger = logging.getLogger("app.jobs")

Spawn = Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]]


class InProcessScheduler:
    def __init__(
        self,
        jobs: tuple[Job, ...],
        runner: JobRunner,
        clock: Clock,
        zone: tzinfo,
        leadership: Leadership,
        *,
        retry_seconds: float,
    ) -> None:
        self._jobs = jobs
        self._runner = runner
        self._clock = clock
        self._zone = zone
        self._leadership = leadership
        self._retry_seconds = retry_seconds
        self._stopping = asyncio.Event()
        self._main: asyncio.Task[None] | None = None
        self._job_loops: set[asyncio.Task[None]] = set()

    def start(self, spawn: Spawn) -> None:
        self._stopping.clear()
        self._main = spawn(self._lead_or_wait(), "in-process job scheduler")

    async def stop(self, wait_seconds: float) -> None:
        """Stop ticking; let running jobs finish within ``wait_seconds`` (then cancel them); step down."""
        self._stopping.set()
        finished = await self._runner.wait_idle(wait_seconds)
        if not finished:
            logger.warning("running jobs cancelled at shutdown", extra={"limit_s": wait_seconds})
        if self._main is not None:
            self._main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._main
            self._main = None
        await self._leadership.release()

    async def _lead_or_wait(self) -> None:
        announced_follower = False
        while not self._stopping.is_set():
            try:
                leading = await self._leadership.try_acquire()
            except Exception as error:  # noqa: BLE001 - the database may be down; try again later
                logger.warning("job leadership not acquired", extra={"error": repr(error)})
                leading = False
            if leading:
                announced_follower = False
                logger.info("this process runs the jobs", extra={"leadership": self._leadership.description})
                await self._run_jobs_while_leading()
            elif not announced_follower:
                logger.info(
                    "another process runs the jobs; this one stands by",
                    extra={"leadership": self._leadership.description, "retry_s": self._retry_seconds},
                )
                announced_follower = True
            await self._pause(self._retry_seconds)

    async def _run_jobs_while_leading(self) -> None:
        loops = {asyncio.get_running_loop().create_task(self._tick(job), name=f"job {job.name}") for job in self._jobs}
        self._job_loops = loops
        try:
            while not self._stopping.is_set():
                await self._pause(self._retry_seconds)
                if not self._stopping.is_set() and not await self._leadership.still_held():
                    break
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            self._job_loops = set()

    async def _tick(self, job: Job) -> None:
        while True:
            due = next_due(job.cadence, self._clock.now(), self._zone)
            if await self._pause((due - self._clock.now()).total_seconds()):
                return
            await self._runner.run(job, f"{job.name}@{tick_of(job.cadence, due, self._zone)}")

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` or until stopping; True when stopping."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(seconds, 0)):
                await self._stopping.wait()
        return self._stopping.is_set()
