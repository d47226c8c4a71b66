"""Use cases of tasks. Each commits once: the task, its hold and its coupon stand or fall together.

Concurrency rests on guarded single-row updates (see ``ports``), never on a read followed
by a write; only when a guarded write changes nothing does the service read the task to
say why (404, 403 or 409 ``invalid_transition`` naming the current state).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from app.domain.coupons.service import CouponService
from app.domain.notifications.model import Notice, NotificationKind
from app.domain.notifications.ports import Notifier
from app.domain.points.service import PointsService
from app.domain.shared.errors import Conflict, DomainError, FieldIssue, Forbidden, NotFound, ValidationFailed
from app.domain.shared.ports import Clock, UnitOfWork
from app.domain.tasks.model import (
    CancelReason,
    SortOrder,
    Task,
    TaskDraft,
    TaskFilter,
    TaskSort,
    TaskStatus,
    sources_of,
)
from app.domain.tasks.ports import TaskRepository
from app.domain.users.model import Principal, Role

MAX_REWARD = 1_000_000
TITLE_LENGTH = (3, 120)
DESCRIPTION_LENGTH = (1, 5_000)
CATEGORY_LENGTH = (1, 40)
MIN_LEAD_TIME = timedelta(minutes=5)
MAX_LEAD_TIME = timedelta(days=365)


class TaskNotFound(NotFound):
    code = "task_not_found"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class DeadlinePassed(Conflict):
    code = "deadline_passed"


class OwnTask(Forbidden):
    code = "own_task"


class NotPoster(Forbidden):
    code = "not_poster"


class TakerConsentRequired(Forbidden):
    code = "taker_consent_required"


class NotTaker(Forbidden):
    code = "not_taker"


def _invalid_transition(task: Task, action: str) -> InvalidTransition:
    return InvalidTransition(f"Cannot {action} a task that is {task.status.value}.")


def _about(task: Task, **extra: Any) -> dict[str, Any]:
    """A notification's payload: the task and what else the kind needs (JSON-serialisable)."""
    return {"task_id": str(task.id), "title": task.title, **extra}


def check_draft(draft: TaskDraft, now: datetime) -> TaskDraft:
    """The draft with its text trimmed; every broken rule is reported at once (422 ``invalid_task``)."""
    draft = replace(
        draft, title=draft.title.strip(), description=draft.description.strip(), category=draft.category.strip().lower()
    )
    issues: list[FieldIssue] = []
    for field, value, (low, high) in (
        ("title", draft.title, TITLE_LENGTH),
        ("description", draft.description, DESCRIPTION_LENGTH),
        ("category", draft.category, CATEGORY_LENGTH),
    ):
        if not low <= len(value) <= high:
            issues.append(
                FieldIssue(code="invalid_length", message=f"Must be {low} to {high} characters.", field=field)
            )
    if not 0 < draft.reward_points <= MAX_REWARD:
        issues.append(FieldIssue(code="out_of_range", message=f"Must be 1 to {MAX_REWARD}.", field="reward_points"))
    if draft.deadline.tzinfo is None:
        issues.append(FieldIssue(code="naive_time", message="Must carry a time zone.", field="deadline"))
    elif draft.deadline < now + MIN_LEAD_TIME:
        issues.append(
            FieldIssue(code="deadline_too_soon", message="Must be at least 5 minutes ahead.", field="deadline")
        )
    elif draft.deadline > now + MAX_LEAD_TIME:
        issues.append(FieldIssue(code="deadline_too_far", message="Must be within 365 days.", field="deadline"))
    if issues:
        raise ValidationFailed("The task breaks some rules.", code="invalid_task", issues=tuple(issues))
    return draft


class TaskService:
    def __init__(
        self,
        tasks: TaskRepository,
        points: PointsService,
        coupons: CouponService,
        notifier: Notifier,
        uow: UnitOfWork,
        clock: Clock,
    ) -> None:
        self._tasks = tasks
        self._points = points
        self._coupons = coupons
        self._notifier = notifier
        self._uow = uow
        self._clock = clock

    async def post(self, poster_id: UUID, draft: TaskDraft) -> Task:
        """Post a task: hold its reward (minus a coupon's discount) and store it, in one transaction.

        Raises:
            ValidationFailed (``invalid_task``), InsufficientPoints, the coupon's refusals.
        """
        now = self._clock.now()
        draft = check_draft(draft, now)
        task_id = uuid.uuid4()
        try:
            discount = 0
            if draft.coupon_id is not None:
                discount = await self._coupons.reserve_for_task(
                    poster_id, draft.coupon_id, task_id, draft.reward_points
                )
            held = max(draft.reward_points - discount, 1)  # a coupon's minimum reward always exceeds its value
            hold = await self._points.hold(
                poster_id, held, reference=f"task:{task_id}", idempotency_key=f"task-hold:{task_id}"
            )
            task = await self._tasks.insert(
                Task(
                    id=task_id,
                    poster_id=poster_id,
                    title=draft.title,
                    description=draft.description,
                    category=draft.category,
                    reward_points=draft.reward_points,
                    held_points=held,
                    coupon_id=draft.coupon_id,
                    hold_id=hold.id,
                    deadline=draft.deadline,
                    status=TaskStatus.OPEN,
                    created_at=now,
                    updated_at=now,
                )
            )
        except DomainError:
            await self._uow.rollback()  # nothing of a refused post stays: no coupon use, no hold
            raise
        await self._uow.commit()
        return task

    async def get(self, task_id: UUID) -> Task:
        task = await self._tasks.get(task_id)
        if task is None:
            raise TaskNotFound("Task not found.")
        return task

    async def list_tasks(
        self, filters: TaskFilter, sort: TaskSort, order: SortOrder, limit: int, offset: int
    ) -> tuple[list[Task], int]:
        return await self._tasks.search(filters, sort, order, limit, offset)

    async def take(self, actor: Principal, task_id: UUID) -> Task:
        """Take an open task; of simultaneous takes exactly one wins, the others get ``invalid_transition``."""
        now = self._clock.now()
        task = await self._tasks.take(task_id, actor.id, now)
        if task is None:
            current = await self.get(task_id)
            if current.poster_id == actor.id:
                raise OwnTask("You cannot take your own task.")
            if current.status is not TaskStatus.OPEN:
                raise _invalid_transition(current, "take")
            raise DeadlinePassed("The task's deadline has passed.")
        await self._notifier.notify(task.poster_id, NotificationKind.TASK_TAKEN, _about(task, taker_id=str(actor.id)))
        await self._uow.commit()
        return task

    async def complete(self, actor: Principal, task_id: UUID, rating: int | None = None) -> Task:
        """The poster confirms a taken task: the hold is paid to the taker, once even under concurrency."""
        if rating is not None and not 1 <= rating <= 5:
            raise ValidationFailed(
                "The rating must be 1 to 5.",
                issues=(FieldIssue(code="out_of_range", message="Must be 1 to 5.", field="rating"),),
            )
        task = await self._tasks.complete(task_id, actor.id, rating, self._clock.now())
        if task is None:
            current = await self.get(task_id)
            if current.poster_id != actor.id:
                raise NotPoster("Only the poster completes a task.")
            raise _invalid_transition(current, "complete")
        assert task.taker_id is not None
        await self._points.capture(task.hold_id, task.taker_id, reason="task")
        await self._notifier.notify(
            task.taker_id, NotificationKind.TASK_COMPLETED, _about(task, points=task.held_points, rating=rating)
        )
        await self._uow.commit()
        return task

    async def cancel(self, actor: Principal, task_id: UUID) -> Task:
        """The poster cancels an open task, or a taken one its taker consented to; an admin an open or taken one.
        The hold and the coupon come back; a taker is told."""
        now = self._clock.now()
        if actor.has_role(Role.ADMIN):
            task = await self._tasks.cancel(task_id, sources_of(TaskStatus.CANCELLED), CancelReason.ADMIN, now)
        else:
            task = await self._tasks.cancel(
                task_id,
                sources_of(TaskStatus.CANCELLED),
                CancelReason.POSTER,
                now,
                poster_id=actor.id,
                taken_with_consent=True,
            )
        if task is None:
            current = await self.get(task_id)
            if current.poster_id != actor.id and not actor.has_role(Role.ADMIN):
                raise NotPoster("Only the poster or an admin cancels a task.")
            if current.status is TaskStatus.TAKEN:
                raise TakerConsentRequired("The task is taken: its taker must consent to the cancellation first.")
            raise _invalid_transition(current, "cancel")
        await self._give_back(task)
        if task.taker_id is not None:
            await self._notifier.notify(
                task.taker_id, NotificationKind.TASK_CANCELLED, _about(task, reason=str(task.cancel_reason))
            )
        await self._uow.commit()
        return task

    async def consent_to_cancel(self, actor: Principal, task_id: UUID) -> Task:
        """The taker lets the poster cancel a taken task (the poster is told); consenting again changes nothing."""
        task = await self._tasks.consent_to_cancel(task_id, actor.id, self._clock.now())
        if task is None:
            current = await self.get(task_id)
            if current.taker_id != actor.id:
                raise NotTaker("Only the task's taker consents to its cancellation.")
            if current.status is TaskStatus.TAKEN:
                return current  # consented already
            raise _invalid_transition(current, "consent to cancel")
        await self._notifier.notify(task.poster_id, NotificationKind.TASK_CANCEL_CONSENTED, _about(task))
        await self._uow.commit()
        return task

    async def _give_back(self, task: Task) -> None:
        await self._points.release(task.hold_id)
        if task.coupon_id is not None:
            await self._coupons.release_from_task(task.coupon_id, task.id)

    async def cancel_expired(self, now: datetime, batch_size: int) -> int:
        """Cancel one batch of open tasks past their deadline (reason ``expired``), give back their holds and
        coupons, and commit; return how many. The scheduler calls it until it returns less than a batch.
        Safe when runs overlap and against concurrent takes: each task changes exactly once."""
        expired = await self._tasks.cancel_expired(now, batch_size)
        # What ``_give_back`` does for one task, for the whole batch at once: a few statements whatever its size.
        await self._points.release_many([task.hold_id for task in expired])
        await self._coupons.release_many_from_tasks(
            [(task.coupon_id, task.id) for task in expired if task.coupon_id is not None]
        )
        await self._notifier.notify_many(
            [Notice(task.poster_id, NotificationKind.TASK_EXPIRED, _about(task)) for task in expired]
        )
        await self._uow.commit()
        return len(expired)
