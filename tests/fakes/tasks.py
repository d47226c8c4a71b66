"""An in-memory TaskRepository with the same contract as the SQL one (single-threaded).

It also keeps a snapshot at ``commit`` and returns to it on ``rollback``, so a refused post
can be seen to leave nothing behind.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

from app.domain.tasks.model import CancelReason, SortOrder, Task, TaskFilter, TaskSort, TaskStatus


def _sort_key(sort: TaskSort) -> Any:
    if sort is TaskSort.DEADLINE:
        return lambda task: (task.deadline, task.id)
    if sort is TaskSort.REWARD:
        return lambda task: (task.reward_points, task.id)
    return lambda task: (task.created_at, task.id)


class InMemoryTasks:
    def __init__(self) -> None:
        self.tasks: dict[UUID, Task] = {}
        self._saved: dict[UUID, Task] = {}

    async def commit(self) -> None:
        self._saved = copy.copy(self.tasks)

    async def rollback(self) -> None:
        self.tasks = copy.copy(self._saved)

    async def insert(self, task: Task) -> Task:
        self.tasks[task.id] = task
        return task

    async def get(self, task_id: UUID) -> Task | None:
        return self.tasks.get(task_id)

    async def search(
        self, filters: TaskFilter, sort: TaskSort, order: SortOrder, limit: int, offset: int
    ) -> tuple[list[Task], int]:
        matching = [
            task
            for task in sorted(self.tasks.values(), key=_sort_key(sort), reverse=order is SortOrder.DESC)
            if (not filters.statuses or task.status in filters.statuses)
            and (filters.category is None or task.category == filters.category)
            and (filters.poster_id is None or task.poster_id == filters.poster_id)
            and (filters.taker_id is None or task.taker_id == filters.taker_id)
        ]
        return matching[offset : offset + limit], len(matching)

    def _change(self, task_id: UUID, ok: bool, **values: Any) -> Task | None:
        if not ok:
            return None
        changed = replace(self.tasks[task_id], **values)
        self.tasks[task_id] = changed
        return changed

    async def take(self, task_id: UUID, taker_id: UUID, now: datetime) -> Task | None:
        task = self.tasks.get(task_id)
        ok = task is not None and task.status is TaskStatus.OPEN and task.poster_id != taker_id and task.deadline > now
        return self._change(task_id, ok, status=TaskStatus.TAKEN, taker_id=taker_id, taken_at=now, updated_at=now)

    async def complete(self, task_id: UUID, poster_id: UUID, rating: int | None, now: datetime) -> Task | None:
        task = self.tasks.get(task_id)
        ok = task is not None and task.status is TaskStatus.TAKEN and task.poster_id == poster_id
        return self._change(task_id, ok, status=TaskStatus.COMPLETED, rating=rating, completed_at=now, updated_at=now)

    async def cancel(
        self,
        task_id: UUID,
        from_statuses: frozenset[TaskStatus],
        reason: CancelReason,
        now: datetime,
        *,
        poster_id: UUID | None = None,
        taken_with_consent: bool = False,
    ) -> Task | None:
        task = self.tasks.get(task_id)
        ok = (
            task is not None
            and task.status in from_statuses
            and (poster_id is None or task.poster_id == poster_id)
            and not (taken_with_consent and task.status is TaskStatus.TAKEN and task.cancel_consented_at is None)
        )
        return self._change(
            task_id, ok, status=TaskStatus.CANCELLED, cancel_reason=reason, cancelled_at=now, updated_at=now
        )

    async def consent_to_cancel(self, task_id: UUID, taker_id: UUID, now: datetime) -> Task | None:
        task = self.tasks.get(task_id)
        ok = (
            task is not None
            and task.status is TaskStatus.TAKEN
            and task.taker_id == taker_id
            and task.cancel_consented_at is None
        )
        return self._change(task_id, ok, cancel_consented_at=now, updated_at=now)

    async def cancel_expired(self, now: datetime, batch_size: int) -> list[Task]:
        due = sorted(
            (task for task in self.tasks.values() if task.status is TaskStatus.OPEN and task.deadline <= now),
            key=lambda task: task.deadline,
        )[:batch_size]
        cancelled = []
        for task in due:
            changed = self._change(
                task.id,
                True,
                status=TaskStatus.CANCELLED,
                cancel_reason=CancelReason.EXPIRED,
                cancelled_at=now,
                updated_at=now,
            )
            assert changed is not None
            cancelled.append(changed)
        return cancelled
