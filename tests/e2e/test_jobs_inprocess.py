"""Without REDIS_URL the API runs the jobs itself; SIGTERM lets a running job end before the pool is disposed."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import pytest

from tests.e2e.helpers import ServiceFactory, unexpected_tracebacks
from tests.e2e.jobs_support import counter, point_lot_state, seed_due_point_lots

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


async def test_the_api_runs_jobs_in_process_and_lets_a_running_job_end_before_disposing_the_engine(
    e2e_database_url: str, service_factory: ServiceFactory
) -> None:
    await seed_due_point_lots(e2e_database_url, users=600, lots_per_user=10)
    service = service_factory(
        e2e_database_url,
        extra_env={
            "JOBS_IN_PROCESS": "true",
            "JOBS_EVERY_SECONDS_OVERRIDE": "2",
            "JOBS_BATCH_SIZE": "10",
            "JOBS_SHUTDOWN_TIMEOUT_SECONDS": "3",
            "SHUTDOWN_STEP_TIMEOUT_SECONDS": "6",
        },
    )
    await service.wait_ready(60)
    assert "jobs run in-process: REDIS_URL is not set" in service.log()
    assert "this process runs the jobs" in service.log()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "job run started job=expire-points" not in service.log():
        await asyncio.sleep(0.1)
    async with httpx.AsyncClient(base_url=service.base_url, timeout=5) as client:
        metrics = (await client.get("/metrics")).text
    assert counter(metrics, "taskmarket_job_in_progress", job="expire-points") == 1

    service.send_signal(signal.SIGTERM)
    assert await service.wait_exit(30) is not None
    log = service.log()
    # the run ended (finished, or cancelled at the bound) before the pool was disposed
    ended = max(log.find("job run finished job=expire-points"), log.find("job run cancelled"))
    assert 0 < ended < log.index("step=dispose database pool"), log[-4000:]
    assert log.index("step=stop in-process job scheduler") < log.index("step=dispose database pool")
    assert "Event loop is closed" not in log
    assert unexpected_tracebacks(log) == []
    _live, expired, points = await point_lot_state(e2e_database_url)
    assert points == expired * 10  # whatever was done was done once per lot
