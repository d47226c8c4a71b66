"""A taskiq worker and scheduler on SIGTERM exit by themselves, within their configured bounds, cleanly.

This is the proof of the pinned taskiq / taskiq-redis / redis-py versions: with
taskiq 0.13 and redis-py 8 on Python 3.11 a ``RedisStreamBroker`` worker never exits.
"""

from __future__ import annotations

import signal
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.e2e.helpers import FORBIDDEN_LOG_FRAGMENTS, PrivateRedis, forbidden_lines
from tests.e2e.jobs_support import (
    SHUTDOWN_SECONDS,
    WAIT_TASKS_SECONDS,
    JobProcess,
    job_env,
    start_scheduler,
    start_worker,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]


def test_the_pinned_versions_are_installed() -> None:
    assert (version("taskiq"), version("taskiq-redis")) == ("0.12.4", "1.2.3")
    assert version("redis").startswith("8.")


async def test_worker_and_scheduler_exit_on_sigterm_within_their_bounds(
    e2e_database_url: str, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    env = job_env(e2e_database_url, private_redis.url, JOBS_EVERY_SECONDS_OVERRIDE="1")
    processes: list[JobProcess] = []
    try:
        scheduler = start_scheduler(env, tmp_path / "scheduler.log")
        worker = start_worker(env, tmp_path / "worker.log")
        processes += [scheduler, worker]
        await scheduler.wait_log("job enqueued")
        # the worker is busy (jobs run every second) and idle in turns: either way it must exit
        await worker.wait_log("job run finished", count=5)

        worker.send_signal(signal.SIGTERM)
        scheduler.send_signal(signal.SIGTERM)
        assert await scheduler.wait_exit(5) is not None, "the scheduler still runs 5 s after SIGTERM"
        assert await worker.wait_exit(WAIT_TASKS_SECONDS + SHUTDOWN_SECONDS) is not None, (
            f"the worker still runs after SIGTERM ({sys.version.split()[0]}):\n{worker.log()[-3000:]}"
        )
        assert "job worker stopped" in worker.log()
        assert "dispose database pool" in worker.log()
        assert "job scheduler stopped" in scheduler.log()
        for process in processes:
            assert forbidden_lines(process.log(), FORBIDDEN_LOG_FRAGMENTS) == [], process.log()[-3000:]
    finally:
        for process in processes:
            process.stop()
