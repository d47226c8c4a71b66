"""The whole job catalogue end to end: a taskiq scheduler and two workers on PostgreSQL and a private Redis,
every job's effect read back from the database, and nothing done twice over several ticks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.domain.jobs.catalogue import CATALOGUE
from tests.e2e.helpers import FORBIDDEN_LOG_FRAGMENTS, PrivateRedis, forbidden_lines
from tests.e2e.jobs_support import (
    JobProcess,
    counter,
    eventually,
    job_env,
    scrape,
    start_scheduler,
    start_worker,
)
from tests.e2e.jobs_world import seed_world, stats_computed_after, unmet, unmet_stats

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

JOBS = tuple(job.name for job in CATALOGUE)
RUNS = "taskmarket_job_runs_total"
EVERY_SECONDS = 2
RUNS_PER_JOB = 3  # each job runs at least this often: every run after its first finds nothing left to do


async def test_every_job_of_the_catalogue_does_its_work_once(
    database_url: str, private_redis: PrivateRedis, processes: list[JobProcess], tmp_path: Path
) -> None:
    world = await seed_world(database_url)
    # batches of two rows: the draining jobs work their backlog off over several transactions
    env = job_env(database_url, private_redis.url, JOBS_EVERY_SECONDS_OVERRIDE=str(EVERY_SECONDS), JOBS_BATCH_SIZE="2")
    workers = [start_worker(env, tmp_path / f"worker-{n}.log") for n in range(2)]
    scheduler = start_scheduler(env, tmp_path / "scheduler.log")
    processes.extend([*workers, scheduler])
    for worker in workers:
        await worker.wait_log("job worker started")
    await scheduler.wait_log("job scheduler started")

    # every job's effect shows in the database (and the not-yet-due rows are left alone)
    await eventually(lambda: unmet(database_url, world), 90, alive=processes)
    effects_seen = datetime.now(UTC)

    # the statistics job recomputes from what the other jobs left: wait for a run that started after them
    async def stale() -> list[str]:
        fresh = await stats_computed_after(database_url, effects_seen)
        return [] if fresh else [f"user_stats not all recomputed since {effects_seen}"]

    await eventually(stale, 30, alive=processes)
    assert await unmet_stats(database_url, world) == []

    # several more ticks of every job: nothing is done a second time (credits, releases, expire entries)
    async def too_few_runs() -> list[str]:
        text = await scrape(workers)
        runs = {job: counter(text, RUNS, job=job, outcome="success") for job in JOBS}
        return [f"{job}: {count:.0f} successful runs" for job, count in runs.items() if count < RUNS_PER_JOB]

    await eventually(too_few_runs, 60, alive=processes)
    assert await unmet(database_url, world) == []

    text = await scrape(workers)
    for job in JOBS:
        assert counter(text, RUNS, job=job, outcome="success") > 0, job
        assert counter(text, RUNS, job=job, outcome="error") == 0, (job, [w.log()[-3000:] for w in workers])
        assert counter(text, RUNS, job=job, outcome="timeout") == 0, job
    scheduled = await scheduler.metrics()
    assert counter(scheduled, "taskmarket_job_enqueue_failures_total") == 0
    assert counter(scheduled, "taskmarket_job_enqueued_total") >= len(JOBS) * RUNS_PER_JOB
    for worker in workers:  # both workers took work
        assert "job run finished" in worker.log()
    for process in processes:
        assert forbidden_lines(process.log(), FORBIDDEN_LOG_FRAGMENTS) == [], process.log()[-3000:]
