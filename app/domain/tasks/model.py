"""Tasks: a poster offers points for a piece of work; another user takes and does it.

States and the only transitions between them::

    open -> taken -> completed
    open -> cancelled            (by the poster, an admin, or the expiry job: reason ``expired``)
    taken -> cancelled           (by an admin, or by the poster once the taker consented)

Posting holds the reward (minus a ``task_discount`` coupon's value) from the poster's
points; completing pays the hold to the taker; cancelling gives it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID


class TaskStatus(StrEnum):
    OPEN = "open"
    TAKEN = "taken"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class CancelReason(StrEnum):
    POSTER = "poster"  # the poster withdrew an open task
    ADMIN = "admin"  # an admin cancelled it
    EXPIRED = "expired"  # still open at its deadline


# Every legal transition: from a state, the states it may become.
TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.OPEN: frozenset({TaskStatus.TAKEN, TaskStatus.CANCELLED}),
    TaskStatus.TAKEN: frozenset({TaskStatus.COMPLETED, TaskStatus.CANCELLED}),
    TaskStatus.COMPLETED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
}


def sources_of(target: TaskStatus) -> frozenset[TaskStatus]:
    """The states from which a task may become ``target``."""
    return frozenset(source for source, targets in TRANSITIONS.items() if target in targets)


class TaskSort(StrEnum):
    CREATED = "created"
    DEADLINE = "deadline"
    REWARD = "reward"


class SortOrder(StrEnum):
    ASC = "asc"
    DESC = "desc"


@dataclass(frozen=True, slots=True)
class TaskDraft:
    """What a poster fills in."""

    title: str
    description: str
    category: str
    reward_points: int
    deadline: datetime
    coupon_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class Task:
    id: UUID
    poster_id: UUID
    title: str
    description: str
    category: str
    reward_points: int
    held_points: int  # what the hold took from the poster: the reward minus the coupon's discount
    coupon_id: UUID | None
    hold_id: UUID
    deadline: datetime
    status: TaskStatus
    created_at: datetime
    updated_at: datetime
    taker_id: UUID | None = None
    rating: int | None = None
    cancel_reason: CancelReason | None = None
    taken_at: datetime | None = None
    completed_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancel_consented_at: datetime | None = None  # the taker agreed that the poster may cancel

    @property
    def discount(self) -> int:
        return self.reward_points - self.held_points


@dataclass(frozen=True, slots=True)
class TaskFilter:
    statuses: frozenset[TaskStatus] = frozenset()
    category: str | None = None
    poster_id: UUID | None = None
    taker_id: UUID | None = None
