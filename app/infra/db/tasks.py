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
import functools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, cast

import asyncpg
from sqlalchemy import ColumnElement, Integer, Select, bindparam, func, insert, or_, select, union_all, update
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import UpdateBase

from app.domain.tasks.model import CancelReason, SortOrder, Task, TaskFilter, TaskSort, TaskStatus
from app.infra.db.driver import DriverStatement, driver_failure
from app.infra.db.task_tables import TaskRecord
from app.infra.observability.db_metrics import observe_query

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
# The list reads through the table's own columns: a statement of ORM attributes is executed by the ORM
# (its compile state, a loading pass per row), which costs more Python than the rows themselves.
_C = TaskRecord.__table__.c
_LISTED = tuple(_C[column.key] for column in _COLUMNS)
_SORT_COLUMNS = {TaskSort.CREATED: _C.created_at, TaskSort.DEADLINE: _C.deadline, TaskSort.REWARD: _C.reward_points}


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


def _record_to_task(record: asyncpg.Record) -> Task:
    return Task(
        id=record["id"],
        poster_id=record["poster_id"],
        taker_id=record["taker_id"],
        title=record["title"],
        description=record["description"],
        category=record["category"],
        reward_points=record["reward_points"],
        held_points=record["held_points"],
        coupon_id=record["coupon_id"],
        hold_id=record["hold_id"],
        deadline=record["deadline"],
        status=TaskStatus(record["status"]),
        rating=record["rating"],
        cancel_reason=None if record["cancel_reason"] is None else CancelReason(record["cancel_reason"]),
        created_at=record["created_at"],
        updated_at=record["updated_at"],
        taken_at=record["taken_at"],
        completed_at=record["completed_at"],
        cancelled_at=record["cancelled_at"],
        cancel_consented_at=record["cancel_consented_at"],
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


def _in_order(key: Any, tiebreak: Any, order: SortOrder) -> tuple[Any, Any]:
    return (key.asc(), tiebreak.asc()) if order is SortOrder.ASC else (key.desc(), tiebreak.desc())


@dataclass(frozen=True)
class _Listing:
    """The statements of the list by status, newest first: built once (a union of subqueries costs
    milliseconds of Python to build, far more than to run), limits and offset bound per call."""

    page: Select[*tuple[Any, ...]]
    total: Select[*tuple[Any, ...]]
    driver: dict[str, tuple[DriverStatement, DriverStatement]] = field(default_factory=dict)

    def on_driver(self, dialect: Dialect) -> tuple[DriverStatement, DriverStatement]:
        if dialect.name not in self.driver:
            self.driver[dialect.name] = (DriverStatement(self.page, dialect), DriverStatement(self.total, dialect))
        return self.driver[dialect.name]


@functools.cache
def _newest_first(statuses: tuple[str, ...], order: SortOrder) -> _Listing:
    """Newest first among ``statuses`` (none: every task).

    Over several statuses (the default list: all of them) no index gives that order; the
    plain statement sorts every matching row for each page (84 ms over 100,000 tasks).
    Each status's newest rows come in order from ``ix_tasks_status_created``: one branch
    per status reads at most ``offset + limit`` of them, and the page is taken from their
    union (under a millisecond).
    """
    total = select(func.count()).select_from(TaskRecord.__table__)
    if statuses:
        total = total.where(_C.status.in_(statuses))
    branch_limit = bindparam("branch_limit", type_=Integer)
    page_limit, page_offset = bindparam("page_limit", type_=Integer), bindparam("page_offset", type_=Integer)
    branches = [
        select(*_LISTED).where(_C.status == status).order_by(*_in_order(_C.created_at, _C.id, order))
        for status in statuses or _statuses(frozenset(TaskStatus))
    ]
    if len(branches) == 1:
        return _Listing(branches[0].limit(page_limit).offset(page_offset), total)
    # each branch in a subquery of its own: SQLite refuses ORDER BY / LIMIT directly inside a UNION
    merged = union_all(
        *(select(branch.limit(branch_limit).subquery(f"newest_{n}")) for n, branch in enumerate(branches))
    ).subquery("newest")
    page = select(merged).order_by(*_in_order(merged.c.created_at, merged.c.id, order))
    return _Listing(page.limit(page_limit).offset(page_offset), total)


def _filtered(
    conditions: list[ColumnElement[bool]], sort: TaskSort, order: SortOrder, limit: int, offset: int
) -> tuple[Select[*tuple[Any, ...]], Select[*tuple[Any, ...]]]:
    """Filters by category, poster or taker have an index of their own; the other sort keys have
    none per status: the plain statements."""
    ordering = _in_order(_SORT_COLUMNS[sort], _C.id, order)
    page = select(*_LISTED).where(*conditions).order_by(*ordering).limit(limit).offset(offset)
    return page, select(func.count()).select_from(TaskRecord.__table__).where(*conditions)


def _total(rows: int, limit: int, offset: int) -> int | None:
    """The total told by the page itself: a short page is the last one (no count needed)."""
    return offset + rows if rows < limit and (rows or offset == 0) else None


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
        by_status_only = filters.category is None and filters.poster_id is None and filters.taker_id is None
        if sort is TaskSort.CREATED and by_status_only:
            listing = _newest_first(tuple(_statuses(filters.statuses)), order)
            parameters = {"branch_limit": offset + limit, "page_limit": limit, "page_offset": offset}
            dialect = self._session.get_bind().dialect
            if dialect.driver == "asyncpg":
                return await self._search_on_driver(listing.on_driver(dialect), parameters, limit, offset)
            page, count, params = listing.page, listing.total, parameters
        else:
            conditions: list[ColumnElement[bool]] = []
            if filters.statuses:
                conditions.append(_C.status.in_(_statuses(filters.statuses)))
            if filters.category is not None:
                conditions.append(_C.category == filters.category)
            if filters.poster_id is not None:
                conditions.append(_C.poster_id == filters.poster_id)
            if filters.taker_id is not None:
                conditions.append(_C.taker_id == filters.taker_id)
            page, count = _filtered(conditions, sort, order, limit, offset)
            params = {}
        rows = (await self._session.execute(page, params)).all()
        total = _total(len(rows), limit, offset)
        if total is None:
            total = (await self._session.execute(count)).scalar_one()
        return [_to_task(row) for row in rows], total

    async def _search_on_driver(
        self, statements: tuple[DriverStatement, DriverStatement], parameters: dict[str, int], limit: int, offset: int
    ) -> tuple[list[Task], int]:
        """The list by status on the session's asyncpg connection itself (see ``driver``): the hot read of
        the task board, two round trips (page, total) and no BEGIN/ROLLBACK when nothing else ran before."""
        page, count = statements
        connection = await self._session.connection()
        driver = cast("asyncpg.Connection[asyncpg.Record]", (await connection.get_raw_connection()).driver_connection)
        sql = page.sql
        try:
            started = time.perf_counter()
            records = await driver.fetch(sql, *page.arguments(parameters))
            observe_query("select", time.perf_counter() - started)
            total = _total(len(records), limit, offset)
            if total is None:
                sql = count.sql
                started = time.perf_counter()
                total = await driver.fetchval(sql, *count.arguments())
                observe_query("select", time.perf_counter() - started)
        except Exception as error:
            failure, lost = driver_failure(error, sql)
            if lost:
                await connection.invalidate(error)
            raise failure from error
        return [_record_to_task(record) for record in records], int(total)

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
