"""Runs the activity service on a real database, each call in its own session, like concurrent requests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.domain.activities.model import ActivityDraft
from app.domain.activities.service import ActivityService, ActivityView
from app.domain.points.service import PointsService
from app.domain.users.model import Principal, Role
from app.infra.db.activities import SqlActivityRepository
from app.infra.db.notifications import SqlNotifications
from app.infra.db.points import SqlPointsLedger
from app.infra.db.tables import PointTransactionRecord
from app.infra.db.unit_of_work import SessionUnitOfWork
from tests.integration.coupon_harness import POLICY, Coupons, FixedClock

T = TypeVar("T")


def activity_service(session: AsyncSession, clock: FixedClock) -> ActivityService:
    uow = SessionUnitOfWork(session)
    points = PointsService(SqlPointsLedger(session), uow, clock, POLICY)
    return ActivityService(SqlActivityRepository(session), points, SqlNotifications(session, clock), uow, clock)


def person(user_id: uuid.UUID, role: Role = Role.USER) -> Principal:
    return Principal(id=user_id, username="u", role=role)


class Activities:
    def __init__(self, world: Coupons) -> None:
        self.world = world
        self.clock = world.clock

    async def run(self, action: Callable[[ActivityService], Awaitable[T]]) -> T:
        async with self.world.sessions() as session:
            result = await action(activity_service(session, self.clock))
            await session.commit()
            return result

    async def create(self, creator: uuid.UUID, **overrides: Any) -> ActivityView:
        values: dict[str, Any] = {
            "title": "Park clean-up",
            "description": "Bring gloves.",
            "starts_at": self.clock.now() + timedelta(hours=1),
            "ends_at": self.clock.now() + timedelta(hours=3),
            "capacity": 10,
            "reward_points": 25,
        }
        values.update(overrides)
        return await self.run(lambda s: s.create(person(creator, Role.EXPERT), ActivityDraft(**values)))

    async def earned(self, user_id: uuid.UUID) -> tuple[int, int]:
        """(how many activity-reward ledger rows the user has, their total)."""
        async with self.world.sessions() as session:
            row = (
                await session.execute(
                    select(func.count(), func.coalesce(func.sum(PointTransactionRecord.amount), 0)).where(
                        PointTransactionRecord.user_id == user_id,
                        PointTransactionRecord.idempotency_key.like("activity-reward:%"),
                    )
                )
            ).one()
        return int(row[0]), int(row[1])


@asynccontextmanager
async def activities_on(url: str, clock: FixedClock | None = None) -> AsyncIterator[Activities]:
    # At most 25 connections (the test server is shared): more callers than connections
    # still contend for the same rows; the rest wait for a connection.
    options = {} if url.startswith("sqlite") else {"pool_size": 25, "max_overflow": 0, "pool_timeout": 120}
    engine = create_async_engine(url, **options)
    try:
        yield Activities(Coupons(engine, clock or FixedClock()))
    finally:
        await engine.dispose()
