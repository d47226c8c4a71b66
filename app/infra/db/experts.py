"""Experts on SQLAlchemy Core.

A profile's username comes from ``users`` in the same query (no N+1); the public list
counts its total with a window function in the page query. The refresh job reads one
batch of experts (keyset on id) with their completed tasks counted per category in one
aggregate query, and writes the batch's figures with one executemany UPDATE.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.experts.model import CategoryTally, ExpertDraft, ExpertProfile, ExpertSort, ExpertStats
from app.domain.tasks.model import TaskStatus
from app.infra.db.expert_tables import ExpertCategoryRecord, ExpertRecord
from app.infra.db.tables import UserRecord
from app.infra.db.task_tables import TaskRecord

_E = ExpertRecord
_C = ExpertCategoryRecord
_U = UserRecord
_T = TaskRecord
_COLUMNS = (
    _E.id,
    _E.user_id,
    _U.username,
    _E.skills,
    _E.categories,
    _E.bio,
    _E.auto_bio,
    _E.completed_count,
    _E.average_rating,
    _E.created_at,
    _E.updated_at,
)
_ORDERINGS: dict[ExpertSort, tuple[ColumnElement[Any], ...]] = {
    ExpertSort.RATING: (_E.average_rating.desc().nulls_last(), _E.completed_count.desc(), _E.id.asc()),
    ExpertSort.COMPLETED: (_E.completed_count.desc(), _E.average_rating.desc().nulls_last(), _E.id.asc()),
}


def _to_profile(row: Any) -> ExpertProfile:
    return ExpertProfile(
        id=row.id,
        user_id=row.user_id,
        username=row.username,
        skills=tuple(row.skills),
        categories=tuple(row.categories),
        bio=row.bio,
        auto_bio=row.auto_bio,
        completed_count=row.completed_count,
        average_rating=row.average_rating,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SqlExpertRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _one(self, condition: ColumnElement[bool]) -> ExpertProfile | None:
        statement = select(*_COLUMNS).join(_U, _U.id == _E.user_id).where(condition, _U.is_active.is_(True))
        row = (await self._session.execute(statement)).first()
        return None if row is None else _to_profile(row)

    async def _set_categories(self, expert_id: uuid.UUID, categories: tuple[str, ...]) -> None:
        await self._session.execute(delete(_C).where(_C.expert_id == expert_id))
        if categories:
            await self._session.execute(
                insert(_C), [{"id": uuid.uuid4(), "expert_id": expert_id, "category": c} for c in categories]
            )

    async def insert(self, user_id: uuid.UUID, draft: ExpertDraft, now: datetime.datetime) -> ExpertProfile | None:
        expert_id = uuid.uuid4()
        statement = insert(_E).values(
            id=expert_id,
            user_id=user_id,
            skills=list(draft.skills or ()),
            categories=list(draft.categories or ()),
            bio=draft.bio or "",
            auto_bio="",
            completed_count=0,
            created_at=now,
            updated_at=now,
        )
        try:
            # A savepoint keeps the surrounding transaction usable after a duplicate.
            async with self._session.begin_nested():
                await self._session.execute(statement)
        except IntegrityError:
            return None
        await self._set_categories(expert_id, draft.categories or ())
        return await self._one(_E.id == expert_id)

    async def get(self, expert_id: uuid.UUID) -> ExpertProfile | None:
        return await self._one(_E.id == expert_id)

    async def update(self, user_id: uuid.UUID, changes: ExpertDraft, now: datetime.datetime) -> ExpertProfile | None:
        values: dict[str, Any] = {"updated_at": now}
        if changes.skills is not None:
            values["skills"] = list(changes.skills)
        if changes.categories is not None:
            values["categories"] = list(changes.categories)
        if changes.bio is not None:
            values["bio"] = changes.bio
        statement = update(_E).where(_E.user_id == user_id).values(**values).returning(_E.id)
        expert_id = (await self._session.execute(statement)).scalar_one_or_none()
        if expert_id is None:
            return None
        if changes.categories is not None:
            await self._set_categories(expert_id, changes.categories)
        return await self._one(_E.id == expert_id)

    async def search(
        self, sort: ExpertSort, category: str | None, limit: int, offset: int
    ) -> tuple[list[ExpertProfile], int]:
        conditions: list[ColumnElement[bool]] = [_U.is_active.is_(True)]
        if category is not None:
            conditions.append(_E.id.in_(select(_C.expert_id).where(_C.category == category)))
        page = (
            select(*_COLUMNS, func.count().over().label("total"))
            .join(_U, _U.id == _E.user_id)
            .where(*conditions)
            .order_by(*_ORDERINGS[sort])
            .limit(limit)
            .offset(offset)
        )
        rows = (await self._session.execute(page)).all()
        if rows:
            return [_to_profile(row) for row in rows], int(rows[0].total)
        if offset == 0:
            return [], 0
        count = select(func.count()).select_from(_E).join(_U, _U.id == _E.user_id).where(*conditions)
        return [], int((await self._session.execute(count)).scalar_one())

    async def tallies(self, after: uuid.UUID | None, batch_size: int) -> tuple[list[uuid.UUID], list[CategoryTally]]:
        batch = select(_E.id, _E.user_id).order_by(_E.id).limit(batch_size)
        if after is not None:
            batch = batch.where(_E.id > after)
        experts = batch.subquery("batch")
        completed = and_(_T.taker_id == experts.c.user_id, _T.status == TaskStatus.COMPLETED.value)
        statement = (
            select(
                experts.c.id,
                _T.category,
                func.count(_T.id).label("completed"),
                func.coalesce(func.sum(_T.rating), 0).label("rating_sum"),
                func.count(_T.rating).label("rated"),
            )
            .select_from(experts.outerjoin(_T, completed))
            .group_by(experts.c.id, _T.category)
            .order_by(experts.c.id)
        )
        rows = (await self._session.execute(statement)).all()
        expert_ids = list(dict.fromkeys(row.id for row in rows))
        tallies = [
            CategoryTally(
                expert_id=row.id,
                category=row.category,
                completed=int(row.completed),
                rating_sum=int(row.rating_sum),
                rated=int(row.rated),
            )
            for row in rows
        ]
        return expert_ids, tallies

    async def save_stats(self, stats: Sequence[ExpertStats]) -> None:
        if not stats:
            return
        await self._session.execute(
            update(_E),
            [
                {
                    "id": item.expert_id,
                    "completed_count": item.completed_count,
                    "average_rating": item.average_rating,
                    "auto_bio": item.auto_bio,
                }
                for item in stats
            ],
        )
