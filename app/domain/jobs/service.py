"""Running one job once: its use case, batch after batch, each batch in a fresh unit of work."""

from __future__ import annotations

from datetime import datetime

from app.domain.jobs.model import Job
from app.domain.jobs.ports import ServiceScope


async def run_job(job: Job, scope: ServiceScope, now: datetime, batch_size: int) -> int:
    """Run ``job`` as of ``now`` until its work is done; return the rows changed (summed over batches).

    A draining job's use case is called again while a batch comes back full, so a
    backlog of any size is worked off in bounded transactions within one run.
    ``now`` stays the run's start: rows that become due meanwhile are the next tick's.
    """
    total = 0
    while True:
        async with scope() as services:
            changed = await job.step(services, now, batch_size)
        total += changed
        if not job.drains or changed < batch_size:
            return total
