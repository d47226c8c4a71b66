"""Distributed mode end to end: taskiq schedulers and workers as processes, on PostgreSQL and a private Redis."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import FORBIDDEN_LOG_FRAGMENTS, PrivateRedis, forbidden_lines
from tests.e2e.jobs_support import (
    JobProcess,
    counter,
    job_env,
    point_lot_state,
    seed_due_point_lots,
    start_scheduler,
    start_worker,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

JOBS = (
    "support-assignment",
    "cancel-expired-tasks",
    "expire-coupons",
    "expire-invitations",
    "expire-points",
    "end-activities",
    "update-user-stats",
    "cleanup-support-chats",
    "refresh-expert-bios",
)


async def test_two_schedulers_and_two_workers_run_each_tick_once(
    database_url: str, private_redis: PrivateRedis, processes: list[JobProcess], tmp_path: Path
) -> None:
    every = 3
    await seed_due_point_lots(database_url, users=100, lots_per_user=5)
    env = job_env(database_url, private_redis.url, JOBS_EVERY_SECONDS_OVERRIDE=str(every), JOBS_BATCH_SIZE="50")
    workers = [start_worker(env, tmp_path / f"worker-{n}.log") for n in range(2)]
    processes.extend(workers)
    for worker in workers:
        await worker.wait_log("job worker started")
    schedulers = [start_scheduler(env, tmp_path / f"scheduler-{n}.log") for n in range(2)]
    processes.extend(schedulers)
    for scheduler in schedulers:
        await scheduler.wait_log("job scheduler started")
    began = time.monotonic()
    await asyncio.sleep(60)
    elapsed = time.monotonic() - began
    await asyncio.sleep(2)  # let the last enqueued runs finish

    enqueued = dict.fromkeys(JOBS, 0.0)
    claimed_elsewhere = 0.0
    for scheduler in schedulers:
        text = await scheduler.metrics()
        for job in JOBS:
            enqueued[job] += counter(text, "taskmarket_job_enqueued_total", job=job)
            assert counter(text, "taskmarket_job_enqueue_failures_total", job=job) == 0
        claimed_elsewhere += counter(text, "taskmarket_job_ticks_claimed_elsewhere_total")
    runs = dict.fromkeys(JOBS, 0.0)
    for worker in workers:
        text = await worker.metrics()
        for job in JOBS:
            runs[job] += counter(text, "taskmarket_job_runs_total", job=job)
    ticks = elapsed / every
    for job in JOBS:
        # one enqueue per tick although two schedulers tick (each claims the tick first) ...
        assert ticks - 2 <= enqueued[job] <= ticks + 3, (job, enqueued[job], ticks)
        # ... and one run per enqueued tick (the last one may still be on its way)
        assert enqueued[job] - 1 <= runs[job] <= enqueued[job], (job, runs[job], enqueued[job])
    assert claimed_elsewhere >= len(JOBS) * (ticks - 3), "the second scheduler never lost a claim: did it tick?"
    # both workers took work
    for worker in workers:
        assert "job run finished" in worker.log()
    # and the due rows were worked off, each exactly once
    assert await point_lot_state(database_url) == (0, 500, 5000)
    for process in processes:
        assert forbidden_lines(process.log(), FORBIDDEN_LOG_FRAGMENTS) == [], process.log()[-3000:]


async def test_a_worker_killed_mid_batch_leaves_no_half_work_and_nothing_twice(
    database_url: str, private_redis: PrivateRedis, processes: list[JobProcess], tmp_path: Path
) -> None:
    lots = 6000
    await seed_due_point_lots(database_url, users=600, lots_per_user=10)
    env = job_env(
        database_url,
        private_redis.url,
        JOBS_EVERY_SECONDS_OVERRIDE="2",
        JOBS_TIMEOUT_SECONDS_OVERRIDE="8",
        JOBS_BATCH_SIZE="10",
    )
    victim = start_worker(env, tmp_path / "victim.log")
    scheduler = start_scheduler(env, tmp_path / "scheduler.log")
    processes.extend([victim, scheduler])
    await victim.wait_log("job run started job=expire-points")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _live, expired, _points = await point_lot_state(database_url)
        if expired >= 20:
            break
        await asyncio.sleep(0.05)
    victim.kill_group()
    live, expired_at_kill, _points = await point_lot_state(database_url)
    assert 0 < expired_at_kill < lots, "the kill did not land in the middle of the job"

    survivor = start_worker(env, tmp_path / "survivor.log")
    processes.append(survivor)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        live, _expired, _points = await point_lot_state(database_url)
        if live == 0:
            break
        await asyncio.sleep(0.5)
    # every lot expired exactly once: the expired points are exactly what was seeded
    assert await point_lot_state(database_url) == (0, lots, lots * 10)
    assert "job run skipped" in survivor.log() or "job run started job=expire-points" in survivor.log()
