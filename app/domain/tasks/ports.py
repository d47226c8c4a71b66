"""What the tasks context needs from storage.

Every state change is one guarded write (``UPDATE ... WHERE status IN <the states it may
leave> RETURNING``): of concurrent changes of one task exactly one finds the state it
needs; the others change nothing and get ``None``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

from app.domain.tasks.model import CancelReason, SortOrder, Task, TaskFilter, TaskSort, TaskStatus


class TaskRepository(Protocol):
    async def insert(self, task: Task) -> Task: ...

    async def get(self, task_id: UUID) -> Task | None: ...

    async def search(
        self, filters: TaskFilter, sort: TaskSort, order: SortOrder, limit: int, offset: int
    ) -> tuple[list[Task], int]:
        """One page (ties broken by id) and the total count."""
        ...

    async def take(self, task_id: UUID, taker_id: UUID, now: datetime) -> Task | None:
        """Open, not the taker's own, deadline ahead -> taken by ``taker_id``; ``None`` if any condition fails."""
        ...

    async def complete(self, task_id: UUID, poster_id: UUID, rating: int | None, now: datetime) -> Task | None:
        """Taken and posted by ``poster_id`` -> completed; ``None`` otherwise."""
        ...

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
        """In one of ``from_statuses`` (and posted by ``poster_id`` when given) -> cancelled; ``None`` otherwise.

        With ``taken_with_consent`` a taken task qualifies only once its taker consented.
        """
        ...

    async def consent_to_cancel(self, task_id: UUID, taker_id: UUID, now: datetime) -> Task | None:
        """Taken by ``taker_id`` and not consented yet -> consented; ``None`` otherwise."""
        ...

    async def cancel_expired(self, now: datetime, batch_size: int) -> list[Task]:
        """Cancel (reason ``expired``) up to ``batch_size`` open tasks whose deadline has passed; return them.

        Safe to run concurrently with itself and with takes: each task changes once.
        """
        ...
