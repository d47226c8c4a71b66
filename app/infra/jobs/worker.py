"""A worker process's resources, built at ``WORKER_STARTUP`` and closed in order at ``WORKER_SHUTDOWN``.

taskiq stops taking messages on SIGTERM and waits for the runs in progress
(``--wait-tasks-timeout``) before it shuts the broker down, which calls
``stop``: runs still going are cancelled and awaited, then live-event publishing
tasks, the event-loop monitor, the heartbeat, the database pool and Redis are
closed, each step bounded and logged like the API's shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, close_all_sessions

from app.domain.jobs.model import Job, JobOutcome
from app.infra.jobs.heartbeats import Heartbeat
from app.infra.jobs.metrics import serve_metrics
from app.infra.jobs.runner import JobRunner
from app.infra.observability.loop_metrics import LoopMonitor

logger = logging.getLogger("app.jobs")


class BackgroundTasks:
    """Fire-and-forget tasks of the worker (publishing live events after a commit), awaited at shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        if self._closed:
            coroutine.close()
            raise RuntimeError(f"cannot start {name!r}: the worker is shutting down")
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self, limit_seconds: float) -> None:
        self._closed = True
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=limit_seconds)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)


@dataclass
class WorkerResources:
    engine: AsyncEngine
    redis: Redis
    runner: JobRunner
    heartbeat: Heartbeat
    background: BackgroundTasks


class JobWorker:
    """The worker side of one process: ``build`` makes the resources; ``run`` is what each task calls."""

    def __init__(
        self, build: Callable[[], Awaitable[WorkerResources]], *, stop_timeout: float, metrics_port: int
    ) -> None:
        self._build = build
        self._stop_timeout = stop_timeout
        self._metrics_port = metrics_port
        self._resources: WorkerResources | None = None
        self._loop_monitor = LoopMonitor()

    async def start(self, _state: object = None) -> None:
        await self._loop_monitor.start()
        self._resources = await self._build()
        serve_metrics(self._metrics_port)
        self._resources.heartbeat.start()
        logger.info("job worker started")

    async def run(self, job: Job, run_id: str) -> JobOutcome:
        if self._resources is None:
            raise RuntimeError("the job worker has not started")
        return await self._resources.runner.run(job, run_id)

    async def stop(self, _state: object = None) -> None:
        resources, self._resources = self._resources, None
        if resources is None:
            await self._loop_monitor.stop()
            return
        began = time.perf_counter()
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("stop running jobs", lambda: resources.runner.wait_idle(0)),
            ("stop event-loop monitor", self._loop_monitor.stop),
            ("publish pending live events", lambda: resources.background.close(self._stop_timeout / 2)),
            ("stop heartbeat", resources.heartbeat.stop),
            ("close database sessions", close_all_sessions),
            ("dispose database pool", resources.engine.dispose),
            ("close redis", resources.redis.aclose),
        ]
        for name, action in steps:
            await _bounded_step(name, action, self._stop_timeout)
        logger.info("job worker stopped", extra={"duration_ms": round((time.perf_counter() - began) * 1000, 1)})


async def _bounded_step(name: str, action: Callable[[], Awaitable[object]], limit: float) -> None:
    started = time.perf_counter()
    extra: dict[str, object] = {"step": name}
    try:
        async with asyncio.timeout(limit):
            await action()
    except TimeoutError:
        logger.error("worker shutdown step timed out", extra={**extra, "timeout_s": limit})  # noqa: TRY400
    except Exception:
        logger.exception("worker shutdown step failed", extra=extra)
    else:
        extra["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
        logger.info("worker shutdown step done", extra=extra)
