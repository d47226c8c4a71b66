"""The nine periodic jobs of SPEC section 3, and the one use-case call each makes.

The bodies hold no business rule: each is one call (the customer-service job,
three in order), and each use case is idempotent and safe when runs overlap.
A batch use case commits one batch and says how many rows it changed; the
runner calls it again, in a fresh unit of work, while a batch comes back full,
so no lock is held long and memory stays bounded.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from app.domain.jobs.model import DailyAt, Every, Job
from app.domain.jobs.ports import JobServices

# Above this a run is logged as a warning (SPEC section 3 and the job-duration alert).
SLOW_RUN_SECONDS = 30.0


async def _expire_points(services: JobServices, now: datetime, batch_size: int) -> int:
    return await services.points.expire_due(now, batch_size)


async def _expire_coupons(services: JobServices, now: datetime, batch_size: int) -> int:
    return await services.coupons.expire_due(now, batch_size)


async def _expire_invitations(services: JobServices, now: datetime, batch_size: int) -> int:
    return await services.invitations.expire_due(now, batch_size)


async def _cancel_expired_tasks(services: JobServices, now: datetime, batch_size: int) -> int:
    return await services.tasks.cancel_expired(now, batch_size)


async def _end_activities(services: JobServices, now: datetime, batch_size: int) -> int:
    return await services.activities.end_due(now, batch_size)


async def _update_user_stats(services: JobServices, now: datetime, batch_size: int) -> int:
    return await services.stats.recompute_all()  # one set-based statement, no batches


async def _support_assignment(services: JobServices, now: datetime, batch_size: int) -> int:
    assigned = await services.support.assign_waiting(now)
    requeued = await services.support.requeue_unanswered(now)
    closed = await services.support.close_idle(now)
    return assigned + requeued + closed


async def _cleanup_support_chats(services: JobServices, now: datetime, batch_size: int) -> int:
    outcome = await services.support.cleanup_inactive(now, batch_size)
    # drained until *both* parts come back short
    return max(outcome.closed, outcome.deleted)


async def _refresh_expert_bios(services: JobServices, now: datetime, batch_size: int) -> int:
    return await services.experts.refresh_auto_bios(batch_size)  # batches (and commits) by itself


CATALOGUE: tuple[Job, ...] = (
    Job(
        "support-assignment",
        Every(30),
        25,
        "SupportService.assign_waiting, requeue_unanswered, close_idle",
        _support_assignment,
        drains=False,
    ),
    Job("cancel-expired-tasks", Every(60), 50, "TaskService.cancel_expired", _cancel_expired_tasks, drains=True),
    Job("expire-coupons", Every(300), 240, "CouponService.expire_due", _expire_coupons, drains=True),
    Job("expire-invitations", Every(300), 240, "InvitationService.expire_due", _expire_invitations, drains=True),
    Job("expire-points", Every(300), 240, "PointsService.expire_due", _expire_points, drains=True),
    Job("end-activities", Every(300), 240, "ActivityService.end_due", _end_activities, drains=True),
    Job("update-user-stats", Every(600), 540, "StatsService.recompute_all", _update_user_stats, drains=False),
    Job(
        "cleanup-support-chats",
        DailyAt(2),
        1800,
        "SupportService.cleanup_inactive",
        _cleanup_support_chats,
        drains=True,
    ),
    Job("refresh-expert-bios", DailyAt(3), 1800, "ExpertService.refresh_auto_bios", _refresh_expert_bios, drains=False),
)


class UnknownJob(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no job named {name!r}; known: {', '.join(job.name for job in CATALOGUE)}")
        self.name = name


def job_named(name: str, jobs: tuple[Job, ...] = CATALOGUE) -> Job:
    for job in jobs:
        if job.name == name:
            return job
    raise UnknownJob(name)


def with_overrides(
    jobs: tuple[Job, ...], *, every_seconds: int | None = None, timeout_seconds: float | None = None
) -> tuple[Job, ...]:
    """The catalogue with every cadence and/or time limit replaced (tests run each job every few seconds)."""
    return tuple(
        replace(
            job,
            cadence=Every(every_seconds) if every_seconds else job.cadence,
            timeout_seconds=timeout_seconds or job.timeout_seconds,
        )
        for job in jobs
    )
