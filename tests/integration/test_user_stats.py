"""User statistics: every figure of a small fixture, the set-based recomputation and the public endpoint,
on both databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app.domain.coupons.service import CouponService
from app.domain.points.service import PointsService
from app.domain.stats.model import UserStats
from app.domain.stats.service import StatsService
from app.domain.tasks.model import TaskDraft
from app.domain.tasks.service import TaskService
from app.domain.users.model import Role
from app.infra.db.coupons import SqlCouponRepository
from app.infra.db.notifications import SqlNotifications
from app.infra.db.points import SqlPointsLedger
from app.infra.db.stats import SqlStatsRepository
from app.infra.db.stats_tables import UserStatsRecord
from app.infra.db.tables import UserRecord
from app.infra.db.tasks import SqlTaskRepository
from app.infra.db.unit_of_work import SessionUnitOfWork
from tests.integration.activity_harness import Activities, activities_on, person
from tests.integration.coupon_harness import POLICY, FixedClock
from tests.support import bearer, login, make_settings, register, running_app, set_role


def stats_service(session: AsyncSession, clock: FixedClock) -> StatsService:
    return StatsService(SqlStatsRepository(session), SessionUnitOfWork(session), clock)


def task_service(session: AsyncSession, clock: FixedClock) -> TaskService:
    uow = SessionUnitOfWork(session)
    points = PointsService(SqlPointsLedger(session), uow, clock, POLICY)
    coupons = CouponService(SqlCouponRepository(session), points, uow, clock)
    return TaskService(SqlTaskRepository(session), points, coupons, SqlNotifications(session, clock), uow, clock)


@contextmanager
def _statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", count)


class _Fixture:
    """Three users with tasks posted, taken, completed and rated, activities joined and points."""

    def __init__(self, activities: Activities) -> None:
        self.activities = activities
        self.world = activities.world
        self.clock = activities.clock

    async def tasks(self, action: Any) -> Any:
        async with self.world.sessions() as session:
            result = await action(task_service(session, self.clock))
            await session.commit()
            return result

    async def stats(self, action: Any) -> Any:
        async with self.world.sessions() as session:
            return await action(stats_service(session, self.clock))

    async def post(self, poster: uuid.UUID, reward: int) -> uuid.UUID:
        draft = TaskDraft(
            title="Walk the dog",
            description="Twice round the park.",
            category="pets",
            reward_points=reward,
            deadline=self.clock.now() + timedelta(days=1),
        )
        return (await self.tasks(lambda s: s.post(poster, draft))).id  # type: ignore[no-any-return]

    async def build(self) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID]:
        ada, bob, cat, nobody = await self.world.users(4)
        async with self.world.sessions() as session:
            points = PointsService(SqlPointsLedger(session), SessionUnitOfWork(session), self.clock, POLICY)
            await points.grant(ada, 1000)
            await points.grant(bob, 300)
            await session.commit()
        # ada posts five: bob completes two (rated 4 and 2), cat holds one, one stays open, one is cancelled
        t1, t2, t3, _open, t5 = [await self.post(ada, reward) for reward in (100, 50, 30, 20, 10)]
        for task, taker, rating in ((t1, bob, 4), (t2, bob, 2)):
            await self.tasks(lambda s, t=task, u=taker: s.take(person(u), t))
            await self.tasks(lambda s, t=task, r=rating: s.complete(person(ada), t, r))
        await self.tasks(lambda s: s.take(person(cat), t3))
        self.in_progress = t3
        await self.tasks(lambda s: s.cancel(person(ada), t5))
        # bob posts one, cat completes it unrated
        t6 = await self.post(bob, 60)
        await self.tasks(lambda s: s.take(person(cat), t6))
        await self.tasks(lambda s: s.complete(person(bob), t6, None))
        # ada and bob join one activity, bob another; cat's activity is cancelled (which releases her)
        a, b, c = [(await self.activities.create(nobody, capacity=5)).activity.id for _ in range(3)]
        for activity, user in ((a, ada), (a, bob), (b, bob), (c, cat)):
            await self.activities.run(lambda s, x=activity, u=user: s.join(person(u), x))
        await self.activities.run(lambda s: s.cancel(person(nobody, Role.ADMIN), c))
        return ada, bob, cat, nobody


def _figures(stats: UserStats) -> tuple[Any, ...]:
    return (
        stats.tasks_posted,
        stats.tasks_taken,
        stats.tasks_completed,
        stats.completion_rate,
        stats.ratings_count,
        stats.average_rating,
        stats.activities_joined,
        stats.points_balance,
    )


async def test_recompute_all_stores_every_figure_of_every_user(database_url: str) -> None:
    async with activities_on(database_url) as activities:
        fixture = _Fixture(activities)
        ada, bob, cat, nobody = await fixture.build()
        # balances: ada 1000 - 100 - 50 - 30 - 20 (held; 10 came back) = 800; bob 300 - 60 + 150 = 390; cat 60
        expected = {
            ada: (5, 0, 0, None, 0, None, 1, 800),
            bob: (1, 2, 2, 1.0, 2, 3.0, 2, 390),
            cat: (0, 2, 1, 0.5, 0, None, 0, 60),
            nobody: (0, 0, 0, None, 0, None, 0, 0),
        }
        for user in expected:
            assert (await activities.world.balance(user))[0] == expected[user][-1]  # the ledger agrees

        assert await fixture.stats(lambda s: s.recompute_all()) == 4
        for user, figures in expected.items():
            stored = await fixture.stats(lambda s, u=user: s.get(u))
            assert _figures(stored) == figures, user
            assert stored.computed_at == fixture.clock.now()

        # a later run rewrites the same rows with the new figures and time
        await fixture.tasks(lambda s: s.complete(person(ada), fixture.in_progress, 5))
        fixture.clock.current += timedelta(minutes=10)
        assert _figures(await fixture.stats(lambda s: s.get(cat))) == expected[cat]  # until the next run
        assert await fixture.stats(lambda s: s.recompute_all()) == 4
        assert _figures(await fixture.stats(lambda s: s.get(cat))) == (0, 2, 2, 1.0, 1, 5.0, 0, 90)
        async with activities.world.sessions() as session:
            rows = (await session.execute(select(UserStatsRecord.user_id, UserStatsRecord.computed_at))).all()
        assert len(rows) == 4
        assert {row.computed_at for row in rows} == {fixture.clock.now()}


async def test_a_user_not_computed_yet_gets_the_same_figures_computed_on_the_spot(database_url: str) -> None:
    async with activities_on(database_url) as activities:
        fixture = _Fixture(activities)
        users = await fixture.build()
        on_the_spot = {user: await fixture.stats(lambda s, u=user: s.get(u)) for user in users}
        await fixture.stats(lambda s: s.recompute_all())
        for user in users:
            stored = await fixture.stats(lambda s, u=user: s.get(u))
            assert _figures(stored) == _figures(on_the_spot[user])


async def test_recompute_all_issues_the_same_statements_for_3_and_30_users(database_url: str) -> None:
    async with activities_on(database_url) as activities:
        fixture = _Fixture(activities)
        counts = []
        for count in (3, 30):
            users = await activities.world.users(count)
            async with activities.world.sessions() as session:
                points = PointsService(SqlPointsLedger(session), SessionUnitOfWork(session), fixture.clock, POLICY)
                for user in users:
                    await points.grant(user, 5)
                await session.commit()
            with _statements() as seen:
                await fixture.stats(lambda s: s.recompute_all())
            counts.append(len(seen))
        assert counts[0] == counts[1] <= 2, counts  # the upsert (and SQLite's BEGIN)


async def test_the_stats_endpoint(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        ids = {name: (await register(client, name))["id"] for name in ("root", "ada", "bob")}
        await set_role(database_url, "root", "admin")
        root, ada = bearer(await login(client, "root")), bearer(await login(client, "ada"))
        grant = {"user_id": ids["bob"], "amount": 70, "reason": "welcome", "idempotency_key": "bob-1"}
        assert (await client.post("/api/admin/points/grant", json=grant, headers=root)).status_code == 200

        path = f"/api/users/{ids['bob']}/stats"
        assert (await client.get(path)).status_code == 401
        unknown = await client.get(f"/api/users/{uuid.uuid4()}/stats", headers=ada)
        assert (unknown.status_code, unknown.json()["code"]) == (404, "user_not_found")
        # never recomputed: computed now from the same aggregation
        fresh = await client.get(path, headers=ada)
        assert fresh.status_code == 200, fresh.text
        body = fresh.json()
        assert body["user_id"] == ids["bob"]
        assert (body["points_balance"], body["tasks_posted"], body["completion_rate"], body["average_rating"]) == (
            70,
            0,
            None,
            None,
        )
        assert body["computed_at"] is not None

        when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        engine = create_async_engine(database_url)
        try:
            async with async_sessionmaker(engine, expire_on_commit=False)() as session:
                assert await stats_service(session, FixedClock(when)).recompute_all() == 3
        finally:
            await engine.dispose()
        grant = {"user_id": ids["bob"], "amount": 30, "reason": "more", "idempotency_key": "bob-2"}
        assert (await client.post("/api/admin/points/grant", json=grant, headers=root)).status_code == 200
        stored = (await client.get(path, headers=ada)).json()
        # the figures as of the last run, until the next one
        assert (stored["points_balance"], datetime.fromisoformat(stored["computed_at"])) == (70, when)

        engine = create_async_engine(database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(update(UserRecord).where(UserRecord.username == "bob").values(is_active=False))
        finally:
            await engine.dispose()
        gone = await client.get(path, headers=ada)
        assert (gone.status_code, gone.json()["code"]) == (404, "user_not_found")
