"""Runs one job once with everything around it: the overlap guard, the time limit, logs and metrics.

Both runners (taskiq workers, the in-process scheduler) and ``litestar jobs run``
go through ``JobRunner.run``, so a run is counted and logged the same way
wherever it happens. A failing run never raises: the next tick retries it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from app.domain.jobs.catalogue import SLOW_RUN_SECONDS
from app.domain.jobs.model import Job, JobOutcome
from app.domain.jobs.ports import ServiceScope
from app.domain.jobs.service import run_job
from app.domain.shared.ports import Clock
from app.infra.jobs.locks import RunGuard
from app.infra.jobs.metrics import DURATION, IN_PROGRESS, LAST_SUCCESS, RUNS

logger = logging.getLogger("app.jobs")

# The overlap lock outlives the time limit a little: cancelling a run at its limit takes a moment.
_LOCK_MARGIN_SECONDS = 5.0


class JobRunner:
    def __init__(self, scope: ServiceScope, clock: Clock, batch_size: int, guard: RunGuard) -> None:
        self._scope = scope
        self._clock = clock
        self._batch_size = batch_size
        self._guard = guard
        self._running: set[asyncio.Task[object]] = set()

    @property
    def running(self) -> int:
        return len(self._running)

    async def run(self, job: Job, run_id: str) -> JobOutcome:
        """Run ``job`` unless another run of it is in progress; return the outcome (never raises, except
        ``CancelledError`` when the process shuts down, after logging and counting the run)."""
        extra: dict[str, object] = {"job": job.name, "run_id": run_id}
        async with self._guard.hold(job.name, run_id, job.timeout_seconds + _LOCK_MARGIN_SECONDS) as acquired:
            if not acquired:
                RUNS.labels(job.name, JobOutcome.SKIPPED).inc()
                logger.info("job run skipped: the previous run still runs", extra=extra)
                return JobOutcome.SKIPPED
            return await self._run_owned(job, extra)

    async def _run_owned(self, job: Job, extra: dict[str, object]) -> JobOutcome:
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        IN_PROGRESS.labels(job.name).inc()
        started = time.monotonic()
        logger.info("job run started", extra=extra)
        limit = asyncio.timeout(job.timeout_seconds)
        try:
            async with limit:
                changed = await run_job(job, self._scope, self._clock.now(), self._batch_size)
        except TimeoutError:
            if not limit.expired():  # a timeout inside the job (a statement timeout, say) is an error
                return self._failed(job, extra, started)
            self._finish(job, JobOutcome.TIMEOUT, started)
            logger.error(  # noqa: TRY400 - a cancelled run's traceback says nothing
                "job run timed out", extra={**extra, "timeout_s": job.timeout_seconds, **_took(started)}
            )
            return JobOutcome.TIMEOUT
        except asyncio.CancelledError:
            self._finish(job, JobOutcome.TIMEOUT, started)
            logger.warning("job run cancelled: the process is shutting down", extra={**extra, **_took(started)})
            raise
        except Exception:  # noqa: BLE001 - any failure is this run's; the next tick retries
            return self._failed(job, extra, started)
        finally:
            IN_PROGRESS.labels(job.name).dec()
            if task is not None:
                self._running.discard(task)
        self._finish(job, JobOutcome.SUCCESS, started)
        LAST_SUCCESS.labels(job.name).set(time.time())
        duration = time.monotonic() - started
        level = logging.WARNING if duration > SLOW_RUN_SECONDS else logging.INFO
        message = "job run slow" if level == logging.WARNING else "job run finished"
        logger.log(level, message, extra={**extra, "changed": changed, **_took(started)})
        return JobOutcome.SUCCESS

    def _failed(self, job: Job, extra: dict[str, object], started: float) -> JobOutcome:
        self._finish(job, JobOutcome.ERROR, started)
        logger.exception("job run failed", extra={**extra, **_took(started)})
        return JobOutcome.ERROR

    @staticmethod
    def _finish(job: Job, outcome: JobOutcome, started: float) -> None:
        RUNS.labels(job.name, outcome).inc()
        DURATION.labels(job.name).observe(time.monotonic() - started)

    async def wait_idle(self, limit_seconds: float) -> bool:
        """Wait up to ``limit_seconds`` for the runs in progress; then cancel (and await) those left.

        Returns True when every run finished by itself.
        """
        pending = set(self._running)
        if pending:
            logger.info("waiting for running jobs", extra={"runs": len(pending), "limit_s": limit_seconds})
            _done, pending = await asyncio.wait(pending, timeout=limit_seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        return not pending


def _took(started: float) -> dict[str, float]:
    return {"duration_ms": round((time.monotonic() - started) * 1000, 1)}
