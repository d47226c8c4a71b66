"""Composition of the periodic jobs: the one place that builds their services, for every way they run.

A composition root like ``app.main``: it knows the domain and the adapters.
Three runners share it:

* taskiq workers: ``taskiq worker app.composition:worker_broker``; each worker
  process builds its engine, Redis client and services at ``WORKER_STARTUP`` from
  the same settings factory as the API (``load_settings``);
* the taskiq scheduler: ``taskiq scheduler app.composition:job_scheduler``;
* the API process without Redis (``in_process_jobs``) and ``litestar jobs run``
  (``run_job_once``).

Services are built the way ``app.main``'s providers build them, bound to one
fresh session per unit of work (``ServiceScope``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from taskiq import AsyncBroker, TaskiqEvents

from app.config import Settings, load_settings
from app.domain.activities.service import ActivityService
from app.domain.coupons.service import CouponService
from app.domain.experts.service import ExpertService
from app.domain.invitations.model import InvitationPolicy
from app.domain.invitations.service import InvitationService
from app.domain.jobs.catalogue import CATALOGUE, job_named, with_overrides
from app.domain.jobs.model import Job, JobOutcome
from app.domain.jobs.ports import JobServices, ServiceScope
from app.domain.points.service import PointsPolicy, PointsService
from app.domain.shared.clock import SystemClock
from app.domain.shared.events import DiscardEvents, EventPublisher
from app.domain.shared.ports import Clock
from app.domain.stats.service import StatsService
from app.domain.support.model import SupportPolicy
from app.domain.support.service import SupportService
from app.domain.tasks.service import TaskService
from app.infra.db.activities import SqlActivityRepository
from app.infra.db.config import database_config
from app.infra.db.coupons import SqlCouponRepository
from app.infra.db.experts import SqlExpertRepository
from app.infra.db.invitations import SqlInvitationRepository
from app.infra.db.notifications import SqlNotifications
from app.infra.db.points import SqlPointsLedger
from app.infra.db.stats import SqlStatsRepository
from app.infra.db.support import SqlAgentRepository, SqlChatRepository
from app.infra.db.tasks import SqlTaskRepository
from app.infra.db.unit_of_work import SessionUnitOfWork
from app.infra.jobs.heartbeats import Heartbeat, read_heartbeats
from app.infra.jobs.inprocess import InProcessScheduler
from app.infra.jobs.leadership import FileLock, Leadership, PostgresAdvisoryLock, SoleProcess
from app.infra.jobs.locks import LocalRunGuard, RedisRunGuard, RunGuard
from app.infra.jobs.runner import JobRunner
from app.infra.jobs.taskiq_app import CatalogueSource, JobScheduler, build_broker, register_jobs
from app.infra.jobs.worker import BackgroundTasks, JobWorker, WorkerResources
from app.infra.lifecycle import Runtime, ShutdownPhase
from app.infra.observability.logging import configure_logging
from app.infra.realtime.after_commit import AfterCommitEvents, Spawn
from app.infra.realtime.connections import ConnectionManager
from app.infra.realtime.fanout import RedisFanout

logger = logging.getLogger("app.jobs")

# name -> probe returning None (fine) or what is degraded; the API's readiness endpoint reports them
HeartbeatChecks = dict[str, Callable[[], Awaitable[str | None]]]


# --- the catalogue and its services -------------------------------------------------------------


def job_catalogue(settings: Settings) -> tuple[Job, ...]:
    """The catalogue with the test overrides of the settings applied (none in production)."""
    return with_overrides(
        CATALOGUE,
        every_seconds=settings.jobs_every_seconds_override or None,
        timeout_seconds=settings.jobs_timeout_seconds_override or None,
    )


@dataclass(frozen=True, slots=True)
class _Services:
    points: PointsService
    coupons: CouponService
    invitations: InvitationService
    tasks: TaskService
    activities: ActivityService
    stats: StatsService
    support: SupportService
    experts: ExpertService


def _support_policy(settings: Settings) -> SupportPolicy:
    return SupportPolicy(
        max_chats_per_agent=settings.support_max_chats_per_agent,
        answer_timeout=timedelta(seconds=settings.support_answer_timeout_seconds),
        idle_timeout=timedelta(seconds=settings.support_idle_timeout_seconds),
        inactive_after=timedelta(days=settings.support_inactive_days),
        retention=timedelta(days=settings.support_retention_days),
    )


def job_scope(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    live: AfterCommitEvents | None,
    events: EventPublisher,
) -> ServiceScope:
    """Services bound to one fresh session per scope; notifications go live through ``live`` after commit."""
    points_policy = PointsPolicy(lot_lifetime=timedelta(days=settings.points_lifetime_days))
    invitation_policy = InvitationPolicy(
        max_active_per_user=settings.invitation_max_active_per_user,
        reward_inviter=settings.invitation_reward_inviter,
        reward_invitee=settings.invitation_reward_invitee,
        default_lifetime_days=settings.invitation_lifetime_days,
    )
    support_policy = _support_policy(settings)

    def services(session: AsyncSession) -> JobServices:
        uow = SessionUnitOfWork(session)
        points = PointsService(SqlPointsLedger(session), uow, clock, points_policy)
        coupons = CouponService(SqlCouponRepository(session), points, uow, clock)
        notifier = SqlNotifications(session, clock, live)
        return _Services(
            points=points,
            coupons=coupons,
            invitations=InvitationService(SqlInvitationRepository(session), points, uow, clock, invitation_policy),
            tasks=TaskService(SqlTaskRepository(session), points, coupons, notifier, uow, clock),
            activities=ActivityService(SqlActivityRepository(session), points, notifier, uow, clock),
            stats=StatsService(SqlStatsRepository(session), uow, clock),
            support=SupportService(
                SqlChatRepository(session), SqlAgentRepository(session), uow, clock, events, support_policy
            ),
            experts=ExpertService(SqlExpertRepository(session), uow, clock),
        )

    @asynccontextmanager
    async def scope() -> AsyncIterator[JobServices]:
        async with sessions() as session:
            yield services(session)

    return scope


def _redis(settings: Settings) -> Redis:
    assert settings.redis_url is not None
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
        health_check_interval=30,
    )


def _publish_only_fanout(settings: Settings, redis: Redis) -> RedisFanout:
    """Publishes user events to the API processes over Redis (this process has no sockets of its own)."""
    assert settings.redis_url is not None
    manager = ConnectionManager(
        max_per_user=settings.ws_max_connections_per_user,
        queue_size=settings.ws_send_queue_size,
        send_timeout=settings.ws_send_timeout_seconds,
        ping_interval=settings.ws_ping_interval_seconds,
        idle_timeout=settings.ws_idle_timeout_seconds,
    )
    return RedisFanout(
        manager, settings.redis_url, redis, timeout=settings.redis_timeout_seconds, manager_is_local=False
    )


# --- distributed mode: taskiq worker and scheduler ----------------------------------------------


def _require_redis(settings: Settings, process: str) -> None:
    if settings.redis_url is None:
        raise SystemExit(f"REDIS_URL is not set: the {process} needs Redis (without it the API runs the jobs itself)")


def worker_broker() -> AsyncBroker:
    """``taskiq worker app.composition:worker_broker``: called in each worker process."""
    settings = load_settings()
    # A worker process that taskiq restarts (after a crash) is forked from the main process, whose root
    # logger got a plain-text handler by then (taskiq's process manager logs through ``logging.debug``):
    # inherited, it would write every line a second time, unstructured. Ours is the only handler here.
    logging.getLogger().handlers.clear()
    configure_logging(settings.log_level, settings.json_logs)
    _require_redis(settings, "job worker")
    assert settings.redis_url is not None
    jobs = job_catalogue(settings)

    async def build() -> WorkerResources:
        clock = SystemClock()
        engine = database_config(settings).get_engine()
        redis = _redis(settings)
        fanout = _publish_only_fanout(settings, redis)
        background = BackgroundTasks()
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        scope = job_scope(settings, sessions, clock, AfterCommitEvents(fanout, background.spawn), fanout)
        runner = JobRunner(scope, clock, settings.jobs_batch_size, RedisRunGuard(redis, settings.redis_timeout_seconds))
        heartbeat = Heartbeat(redis, "worker", settings.jobs_heartbeat_interval_seconds, settings.redis_timeout_seconds)
        return WorkerResources(engine, redis, runner, heartbeat, background)

    worker = JobWorker(
        build, stop_timeout=settings.shutdown_step_timeout_seconds, metrics_port=settings.jobs_metrics_port
    )
    broker = build_broker(settings.redis_url, jobs)
    register_jobs(broker, jobs, worker.run)
    broker.add_event_handler(TaskiqEvents.WORKER_STARTUP, worker.start)
    broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, worker.stop)
    return broker


def job_scheduler() -> JobScheduler:
    """``taskiq scheduler app.composition:job_scheduler``: enqueues each job's ticks (once across replicas)."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.json_logs)
    _require_redis(settings, "job scheduler")
    assert settings.redis_url is not None
    jobs = job_catalogue(settings)
    redis = _redis(settings)
    return JobScheduler(
        build_broker(settings.redis_url, jobs),
        CatalogueSource(jobs, settings.jobs_timezone, redis, settings.redis_timeout_seconds),
        redis,
        send_timeout=settings.jobs_send_timeout_seconds,
        heartbeat_interval=settings.jobs_heartbeat_interval_seconds,
        redis_timeout=settings.redis_timeout_seconds,
        metrics_port=settings.jobs_metrics_port,
    )


def heartbeat_checks(settings: Settings, redis: Redis) -> HeartbeatChecks:
    """Readiness probes of the scheduler's and the workers' heartbeats (stale or missing: degraded)."""
    interval = settings.jobs_heartbeat_interval_seconds

    def check(role: str) -> Callable[[], Awaitable[str | None]]:
        async def probe() -> str | None:
            async with asyncio.timeout(settings.health_check_timeout_seconds):
                report = await read_heartbeats(redis, role, interval)
            return report.problem(role)

        return probe

    return {"job_scheduler": check("scheduler"), "job_workers": check("worker")}


# --- in-process mode: the API runs the jobs -----------------------------------------------------


def _leadership(settings: Settings, engine: AsyncEngine) -> Leadership:
    if not settings.is_sqlite:
        return PostgresAdvisoryLock(engine)
    database = make_url(settings.database_url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return SoleProcess()
    return FileLock(Path(f"{database}.jobs.lock"))


def in_process_jobs(
    settings: Settings, runtime: Runtime, engine: AsyncEngine, live: AfterCommitEvents, events: EventPublisher
) -> None:
    """Run the catalogue on the API's own loop: started after startup, stopped first at shutdown (bounded)."""
    clock = SystemClock()
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    runner = JobRunner(
        job_scope(settings, sessions, clock, live, events), clock, settings.jobs_batch_size, LocalRunGuard()
    )
    scheduler = InProcessScheduler(
        job_catalogue(settings),
        runner,
        clock,
        ZoneInfo(settings.jobs_timezone),
        _leadership(settings, engine),
        retry_seconds=settings.jobs_leader_retry_seconds,
    )

    async def start() -> None:
        logger.info("jobs run in-process: REDIS_URL is not set (one API process, elected, runs them)")
        scheduler.start(runtime.spawn)

    async def stop() -> None:
        await scheduler.stop(settings.jobs_shutdown_timeout_seconds)

    runtime.on_startup("start in-process job scheduler", start)
    runtime.on_shutdown(ShutdownPhase.STOP_SCHEDULER, "stop in-process job scheduler", stop)


def api_jobs(
    settings: Settings,
    runtime: Runtime,
    engine: AsyncEngine,
    redis: Redis | None,
    live: AfterCommitEvents,
    events: EventPublisher,
) -> HeartbeatChecks:
    """The API's part in the jobs: with Redis, report the taskiq processes' heartbeats; without, run the jobs."""
    if redis is None:
        if settings.jobs_in_process:
            in_process_jobs(settings, runtime, engine, live, events)
        else:

            async def announce_off() -> None:
                logger.warning("periodic jobs are off: no REDIS_URL and JOBS_IN_PROCESS=false")

            runtime.on_startup("report job mode", announce_off)
        return {}

    async def announce() -> None:
        logger.info("jobs run in taskiq workers: REDIS_URL is set (this process only reports their heartbeats)")

    runtime.on_startup("report job mode", announce)
    return heartbeat_checks(settings, redis)


# --- one run by hand (``litestar jobs run``) ---------------------------------------------------


async def run_job_once(settings: Settings, name: str) -> JobOutcome:
    """Run one job now in this process against the configured database; the same guard as the workers'."""
    job = job_named(name, job_catalogue(settings))
    clock = SystemClock()
    engine = database_config(settings).get_engine()
    redis = _redis(settings) if settings.redis_url is not None else None
    background = BackgroundTasks()
    try:
        events: EventPublisher = DiscardEvents() if redis is None else _publish_only_fanout(settings, redis)
        spawn: Spawn = background.spawn
        scope = job_scope(
            settings,
            async_sessionmaker(engine, expire_on_commit=False),
            clock,
            AfterCommitEvents(events, spawn),
            events,
        )
        guard: RunGuard = LocalRunGuard() if redis is None else RedisRunGuard(redis, settings.redis_timeout_seconds)
        runner = JobRunner(scope, clock, settings.jobs_batch_size, guard)
        return await runner.run(job, f"{job.name}@manual-{clock.now().isoformat(timespec='seconds')}")
    finally:
        await background.close(settings.shutdown_step_timeout_seconds)
        await engine.dispose()
        if redis is not None:
            await redis.aclose()
