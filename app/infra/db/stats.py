"""User statistics on SQLAlchemy Core: one aggregation, stored for everyone by one upsert.

``recompute_all`` is a single ``INSERT INTO user_stats ... SELECT <aggregates> ... ON CONFLICT
(user_id) DO UPDATE`` (PostgreSQL and SQLite share the syntax): each source table is scanned once
and grouped by user (hash aggregates and joins on PostgreSQL), whatever the number of users; no
row travels to Python. The points balance is the sum of the remaining points of the user's lots,
which is what the ledger reports as the balance.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy import Float, Select, case, cast, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.stats.model import UserStats
from app.domain.tasks.model import TaskStatus
from app.infra.db.activity_tables import ActivityParticipantRecord
from app.infra.db.stats_tables import UserStatsRecord
from app.infra.db.tables import PointLotRecord, UserRecord
from app.infra.db.task_tables import TaskRecord

_S = UserStatsRecord
_U = UserRecord
_T = TaskRecord
_P = ActivityParticipantRecord
_L = PointLotRecord
_FIGURES = (
    "tasks_posted",
    "tasks_taken",
    "tasks_completed",
    "completion_rate",
    "ratings_count",
    "average_rating",
    "activities_joined",
    "points_balance",
    "computed_at",
)


def aggregate_statement(now: datetime.datetime, user_id: uuid.UUID | None = None) -> Select[Any]:
    """Every user's figures (or only ``user_id``'s, the filter pushed into each aggregate), one row per user.

    Columns: ``user_id`` and ``_FIGURES`` in that order.
    """

    def only(column: Any) -> list[Any]:
        return [] if user_id is None else [column == user_id]

    posted = (
        select(_T.poster_id.label("user_id"), func.count().label("posted"))
        .where(*only(_T.poster_id))
        .group_by(_T.poster_id)
        .subquery("posted")
    )
    taken = (
        select(
            _T.taker_id.label("user_id"),
            func.count().label("taken"),
            func.count().filter(_T.status == TaskStatus.COMPLETED.value).label("completed"),
            func.count(_T.rating).label("ratings"),
            # the mean as a float on both databases (PostgreSQL's avg of integers is numeric)
            (cast(func.sum(_T.rating), Float) / func.nullif(func.count(_T.rating), 0)).label("average"),
        )
        .where(_T.taker_id.is_not(None), *only(_T.taker_id))
        .group_by(_T.taker_id)
        .subquery("taken")
    )
    joined = (
        select(_P.user_id, func.count().label("joined"))
        .where(*only(_P.user_id))
        .group_by(_P.user_id)
        .subquery("joined")
    )
    balance = (
        select(_L.user_id, func.sum(_L.remaining).label("balance"))
        .where(_L.remaining > 0, *only(_L.user_id))
        .group_by(_L.user_id)
        .subquery("balance")
    )
    tasks_taken = func.coalesce(taken.c.taken, 0)
    tasks_completed = func.coalesce(taken.c.completed, 0)
    return (
        select(
            _U.id.label("user_id"),
            func.coalesce(posted.c.posted, 0).label("tasks_posted"),
            tasks_taken.label("tasks_taken"),
            tasks_completed.label("tasks_completed"),
            case((tasks_taken > 0, cast(tasks_completed, Float) / tasks_taken), else_=None).label("completion_rate"),
            func.coalesce(taken.c.ratings, 0).label("ratings_count"),
            taken.c.average.label("average_rating"),
            func.coalesce(joined.c.joined, 0).label("activities_joined"),
            func.coalesce(balance.c.balance, 0).label("points_balance"),
            literal(now, _S.computed_at.type).label("computed_at"),
        )
        .select_from(_U)
        .outerjoin(posted, posted.c.user_id == _U.id)
        .outerjoin(taken, taken.c.user_id == _U.id)
        .outerjoin(joined, joined.c.user_id == _U.id)
        .outerjoin(balance, balance.c.user_id == _U.id)
        # a WHERE clause is also what SQLite needs to parse ``INSERT ... SELECT ... ON CONFLICT``
        .where(*(only(_U.id) or [_U.id.is_not(None)]))
    )


def _to_stats(row: Any) -> UserStats:
    return UserStats(
        user_id=row.user_id,
        tasks_posted=int(row.tasks_posted),
        tasks_taken=int(row.tasks_taken),
        tasks_completed=int(row.tasks_completed),
        completion_rate=None if row.completion_rate is None else float(row.completion_rate),
        ratings_count=int(row.ratings_count),
        average_rating=None if row.average_rating is None else float(row.average_rating),
        activities_joined=int(row.activities_joined),
        points_balance=int(row.points_balance),
        computed_at=row.computed_at,
    )


class SqlStatsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def recompute_all(self, now: datetime.datetime) -> int:
        dialect = sqlite if self._session.get_bind().dialect.name == "sqlite" else postgresql
        upsert = dialect.insert(_S).from_select(["user_id", *_FIGURES], aggregate_statement(now))
        statement = upsert.on_conflict_do_update(
            index_elements=[_S.user_id], set_={name: getattr(upsert.excluded, name) for name in _FIGURES}
        )
        result = await self._session.execute(statement)
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def read(self, user_id: uuid.UUID) -> tuple[bool, UserStats | None]:
        statement = (
            select(_U.id.label("found"), _S.user_id, *(getattr(_S, name) for name in _FIGURES))
            .select_from(_U)
            .outerjoin(_S, _S.user_id == _U.id)
            .where(_U.id == user_id, _U.is_active.is_(True))
        )
        row = (await self._session.execute(statement)).first()
        if row is None:
            return False, None
        return True, None if row.computed_at is None else _to_stats(row)

    async def compute_for(self, user_id: uuid.UUID, now: datetime.datetime) -> UserStats:
        return _to_stats((await self._session.execute(aggregate_statement(now, user_id))).one())
