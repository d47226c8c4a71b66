"""What a periodic job is: a stable name, a cadence, a time limit, and one use-case call.

Cadences are plain values with pure time arithmetic, so the distributed
scheduler, the in-process runner and the tests agree on when a job is due and
which *tick* (slot) a run belongs to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.domain.jobs.ports import JobServices


@dataclass(frozen=True, slots=True)
class Every:
    """Every ``seconds``, on boundaries counted from the Unix epoch (so every process agrees on the ticks)."""

    seconds: int

    def __post_init__(self) -> None:
        if self.seconds < 1:
            raise ValueError("a job cannot run more often than every second")


@dataclass(frozen=True, slots=True)
class DailyAt:
    """Once a day at ``hour:minute`` wall-clock time in the jobs' time zone."""

    hour: int
    minute: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.hour < 24 and 0 <= self.minute < 60):
            raise ValueError("a daily time needs 0 <= hour < 24 and 0 <= minute < 60")


Cadence = Every | DailyAt


def describe(cadence: Cadence) -> str:
    if isinstance(cadence, Every):
        return f"every {cadence.seconds} s"
    return f"daily {cadence.hour:02d}:{cadence.minute:02d}"


def tick_of(cadence: Cadence, at: datetime, zone: tzinfo) -> str:
    """The tick ``at`` belongs to: the same string for every moment between two due times.

    Two schedulers (or a restarted one) that fire the same job within one tick
    compute the same value, which is what makes "one run per tick" checkable.
    """
    if isinstance(cadence, Every):
        return str(int(at.timestamp()) // cadence.seconds)
    local = at.astimezone(zone) - timedelta(hours=cadence.hour, minutes=cadence.minute)
    return local.date().isoformat()


def next_due(cadence: Cadence, after: datetime, zone: tzinfo) -> datetime:
    """The first due time strictly after ``after`` (timezone-aware, UTC)."""
    if isinstance(cadence, Every):
        elapsed = int(after.timestamp()) // cadence.seconds + 1
        return datetime.fromtimestamp(elapsed * cadence.seconds, UTC)
    local = after.astimezone(zone)
    candidate = local.replace(hour=cadence.hour, minute=cadence.minute, second=0, microsecond=0)
    while candidate <= local:
        # calendar arithmetic on the naive wall clock, then back into the zone (DST-safe)
        naive = candidate.replace(tzinfo=None) + timedelta(days=1)
        candidate = naive.replace(tzinfo=zone)
    return candidate.astimezone(UTC)


class JobOutcome(StrEnum):
    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"  # the previous run of the same job still runs


# One call of the job's use case with services bound to one fresh unit of work:
# returns how many rows that batch changed (the runner drains while a batch comes back full).
JobStep = Callable[["JobServices", datetime, int], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    cadence: Cadence
    timeout_seconds: float
    calls: str  # the use case it runs, for operators (``litestar jobs list``, the README)
    step: JobStep
    drains: bool  # call ``step`` again, in a new unit of work, while a batch comes back full
