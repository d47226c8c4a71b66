"""Tasks on SQLAlchemy Core.

Concurrency: every state change is one guarded ``UPDATE ... WHERE status IN <the states
it may leave> RETURNING``. On PostgreSQL a concurrent transaction waits for the row lock
and then re-checks the condition against the committed row, so of simultaneous takes, or
completes, of one task exactly one changes the row. The expiry job locks a batch of due
rows with ``SKIP LOCKED``: a row a take holds is skipped (and, once taken, is no longer
due); a row the job holds makes the take wait and then find it cancelled. SQLite runs one
writer at a time and ignores ``FOR UPDATE``: the same statements are safe there.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy import ColumnElement, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import UpdateBase

from app.domain.tasks.model import CancelReason, SortOrder, Task, TaskFilter, TaskSort, TaskStatus
from app.infra.db.task_tables import TaskRecord

_T = TaskRecord
_COLUMNS = (
    _T.id,
    _T.poster_id,
    _T.taker_id,
    _T.title,
    _T.description,
    _T.category,
    _T.reward_points,
    _T.held_points,
    _T.coupon_id,
    _T.hold_id,
    _T.deadline,
    _T.status,
    _T.rating,
    _T.cancel_reason,
    _T.created_at,
    _T.updated_at,
    _T.taken_at,
    _T.completed_at,
    _T.cancelled_at,
    _T.cancel_consented_at,
)
_SORT_COLUMNS = {TaskSort.CREATED: _T.created_at, TaskSort.DEADLINE: _T.deadline, TaskSort.REWARD: _T.reward_points}


def _to_task(row: Any) -> Task:
    return Task(
        id=row.id,
        poster_id=row.poster_id,
        taker_id=row.taker_id,
        title=row.title,
        description=row.description,
        category=row.category,
        reward_points=row.reward_points,
        held_points=row.held_points,
        coupon_id=row.coupon_id,
        hold_id=row.hold_id,
        deadline=row.deadline,
        status=TaskStatus(row.status),
        rating=row.rating,
        cancel_reason=None if row.cancel_reason is None else CancelReason(row.cancel_reason),
        created_at=row.created_at,
        updated_at=row.updated_at,
        taken_at=row.taken_at,
        completed_at=row.completed_at,
        cancelled_at=row.cancelled_at,
        cancel_consented_at=row.cancel_consented_at,
    )


def _statuses(statuses: frozenset[TaskStatus]) -> list[str]:
    return sorted(status.value for status in statuses)


def cancel_expired_statement(now: datetime.datetime, batch_size: int) -> UpdateBase:
    """One batch of the expiry job: open tasks past their deadline become cancelled (reason ``expired``).

    The batch is a materialised CTE locked with ``SKIP LOCKED`` and run exactly once (see
    ``coupons._locked_batch``); the outer ``status = 'open'`` re-check is what a take racing
    the job cannot slip past.
    """
    due = (
        select(_T.id)
        .where(_T.status == TaskStatus.OPEN.value, _T.deadline <= now)
        .order_by(_T.deadline)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
        .cte("due_tasks")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    return (
        update(_T)
        .where(_T.id.in_(select(due.c.id)), _T.status == TaskStatus.OPEN.value)
        .values(
            status=TaskStatus.CANCELLED.value,
            cancel_reason=CancelReason.EXPIRED.value,
            cancelled_at=now,
            updated_at=now,
        )
        .returning(*_COLUMNS)
    )


class SqlTaskRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def insert(self, task: Task) -> Task:
        statement = (
            insert(_T)
            .values(
                id=task.id,
                poster_id=task.poster_id,
                title=task.title,
                description=task.description,
                category=task.category,
                reward_points=task.reward_points,
                held_points=task.held_points,
                coupon_id=task.coupon_id,
                hold_id=task.hold_id,
                deadline=task.deadline,
                status=task.status.value,
                created_at=task.created_at,
                updated_at=task.updated_at,
            )
            .returning(*_COLUMNS)
        )
        return _to_task((await self._session.execute(statement)).one())

    async def get(self, task_id: uuid.UUID) -> Task | None:
        row = (await self._session.execute(select(*_COLUMNS).where(_T.id == task_id))).first()
        return None if row is None else _to_task(row)

    async def search(
        self, filters: TaskFilter, sort: TaskSort, order: SortOrder, limit: int, offset: int
    ) -> tuple[list[Task], int]:
        conditions: list[ColumnElement[bool]] = []
        if filters.statuses:
            conditions.append(_T.status.in_(_statuses(filters.statuses)))
        if filters.category is not None:
            conditions.append(_T.category == filters.category)
        if filters.poster_id is not None:
            conditions.append(_T.poster_id == filters.poster_id)
        if filters.taker_id is not None:
            conditions.append(_T.taker_id == filters.taker_id)
        column = _SORT_COLUMNS[sort]
        ordering = (column.asc(), _T.id.asc()) if order is SortOrder.ASC else (column.desc(), _T.id.desc())
        page = select(*_COLUMNS).where(*conditions).order_by(*ordering).limit(limit).offset(offset)
        rows = (await self._session.execute(page)).all()
        total = (await self._session.execute(select(func.count()).select_from(_T).where(*conditions))).scalar_one()
        return [_to_task(row) for row in rows], int(total)

    async def _change(self, conditions: list[ColumnElement[bool]], values: dict[str, Any]) -> Task | None:
        statement = update(_T).where(*conditions).values(**values).returning(*_COLUMNS)
        row = (await self._session.execute(statement)).first()
        return None if row is None else _to_task(row)

    async def take(self, task_id: uuid.UUID, taker_id: uuid.UUID, now: datetime.datetime) -> Task | None:
        return await self._change(
            [
                _T.id == task_id,
                _T.status == TaskStatus.OPEN.value,
                _T.poster_id != taker_id,
                _T.deadline > now,
            ],
            {"status": TaskStatus.TAKEN.value, "taker_id": taker_id, "taken_at": now, "updated_at": now},
        )

    async def complete(
        self, task_id: uuid.UUID, poster_id: uuid.UUID, rating: int | None, now: datetime.datetime
    ) -> Task | None:
        return await self._change(
            [_T.id == task_id, _T.status == TaskStatus.TAKEN.value, _T.poster_id == poster_id],
            {"status": TaskStatus.COMPLETED.value, "rating": rating, "completed_at": now, "updated_at": now},
        )

    async def cancel(
        self,
        task_id: uuid.UUID,
        from_statuses: frozenset[TaskStatus],
        reason: CancelReason,
        now: datetime.datetime,
        *,
        poster_id: uuid.UUID | None = None,
        taken_with_consent: bool = False,
    ) -> Task | None:
        conditions = [_T.id == task_id, _T.status.in_(_statuses(from_statuses))]
        if poster_id is not None:
            conditions.append(_T.poster_id == poster_id)
        if taken_with_consent:
            conditions.append(or_(_T.status != TaskStatus.TAKEN.value, _T.cancel_consented_at.is_not(None)))
        return await self._change(
            conditions,
            {
                "status": TaskStatus.CANCELLED.value,
                "cancel_reason": reason.value,
                "cancelled_at": now,
                "updated_at": now,
            },
        )

    async def consent_to_cancel(self, task_id: uuid.UUID, taker_id: uuid.UUID, now: datetime.datetime) -> Task | None:
        return await self._change(
            [
                _T.id == task_id,
                _T.status == TaskStatus.TAKEN.value,
                _T.taker_id == taker_id,
                _T.cancel_consented_at.is_(None),
            ],
            {"cancel_consented_at": now, "updated_at": now},
        )

    async def cancel_expired(self, now: datetime.datetime, batch_size: int) -> list[Task]:
        rows = (await self._session.execute(cancel_expired_statement(now, batch_size))).all()
        return [_to_task(row) for row in rows]
