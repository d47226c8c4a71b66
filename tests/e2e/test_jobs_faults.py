"""Real faults under the taskiq scheduler and worker processes: Redis going away and coming back, a job whose
SQL fails and a job stuck on a lock. Each is counted and logged, and nothing needs a restart afterwards."""

from __future__ import annotations

import re
import time
from pathlib import Path

import asyncpg
import pytest

from app.domain.jobs.catalogue import CATALOGUE
from tests.e2e.helpers import F3_FRAGMENTS, PrivateRedis, forbidden_lines
from tests.e2e.jobs_support import (
    JobProcess,
    counter,
    eventually,
    job_env,
    scrape,
    start_scheduler,
    start_worker,
)
from tests.support import asyncpg_url

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

JOBS = tuple(job.name for job in CATALOGUE)
RUNS = "taskmarket_job_runs_total"
LAST_SUCCESS = "taskmarket_job_last_success_timestamp_seconds"
ENQUEUED = "taskmarket_job_enqueued_total"
ENQUEUE_FAILURES = "taskmarket_job_enqueue_failures_total"
TIMEOUT_SECONDS = 5  # every job's time limit in the fault test: the one stuck on a lock runs into it


async def _start_pair(
    env: dict[str, str], tmp_path: Path, processes: list[JobProcess]
) -> tuple[JobProcess, JobProcess]:
    worker = start_worker(env, tmp_path / "worker.log")
    scheduler = start_scheduler(env, tmp_path / "scheduler.log")
    processes.extend([worker, scheduler])
    await worker.wait_log("job worker started")
    await scheduler.wait_log("job scheduler started")
    return worker, scheduler


def _successes(text: str) -> dict[str, float]:
    return {job: counter(text, RUNS, job=job, outcome="success") for job in JOBS}


async def _every_job_succeeded(worker: JobProcess, processes: list[JobProcess]) -> None:
    async def missing() -> list[str]:
        runs = _successes(await scrape([worker]))
        return [f"{job} has not succeeded yet" for job, count in runs.items() if count == 0]

    await eventually(missing, 60, alive=processes)


async def test_sends_fail_while_redis_is_down_and_everything_resumes_when_it_is_back(
    database_url: str, private_redis: PrivateRedis, processes: list[JobProcess], tmp_path: Path
) -> None:
    env = job_env(database_url, private_redis.url, JOBS_EVERY_SECONDS_OVERRIDE="1", JOBS_SEND_TIMEOUT_SECONDS="2")
    worker, scheduler = await _start_pair(env, tmp_path, processes)
    await _every_job_succeeded(worker, processes)
    assert counter(await scheduler.metrics(), ENQUEUE_FAILURES) == 0

    private_redis.stop()

    # every job's ticks fail to be sent, tick after tick: counted per job on the scheduler's own metrics port
    async def not_failing_yet() -> list[str]:
        text = await scheduler.metrics()
        return [
            f"{job}: {failed:.0f} failed sends counted"
            for job in JOBS
            if (failed := counter(text, ENQUEUE_FAILURES, job=job)) < 2
        ]

    await eventually(not_failing_yet, 30, alive=[scheduler])
    log = scheduler.log()
    for job in JOBS:
        assert re.search(rf"ERROR .*job not enqueued job={job} error=\S+", log), (job, log[-3000:])

    before = await scheduler.metrics()
    private_redis.start()  # an empty Redis on the same port: no stream, no consumer group, no claims
    restarted_at = time.time()

    # nobody is restarted: the scheduler sends again and the worker runs every job again by itself
    async def not_resumed() -> list[str]:
        sent = await scheduler.metrics()
        problems = [
            f"{job}: nothing enqueued since Redis is back"
            for job in JOBS
            if counter(sent, ENQUEUED, job=job) <= counter(before, ENQUEUED, job=job)
        ]
        ran = await scrape([worker])
        problems += [
            f"{job}: no successful run since Redis is back"
            for job in JOBS
            if counter(ran, LAST_SUCCESS, job=job) <= restarted_at
        ]
        return problems

    await eventually(not_resumed, 90, alive=[worker, scheduler])
    # the failures stopped growing once Redis was back (a send in flight at the restart may still have failed)
    failures = counter(await scheduler.metrics(), ENQUEUE_FAILURES)
    assert failures <= counter(before, ENQUEUE_FAILURES) + len(JOBS), failures
    assert worker.process.poll() is None
    assert scheduler.process.poll() is None
    # taskiq's main process replaces a worker process that died with Redis; the new one logs each line once,
    # through our handler only (not also through the plain one the main process's root logger has by then)
    assert re.findall(r"^[A-Z]+:app\..*$", worker.log(), re.MULTILINE) == []
    for process in processes:
        assert forbidden_lines(process.log(), F3_FRAGMENTS) == [], process.log()[-3000:]


async def test_a_failing_job_and_a_job_past_its_time_limit_are_counted_and_logged_while_the_others_run(
    database_url: str, private_redis: PrivateRedis, processes: list[JobProcess], tmp_path: Path
) -> None:
    failing, hanging = "expire-invitations", "refresh-expert-bios"
    others = [job for job in JOBS if job not in (failing, hanging)]
    env = job_env(
        database_url,
        private_redis.url,
        JOBS_EVERY_SECONDS_OVERRIDE="2",
        JOBS_TIMEOUT_SECONDS_OVERRIDE=str(TIMEOUT_SECONDS),
    )
    worker, _scheduler = await _start_pair(env, tmp_path, processes)
    await _every_job_succeeded(worker, processes)

    admin = await asyncpg.connect(asyncpg_url(database_url), timeout=5)
    locker = await asyncpg.connect(asyncpg_url(database_url), timeout=5)
    try:
        # the expiry of invitation codes fails on a column that is gone; the expert bios wait on a table lock
        await admin.execute("ALTER TABLE invitation_codes RENAME COLUMN closed_at TO closed_at_gone")
        lock = locker.transaction()
        await lock.start()
        await locker.execute("LOCK TABLE experts IN ACCESS EXCLUSIVE MODE")
        before = _successes(await scrape([worker]))

        async def not_yet() -> list[str]:
            text = await scrape([worker])
            problems = [
                f"{job}: no successful run during the faults"
                for job in others
                if counter(text, RUNS, job=job, outcome="success") <= before[job]
            ]
            if counter(text, RUNS, job=failing, outcome="error") == 0:
                problems.append(f"{failing}: no run counted as an error")
            if counter(text, RUNS, job=hanging, outcome="timeout") == 0:
                problems.append(f"{hanging}: no run counted as a timeout")
            return problems

        await eventually(not_yet, 45, alive=processes)
        log = worker.log()
        failed = re.search(rf"ERROR .*job run failed job={failing} run_id={failing}@\d+ ", log)
        assert failed, log[-5000:]
        # with the database's own error in its traceback
        missing = 'UndefinedColumnError: column "closed_at" of relation "invitation_codes" does not exist'
        assert missing in log[failed.end() :], log[failed.start() : failed.start() + 5000]
        timed_out = rf"ERROR .*job run timed out job={hanging} run_id={hanging}@\d+ timeout_s={TIMEOUT_SECONDS}\b"
        assert re.search(timed_out, log), log[-5000:]

        # the faults go away: both jobs succeed again at their next ticks, nothing restarted
        await lock.rollback()
        await admin.execute("ALTER TABLE invitation_codes RENAME COLUMN closed_at_gone TO closed_at")
        repaired = _successes(await scrape([worker]))
    finally:
        await locker.close()
        await admin.close()

    async def not_recovered() -> list[str]:
        runs = _successes(await scrape([worker]))
        return [
            f"{job}: no successful run since the repair" for job in (failing, hanging) if runs[job] <= repaired[job]
        ]

    await eventually(not_recovered, 30, alive=processes)
    text = await scrape([worker])
    for job in others:  # the faults stayed with their jobs
        assert counter(text, RUNS, job=job, outcome="error") == 0, job
        assert counter(text, RUNS, job=job, outcome="timeout") == 0, job
    for process in processes:
        assert forbidden_lines(process.log(), F3_FRAGMENTS) == [], process.log()[-3000:]
