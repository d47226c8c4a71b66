"""Tasks under real concurrency (PostgreSQL): every call its own session and transaction, all at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TypeVar

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.coupons.model import CouponKind
from app.domain.coupons.service import CouponService
from app.domain.points.service import PointsService
from app.domain.shared.errors import DomainError
from app.domain.tasks.model import Task, TaskDraft, TaskStatus
from app.domain.tasks.service import TaskService
from app.domain.users.model import Principal, Role
from app.infra.db.coupon_tables import CouponRecord
from app.infra.db.coupons import SqlCouponRepository
from app.infra.db.notifications import SqlNotifications
from app.infra.db.points import SqlPointsLedger
from app.infra.db.tables import PointHoldRecord, PointLotRecord, PointTransactionRecord
from app.infra.db.task_tables import TaskRecord
from app.infra.db.tasks import SqlTaskRepository, cancel_expired_statement
from app.infra.db.unit_of_work import SessionUnitOfWork
from tests.integration.coupon_harness import POLICY, Coupons, FixedClock, coupons_on

pytestmark = pytest.mark.postgres

T = TypeVar("T")


def task_service(session: AsyncSession, clock: FixedClock) -> TaskService:
    uow = SessionUnitOfWork(session)
    points = PointsService(SqlPointsLedger(session), uow, clock, POLICY)
    coupons = CouponService(SqlCouponRepository(session), points, uow, clock)
    return TaskService(SqlTaskRepository(session), points, coupons, SqlNotifications(session, clock), uow, clock)


class Tasks:
    def __init__(self, world: Coupons) -> None:
        self.world = world
        self.clock = world.clock

    async def run(self, action: Callable[[TaskService], Awaitable[T]]) -> T:
        async with self.world.sessions() as session:
            result = await action(task_service(session, self.clock))
            await session.commit()
            return result

    async def funded(self, count: int, points: int) -> list[uuid.UUID]:
        users = await self.world.users(count)
        async with self.world.sessions() as session:
            service = PointsService(SqlPointsLedger(session), SessionUnitOfWork(session), self.clock, POLICY)
            for user in users:
                await service.grant(user, points)
            await session.commit()
        return users

    async def post(self, poster: uuid.UUID, reward: int = 100, hours: float = 1) -> Task:
        draft = TaskDraft(
            title="Walk the dog",
            description="Twice round the park.",
            category="pets",
            reward_points=reward,
            deadline=self.clock.now() + timedelta(hours=hours),
        )
        return await self.run(lambda s: s.post(poster, draft))


@asynccontextmanager
async def tasks_on(url: str) -> AsyncIterator[Tasks]:
    async with coupons_on(url, FixedClock()) as world:
        yield Tasks(world)


def _user(user_id: uuid.UUID) -> Principal:
    return Principal(id=user_id, username="u", role=Role.USER)


async def _outcome(call: Awaitable[T]) -> T | str:
    try:
        return await call
    except DomainError as error:
        return error.code


async def test_fifty_simultaneous_takes_of_one_task_one_taker(pg_url: str) -> None:
    async with tasks_on(pg_url) as tasks:
        (poster,) = await tasks.funded(1, 100)
        takers = await tasks.world.users(50)
        task = await tasks.post(poster)
        outcomes = await asyncio.gather(
            *(_outcome(tasks.run(lambda s, u=u: s.take(_user(u), task.id))) for u in takers)
        )
        winners = [outcome for outcome in outcomes if isinstance(outcome, Task)]
        assert len(winners) == 1
        assert {outcome for outcome in outcomes if isinstance(outcome, str)} == {"invalid_transition"}
        stored = await tasks.run(lambda s: s.get(task.id))
        assert (stored.status, stored.taker_id) == (TaskStatus.TAKEN, winners[0].taker_id)


async def test_takes_racing_the_expiry_job_never_both_take_and_cancel(pg_url: str) -> None:
    rounds = 1000  # QUALITY R5: racing the expiry job 1,000 times
    async with tasks_on(pg_url) as tasks:
        (poster,) = await tasks.funded(1, 100 * rounds)
        (taker,) = await tasks.world.users(1)
        taken: list[Task] = []
        expired = 0
        for _ in range(rounds):
            task = await tasks.post(poster, reward=100)
            # the take still sees the deadline ahead; the job already sees it past
            after_deadline = task.deadline + timedelta(seconds=1)
            take, swept = await asyncio.gather(
                _outcome(tasks.run(lambda s, t=task: s.take(_user(taker), t.id))),
                tasks.run(lambda s, when=after_deadline: s.cancel_expired(when, 10)),
            )
            assert (take == "invalid_transition") == (swept == 1), (take, swept)
            if isinstance(take, Task):
                taken.append(take)
            expired += swept
        assert len(taken) + expired == rounds
        async with tasks.world.sessions() as session:
            rows = (
                await session.execute(
                    select(TaskRecord.status, TaskRecord.cancel_reason, PointHoldRecord.status).join(
                        PointHoldRecord, PointHoldRecord.id == TaskRecord.hold_id
                    )
                )
            ).all()
        states = {(row[0], row[1], row[2]) for row in rows}
        assert states <= {("taken", None, "held"), ("cancelled", "expired", "released")}
        # the poster's balance plus what is still held is what they had
        balance, ledger = await tasks.world.balance(poster)
        assert balance == ledger == 100 * rounds - 100 * len(taken)
        # nothing is left to expire: each task changed exactly once
        assert await tasks.run(lambda s: s.cancel_expired(tasks.clock.now() + timedelta(days=1), 10)) == 0


async def test_two_simultaneous_completes_pay_the_taker_once(pg_url: str) -> None:
    async with tasks_on(pg_url) as tasks:
        (poster,) = await tasks.funded(1, 100)
        (taker,) = await tasks.world.users(1)
        task = await tasks.post(poster, reward=70)
        await tasks.run(lambda s: s.take(_user(taker), task.id))
        outcomes = await asyncio.gather(
            *(_outcome(tasks.run(lambda s: s.complete(_user(poster), task.id, 4))) for _ in range(10))
        )
        assert len([outcome for outcome in outcomes if isinstance(outcome, Task)]) == 1
        assert {outcome for outcome in outcomes if isinstance(outcome, str)} == {"invalid_transition"}
        assert await tasks.world.balance(taker) == (70, 70)
        assert await tasks.world.balance(poster) == (30, 30)
        async with tasks.world.sessions() as session:
            payments = await session.scalar(
                select(func.count()).where(
                    PointTransactionRecord.user_id == taker, PointTransactionRecord.reference == f"task:{task.id}"
                )
            )
        assert payments == 1


async def test_overlapping_expiry_runs_expire_each_task_once(pg_url: str) -> None:
    async with tasks_on(pg_url) as tasks:
        (poster,) = await tasks.funded(1, 10 * 60)
        for _ in range(60):
            await tasks.post(poster, reward=10)
        later = tasks.clock.now() + timedelta(days=1)

        async def job() -> int:
            total = 0
            while (count := await tasks.run(lambda s: s.cancel_expired(later, 7))) > 0:
                total += count
            return total

        assert sum(await asyncio.gather(*(job() for _ in range(4)))) == 60
        assert await tasks.world.balance(poster) == (600, 600)


async def test_one_expiry_batch_restores_coupons_and_the_expiry_of_every_held_point(pg_url: str) -> None:
    """A batch mixing tasks with and without a coupon: each hold goes back to lots with its own expiry."""
    async with tasks_on(pg_url) as tasks:
        (poster,) = await tasks.world.users(1)
        soon = tasks.clock.now() + timedelta(days=10)
        late = tasks.clock.now() + timedelta(days=365)
        async with tasks.world.sessions() as session:
            points = PointsService(SqlPointsLedger(session), SessionUnitOfWork(session), tasks.clock, POLICY)
            await points.grant(poster, 30, expires_at=soon)
            await points.grant(poster, 1000, expires_at=late)
            await session.commit()
        template = await tasks.world.template(kind=CouponKind.TASK_DISCOUNT, value=30, min_reward=50)
        coupon = await tasks.world.run(lambda s: s.claim(poster, template))

        # 20 from the soon lot; 70 (100 less the coupon) as 10 soon + 60 late; 50 late
        await tasks.post(poster, reward=20)
        discounted = TaskDraft(
            title="Paint the fence",
            description="Two coats.",
            category="home",
            reward_points=100,
            deadline=tasks.clock.now() + timedelta(hours=1),
            coupon_id=coupon.id,
        )
        await tasks.run(lambda s: s.post(poster, discounted))
        await tasks.post(poster, reward=50)
        assert await tasks.world.balance(poster) == (1030 - 140, 1030 - 140)

        assert await tasks.run(lambda s: s.cancel_expired(tasks.clock.now() + timedelta(days=1), 10)) == 3

        assert await tasks.world.balance(poster) == (1030, 1030)
        async with tasks.world.sessions() as session:
            spendable = {
                expires_at: int(remaining)
                for expires_at, remaining in await session.execute(
                    select(PointLotRecord.expires_at, func.sum(PointLotRecord.remaining))
                    .where(PointLotRecord.user_id == poster, PointLotRecord.remaining > 0)
                    .group_by(PointLotRecord.expires_at)
                )
            }
            restored = await session.get_one(CouponRecord, coupon.id)
            open_holds = await session.scalar(
                select(func.count()).where(PointHoldRecord.user_id == poster, PointHoldRecord.status == "held")
            )
        assert spendable == {soon: 30, late: 1000}
        assert (restored.status, restored.task_id, restored.used_at) == ("claimed", None, None)
        assert open_holds == 0


async def test_the_expiry_job_with_nothing_due_uses_an_index(pg_url: str) -> None:
    async with tasks_on(pg_url) as tasks, tasks.world.sessions() as session:
        sql = str(
            cancel_expired_statement(tasks.clock.now(), 1000).compile(
                dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
            )
        )
        await session.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(row[0] for row in await session.execute(text(f"EXPLAIN {sql}")))
        assert "ix_tasks_open_deadline" in plan, plan
