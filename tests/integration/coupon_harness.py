"""Runs the coupon service on a real database, each call in its own session, like concurrent requests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from app.domain.coupons.model import CouponKind, CouponValidity, TemplateDraft
from app.domain.coupons.service import CouponService
from app.domain.points.service import PointsPolicy, PointsService
from app.domain.users.model import Principal, Role
from app.infra.db.coupons import SqlCouponRepository
from app.infra.db.points import SqlPointsLedger, ledger_entries
from app.infra.db.tables import UserRecord
from app.infra.db.unit_of_work import SessionUnitOfWork
from tests.support import user_row

T = TypeVar("T")
POLICY = PointsPolicy(lot_lifetime=timedelta(days=365))
ADMIN = Principal(id=uuid.uuid4(), username="root", role=Role.ADMIN)


class FixedClock:
    def __init__(self, now: datetime | None = None) -> None:
        self.current = now or datetime.now(UTC)

    def now(self) -> datetime:
        return self.current


def coupon_service(session: AsyncSession, clock: FixedClock) -> CouponService:
    uow = SessionUnitOfWork(session)
    points = PointsService(SqlPointsLedger(session), uow, clock, POLICY)
    return CouponService(SqlCouponRepository(session), points, uow, clock)


def draft(clock: FixedClock, **overrides: Any) -> TemplateDraft:
    values: dict[str, Any] = {
        "name": "Welcome",
        "kind": CouponKind.POINTS_BONUS,
        "value": 50,
        "total_quantity": 10,
        "per_user_limit": 1,
        "valid_from": clock.now() - timedelta(days=1),
        "valid_until": clock.now() + timedelta(days=7),
        "validity": CouponValidity(days=30),
        "min_reward": None,
    }
    values.update(overrides)
    return TemplateDraft(**values)


class Coupons:
    def __init__(self, engine: AsyncEngine, clock: FixedClock) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.clock = clock

    async def run(self, action: Callable[[CouponService], Awaitable[T]]) -> T:
        """One call in its own session; commits what the service left uncommitted (as a caller's transaction)."""
        async with self.sessions() as session:
            result = await action(coupon_service(session, self.clock))
            await session.commit()
            return result

    async def template(self, **overrides: Any) -> uuid.UUID:
        return (await self.run(lambda s: s.create_template(ADMIN, draft(self.clock, **overrides)))).id

    async def users(self, count: int) -> list[uuid.UUID]:
        """``count`` users in one statement."""
        now = self.clock.now()
        rows = [user_row(f"u{uuid.uuid4().hex[:12]}", Role.USER, now) for _ in range(count)]
        async with self.sessions() as session:
            await session.execute(insert(UserRecord), rows)
            await session.commit()
        return [row["id"] for row in rows]

    async def user(self) -> uuid.UUID:
        return (await self.users(1))[0]

    async def balance(self, user_id: uuid.UUID) -> tuple[int, int]:
        """(balance as the points service reports it, sum of the user's ledger)."""
        async with self.sessions() as session:
            points = PointsService(SqlPointsLedger(session), SessionUnitOfWork(session), self.clock, POLICY)
            balance = (await points.summary(user_id)).balance
            entries = ledger_entries().subquery()
            ledger = await session.scalar(
                select(func.coalesce(func.sum(entries.c.amount), 0)).where(entries.c.user_id == user_id)
            )
        return balance, int(ledger or 0)


@asynccontextmanager
async def coupons_on(url: str, clock: FixedClock | None = None) -> AsyncIterator[Coupons]:
    # A bounded pool (the test server allows 100 connections in all); more callers than
    # connections still contend for the same rows, the rest wait for a connection.
    options = {} if url.startswith("sqlite") else {"pool_size": 30, "max_overflow": 10, "pool_timeout": 60}
    engine = create_async_engine(url, **options)
    try:
        yield Coupons(engine, clock or FixedClock())
    finally:
        await engine.dispose()
