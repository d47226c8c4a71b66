"""The job catalogue: names, cadences, time limits, and the one use case each job calls (with fakes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.domain.jobs.catalogue import CATALOGUE, UnknownJob, job_named, with_overrides
from app.domain.jobs.model import DailyAt, Every, JobOutcome, next_due, tick_of
from app.domain.jobs.ports import JobServices
from app.domain.jobs.service import run_job
from app.domain.support.model import CleanupOutcome
from app.infra.jobs.locks import LocalRunGuard
from app.infra.jobs.runner import JobRunner

NOW = datetime(2026, 3, 1, 12, 0, 7, tzinfo=UTC)

EXPECTED = {
    "support-assignment": (Every(30), ["support.assign_waiting", "support.requeue_unanswered", "support.close_idle"]),
    "cancel-expired-tasks": (Every(60), ["tasks.cancel_expired"]),
    "expire-coupons": (Every(300), ["coupons.expire_due"]),
    "expire-invitations": (Every(300), ["invitations.expire_due"]),
    "expire-points": (Every(300), ["points.expire_due"]),
    "end-activities": (Every(300), ["activities.end_due"]),
    "update-user-stats": (Every(600), ["stats.recompute_all"]),
    "cleanup-support-chats": (DailyAt(2), ["support.cleanup_inactive"]),
    "refresh-expert-bios": (DailyAt(3), ["experts.refresh_auto_bios"]),
}


class _Recorder:
    """Stands in for one domain service: records each call and answers from a script of results."""

    def __init__(self, area: str, calls: list[str], results: dict[str, list[Any]]) -> None:
        self._area = area
        self._calls = calls
        self._results = results

    def __getattr__(self, method: str) -> Any:
        async def call(*args: Any) -> Any:
            self._calls.append(f"{self._area}.{method}")
            queue = self._results.get(method, [])
            return queue.pop(0) if queue else 0

        return call


@dataclass
class _Fakes:
    calls: list[str] = field(default_factory=list)
    results: dict[str, list[Any]] = field(default_factory=dict)
    scopes: int = 0

    @asynccontextmanager
    async def scope(self) -> AsyncIterator[JobServices]:
        self.scopes += 1
        services: Any = type("Services", (), {})()
        for area in ("points", "coupons", "invitations", "tasks", "activities", "stats", "support", "experts"):
            setattr(services, area, _Recorder(area, self.calls, self.results))
        yield services


def test_the_nine_jobs_have_unique_stable_names() -> None:
    names = [job.name for job in CATALOGUE]
    assert len(names) == len(set(names)) == 9
    assert set(names) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_job_has_its_spec_cadence_and_a_time_limit_below_it(name: str) -> None:
    job = job_named(name)
    assert job.cadence == EXPECTED[name][0]
    period = job.cadence.seconds if isinstance(job.cadence, Every) else 86_400
    assert 0 < job.timeout_seconds < period


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_each_job_calls_exactly_its_use_case(name: str) -> None:
    fakes = _Fakes()
    fakes.results["cleanup_inactive"] = [CleanupOutcome(closed=0, deleted=0)]
    await run_job(job_named(name), fakes.scope, NOW, 100)
    assert fakes.calls == EXPECTED[name][1]


async def test_a_draining_job_runs_batches_in_fresh_scopes_until_one_comes_back_short() -> None:
    fakes = _Fakes(results={"expire_due": [100, 100, 37]})
    changed = await run_job(job_named("expire-points"), fakes.scope, NOW, 100)
    assert changed == 237
    assert fakes.calls == ["points.expire_due"] * 3
    assert fakes.scopes == 3


async def test_the_cleanup_drains_while_either_part_comes_back_full() -> None:
    fakes = _Fakes(
        results={"cleanup_inactive": [CleanupOutcome(closed=3, deleted=10), CleanupOutcome(closed=0, deleted=2)]}
    )
    await run_job(job_named("cleanup-support-chats"), fakes.scope, NOW, 10)
    assert fakes.calls == ["support.cleanup_inactive"] * 2


async def test_a_non_draining_job_runs_once_even_with_a_full_batch() -> None:
    fakes = _Fakes(results={"recompute_all": [5000]})
    await run_job(job_named("update-user-stats"), fakes.scope, NOW, 100)
    assert fakes.calls == ["stats.recompute_all"]


def test_unknown_job_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(UnknownJob, match="expire-coupons"):
        job_named("expire-everything")


def test_overrides_replace_every_cadence_and_time_limit() -> None:
    jobs = with_overrides(CATALOGUE, every_seconds=3, timeout_seconds=2)
    assert {job.cadence for job in jobs} == {Every(3)}
    assert {job.timeout_seconds for job in jobs} == {2}
    assert with_overrides(CATALOGUE) == CATALOGUE


def test_interval_ticks_are_epoch_aligned_and_shared_within_a_tick() -> None:
    zone = ZoneInfo("UTC")
    start = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert tick_of(Every(30), start, zone) == tick_of(Every(30), start + timedelta(seconds=29.9), zone)
    assert tick_of(Every(30), start, zone) != tick_of(Every(30), start + timedelta(seconds=30), zone)
    assert next_due(Every(30), NOW, zone) == datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)


def test_daily_jobs_are_due_at_their_wall_clock_time_in_the_configured_zone() -> None:
    paris = ZoneInfo("Europe/Paris")
    # 12:00 UTC in March is 13:00 in Paris: the next 02:00 Paris is 01:00 UTC the next day
    assert next_due(DailyAt(2), NOW, paris) == datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    # across the spring DST change (29 March 2026) the wall-clock time holds: 02:00 does not exist, 03:00 does
    due = next_due(DailyAt(3), datetime(2026, 3, 28, 12, 0, tzinfo=UTC), paris)
    assert due.astimezone(paris).hour == 3
    assert due == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    # one tick per local day, the same for every moment of it
    ticks = {tick_of(DailyAt(2), datetime(2026, 3, 2, 1, 0, tzinfo=UTC) + timedelta(hours=h), paris) for h in range(24)}
    assert ticks == {"2026-03-02"}


class _Clock:
    def now(self) -> datetime:
        return NOW


async def test_runner_counts_a_failing_job_as_error_and_a_slow_one_as_timeout() -> None:
    fakes = _Fakes()

    async def boom(*_: Any) -> int:
        raise RuntimeError("broken")

    async def slow(*_: Any) -> int:
        await asyncio.sleep(5)
        return 0

    runner = JobRunner(fakes.scope, _Clock(), 100, LocalRunGuard())
    failing = with_overrides((job_named("expire-points"),), timeout_seconds=0.2)[0]
    assert await runner.run(_replace_step(failing, boom), "r1") is JobOutcome.ERROR
    assert await runner.run(_replace_step(failing, slow), "r2") is JobOutcome.TIMEOUT
    assert await runner.run(failing, "r3") is JobOutcome.SUCCESS


async def test_runner_skips_a_job_whose_previous_run_still_runs() -> None:
    fakes = _Fakes()
    release = asyncio.Event()

    async def waits(*_: Any) -> int:
        await release.wait()
        return 0

    runner = JobRunner(fakes.scope, _Clock(), 100, LocalRunGuard())
    job = _replace_step(job_named("expire-points"), waits)
    first = asyncio.create_task(runner.run(job, "r1"))
    await asyncio.sleep(0.05)
    assert await runner.run(job, "r2") is JobOutcome.SKIPPED
    release.set()
    assert await first is JobOutcome.SUCCESS


def _replace_step(job: Any, step: Any) -> Any:
    return replace(job, step=step)
