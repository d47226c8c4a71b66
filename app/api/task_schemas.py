"""Request and response bodies of tasks (a contract, like ``schemas.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from app.domain.tasks.model import CancelReason, Task, TaskDraft, TaskStatus

# Bounds on raw input only; the domain checks the rules (after trimming) and reports every broken one.
Moment = Annotated[datetime, msgspec.Meta(tz=True, description="With a time zone, e.g. `2026-07-01T00:00:00Z`.")]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200, examples=["Assemble a bookshelf"])]
Description = Annotated[str, msgspec.Meta(min_length=1, max_length=10_000)]
Category = Annotated[str, msgspec.Meta(min_length=1, max_length=60, examples=["furniture"])]
Reward = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
Rating = Annotated[int, msgspec.Meta(ge=1, le=5)]


class CreateTaskRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`deadline` must lie 5 minutes to 365 days ahead. `coupon_id`: one of your `task_discount` coupons;
    its value is taken off the points held (the reward must reach the coupon's `min_reward`)."""

    title: Title
    description: Description
    category: Category
    reward_points: Reward
    deadline: Moment
    coupon_id: UUID | None = None

    def to_draft(self) -> TaskDraft:
        return TaskDraft(
            title=self.title,
            description=self.description,
            category=self.category,
            reward_points=self.reward_points,
            deadline=self.deadline,
            coupon_id=self.coupon_id,
        )


class CompleteTaskRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    rating: Rating | None = None


class TaskResponse(msgspec.Struct, kw_only=True):
    id: UUID
    poster_id: UUID
    taker_id: UUID | None
    title: str
    description: str
    category: str
    reward_points: int
    held_points: int
    discount: int
    coupon_id: UUID | None
    deadline: datetime
    status: TaskStatus
    rating: int | None
    cancel_reason: CancelReason | None
    created_at: datetime
    updated_at: datetime
    taken_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    cancel_consented_at: datetime | None

    @classmethod
    def of(cls, task: Task) -> TaskResponse:
        return cls(
            id=task.id,
            poster_id=task.poster_id,
            taker_id=task.taker_id,
            title=task.title,
            description=task.description,
            category=task.category,
            reward_points=task.reward_points,
            held_points=task.held_points,
            discount=task.discount,
            coupon_id=task.coupon_id,
            deadline=task.deadline,
            status=task.status,
            rating=task.rating,
            cancel_reason=task.cancel_reason,
            created_at=task.created_at,
            updated_at=task.updated_at,
            taken_at=task.taken_at,
            completed_at=task.completed_at,
            cancelled_at=task.cancelled_at,
            cancel_consented_at=task.cancel_consented_at,
        )


class TaskPage(msgspec.Struct, kw_only=True):
    items: list[TaskResponse]
    total: int
    limit: int
    offset: int
