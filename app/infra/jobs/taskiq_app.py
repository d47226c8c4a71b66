"""Distributed mode: the job catalogue on taskiq with Redis (a scheduler process and worker processes).

* Broker: ``RedisStreamBroker`` (consumer group, acknowledged after the run: at
  least once). ``idle_timeout`` is above the longest job time limit, so a long run
  is never handed to a second worker while it still runs; a dead worker's message
  is handed on after it. ``maxlen`` trims acknowledged entries.
* Scheduler: taskiq's scheduler loop over ``CatalogueSource``. taskiq does not
  de-duplicate across replicas, so ``pre_send`` claims (job, tick) with Redis
  ``SET NX EX``: however many replicas run (or restart within a tick), each tick
  is enqueued once. ``JobScheduler`` bounds each send with a timeout and counts
  and logs failed sends (taskiq drops them silently).
* Every task has an explicit ``task_name`` (the job name) and every schedule an
  explicit ``schedule_id``; the message's task id is ``<job>@<tick>``, the run id
  the workers log.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from taskiq import AsyncBroker, Context, ScheduledTask, ScheduleSource, TaskiqDepends, TaskiqScheduler
from taskiq.exceptions import ScheduledTaskCancelledError
from taskiq.kicker import AsyncKicker
from taskiq.utils import maybe_awaitable
from taskiq_redis import RedisStreamBroker

from app.domain.jobs.catalogue import job_named
from app.domain.jobs.model import DailyAt, Every, Job, JobOutcome, tick_of
from app.infra.jobs.heartbeats import Heartbeat, instance_name
from app.infra.jobs.metrics import ENQUEUE_FAILURES, ENQUEUED, TICKS_ALREADY_CLAIMED, serve_metrics
from app.infra.observability.loop_metrics import LoopMonitor

logger = logging.getLogger("app.jobs")

QUEUE = "taskmarket:jobs"
CONSUMER_GROUP = "taskmarket-workers"
TICK_PREFIX = "taskmarket:jobs:tick:"
STREAM_MAXLEN = 10_000
# How much longer than the longest time limit a message stays with its worker before re-delivery.
REDELIVERY_MARGIN_SECONDS = 30

RunJob = Callable[[Job, str], Awaitable[JobOutcome]]


def build_broker(redis_url: str, jobs: tuple[Job, ...]) -> RedisStreamBroker:
    longest = max(job.timeout_seconds for job in jobs)
    return RedisStreamBroker(
        redis_url,
        queue_name=QUEUE,
        consumer_group_name=CONSUMER_GROUP,
        idle_timeout=int((longest + REDELIVERY_MARGIN_SECONDS) * 1000),
        maxlen=STREAM_MAXLEN,
    )


def register_jobs(broker: AsyncBroker, jobs: tuple[Job, ...], run: RunJob) -> None:
    """One taskiq task per job, named after it; the body hands the job to ``run`` with the message's id."""
    for job in jobs:
        broker.register_task(_task_for(job, run), task_name=job.name)


def _task_for(job: Job, run: RunJob) -> Callable[..., Awaitable[str]]:
    async def run_one(context: Annotated[Context, TaskiqDepends()]) -> str:
        outcome = await run(job, context.message.task_id)
        return outcome.value

    run_one.__name__ = f"run_{job.name.replace('-', '_')}"
    return run_one


class CatalogueSource(ScheduleSource):
    """The catalogue as taskiq schedules, with one enqueue per (job, tick) across scheduler replicas."""

    def __init__(self, jobs: tuple[Job, ...], zone_name: str, redis: Redis, redis_timeout: float) -> None:
        self.jobs = jobs
        self._zone_name = zone_name
        self._zone = ZoneInfo(zone_name)
        self._redis = redis
        self._timeout = redis_timeout
        self._instance = instance_name()

    async def get_schedules(self) -> list[ScheduledTask]:
        return [self._schedule(job) for job in self.jobs]

    def _schedule(self, job: Job) -> ScheduledTask:
        common: dict[str, Any] = {
            "task_name": job.name,
            "schedule_id": job.name,
            "labels": {},
            "args": [],
            "kwargs": {},
        }
        if isinstance(job.cadence, Every):
            return ScheduledTask(**common, interval=job.cadence.seconds)
        cadence: DailyAt = job.cadence
        return ScheduledTask(**common, cron=f"{cadence.minute} {cadence.hour} * * *", cron_offset=self._zone_name)

    async def pre_send(self, task: ScheduledTask) -> None:
        """Claim (job, tick); cancel the send when another replica (or an earlier start of this one) did."""
        job = job_named(task.task_name, self.jobs)
        tick = tick_of(job.cadence, datetime.now(UTC), self._zone)
        async with asyncio.timeout(self._timeout):
            claimed = await self._redis.set(
                f"{TICK_PREFIX}{job.name}:{tick}", self._instance, nx=True, ex=_claim_ttl(job)
            )
        if not claimed:
            TICKS_ALREADY_CLAIMED.labels(job.name).inc()
            raise ScheduledTaskCancelledError
        task.task_id = f"{job.name}@{tick}"


def _claim_ttl(job: Job) -> int:
    """Long enough to outlive the tick (a restarted replica must still see the claim)."""
    if isinstance(job.cadence, Every):
        return max(job.cadence.seconds * 2, 10)
    return int(timedelta(days=2).total_seconds())


class JobScheduler(TaskiqScheduler):
    """taskiq's scheduler with bounded, counted sends, a heartbeat, metrics, and a clean exit on SIGTERM."""

    def __init__(
        self,
        broker: AsyncBroker,
        source: CatalogueSource,
        redis: Redis,
        *,
        send_timeout: float,
        heartbeat_interval: float,
        redis_timeout: float,
        metrics_port: int,
    ) -> None:
        super().__init__(broker, [source])
        self._redis = redis
        self._send_timeout = send_timeout
        self._heartbeat = Heartbeat(redis, "scheduler", heartbeat_interval, redis_timeout)
        self._redis_timeout = redis_timeout
        self._metrics_port = metrics_port
        self._jobs = source.jobs
        self._loop_monitor = LoopMonitor()

    async def startup(self) -> None:
        await self._loop_monitor.start()
        await super().startup()
        for job in self._jobs:  # every job's series exist from the start (at 0), so rates and alerts see them
            ENQUEUED.labels(job.name)
            ENQUEUE_FAILURES.labels(job.name)
            TICKS_ALREADY_CLAIMED.labels(job.name)
        serve_metrics(self._metrics_port)
        self._heartbeat.start()
        main = asyncio.current_task()
        if main is not None:
            # `taskiq scheduler` handles only Ctrl-C; SIGTERM would kill it mid-send without cleanup.
            # Cancelling the main task is what Ctrl-C does: taskiq then runs the shutdown below.
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
        logger.info("job scheduler started", extra={"send_timeout_s": self._send_timeout})

    async def shutdown(self) -> None:
        logger.info("job scheduler stopping")
        await self._loop_monitor.stop()
        await self._heartbeat.stop()
        try:
            async with asyncio.timeout(self._redis_timeout * 2):
                await super().shutdown()
        except TimeoutError:
            logger.warning("broker shutdown timed out")
        async with asyncio.timeout(self._redis_timeout * 2):
            await self._redis.aclose()
        logger.info("job scheduler stopped")

    async def on_ready(self, source: ScheduleSource, task: ScheduledTask) -> None:
        try:
            async with asyncio.timeout(self._send_timeout):
                try:
                    await maybe_awaitable(source.pre_send(task))
                except ScheduledTaskCancelledError:
                    return
                await (
                    AsyncKicker(task.task_name, self.broker, task.labels)
                    .with_labels(schedule_id=task.schedule_id)
                    .with_task_id(task_id=task.task_id)
                    .kiq(*task.args, **task.kwargs)
                )
        except Exception as error:  # noqa: BLE001 - a failed send is counted and logged; the next tick retries
            ENQUEUE_FAILURES.labels(task.task_name).inc()
            logger.error(  # noqa: TRY400 - the error's type and text say enough
                "job not enqueued",
                extra={"job": task.task_name, "error": repr(error), "send_timeout_s": self._send_timeout},
            )
        else:
            ENQUEUED.labels(task.task_name).inc()
            logger.info("job enqueued", extra={"job": task.task_name, "run_id": task.task_id})
