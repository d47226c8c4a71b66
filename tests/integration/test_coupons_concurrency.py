"""Coupons under real concurrency (PostgreSQL): every call its own session and transaction, all at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.dialects import postgresql

from app.domain.coupons.model import CouponKind, CouponValidity
from app.domain.shared.errors import DomainError
from app.infra.db.coupon_tables import CouponRecord, CouponTemplateRecord
from app.infra.db.coupons import close_templates_statement, expire_coupons_statement
from app.infra.db.tables import PointTransactionRecord
from tests.integration.coupon_harness import FixedClock, coupons_on

pytestmark = pytest.mark.postgres

T = TypeVar("T")
SweepStatement = Callable[[datetime, int], Any]


async def _outcome(call: Awaitable[T]) -> T | str:
    """The result, or the code of the domain error that refused the call."""
    try:
        return await call
    except DomainError as error:
        return error.code


async def test_two_hundred_simultaneous_redeems_of_one_coupon_one_wins_and_pays_once(pg_url: str) -> None:
    async with coupons_on(pg_url) as coupons:
        user = await coupons.user()
        template_id = await coupons.template(value=40)
        coupon = await coupons.run(lambda s: s.claim(user, template_id))

        outcomes = await asyncio.gather(
            *(_outcome(coupons.run(lambda s: s.redeem(user, coupon.id))) for _ in range(200))
        )
        winners = [outcome for outcome in outcomes if not isinstance(outcome, str)]
        assert len(winners) == 1
        assert sorted({outcome for outcome in outcomes if isinstance(outcome, str)}) == ["already_used"]
        assert await coupons.balance(user) == (40, 40)
        async with coupons.sessions() as session:
            grants = await session.scalar(
                select(func.count()).where(PointTransactionRecord.reference == f"coupon:{coupon.id}")
            )
        assert grants == 1


async def test_five_hundred_simultaneous_claims_of_a_hundred_issue_exactly_a_hundred(pg_url: str) -> None:
    async with coupons_on(pg_url) as coupons:
        users = await coupons.users(500)
        template_id = await coupons.template(total_quantity=100, per_user_limit=1)

        outcomes = await asyncio.gather(*(_outcome(coupons.run(lambda s, u=u: s.claim(u, template_id))) for u in users))
        refusals = [outcome for outcome in outcomes if isinstance(outcome, str)]
        assert len(outcomes) - len(refusals) == 100
        assert set(refusals) == {"sold_out"}
        async with coupons.sessions() as session:
            issued = await session.scalar(select(func.count()).where(CouponRecord.template_id == template_id))
            owners = await session.scalar(
                select(func.count(func.distinct(CouponRecord.owner_id))).where(CouponRecord.template_id == template_id)
            )
            counted = await session.scalar(
                select(CouponTemplateRecord.claimed_count).where(CouponTemplateRecord.id == template_id)
            )
        assert (issued, owners, counted) == (100, 100, 100)


async def test_twenty_simultaneous_claims_by_one_user_with_a_limit_of_two_get_exactly_two(pg_url: str) -> None:
    async with coupons_on(pg_url) as coupons:
        user, other = await coupons.users(2)
        template_id = await coupons.template(total_quantity=50, per_user_limit=2)

        outcomes = await asyncio.gather(
            *(_outcome(coupons.run(lambda s: s.claim(user, template_id))) for _ in range(20))
        )
        refusals = [outcome for outcome in outcomes if isinstance(outcome, str)]
        assert len(outcomes) - len(refusals) == 2
        assert set(refusals) == {"limit_reached"}
        async with coupons.sessions() as session:
            owned = await session.scalar(select(func.count()).where(CouponRecord.owner_id == user))
            counted = await session.scalar(
                select(CouponTemplateRecord.claimed_count).where(CouponTemplateRecord.id == template_id)
            )
        assert (owned, counted) == (2, 2)  # the 18 refused claims gave their places back
        await coupons.run(lambda s: s.claim(other, template_id))


async def test_simultaneous_claims_mixing_users_hold_both_limits(pg_url: str) -> None:
    async with coupons_on(pg_url) as coupons:
        users = await coupons.users(10)
        template_id = await coupons.template(total_quantity=15, per_user_limit=2)
        calls = [coupons.run(lambda s, u=u: s.claim(u, template_id)) for u in users for _ in range(5)]
        outcomes = await asyncio.gather(*(_outcome(call) for call in calls))
        assert len([outcome for outcome in outcomes if not isinstance(outcome, str)]) == 15
        async with coupons.sessions() as session:
            per_user = (
                await session.execute(
                    select(func.count()).where(CouponRecord.template_id == template_id).group_by(CouponRecord.owner_id)
                )
            ).scalars()
            assert max(per_user) <= 2


async def test_fifty_tasks_racing_for_one_task_coupon_one_gets_it(pg_url: str) -> None:
    async with coupons_on(pg_url) as coupons:
        user = await coupons.user()
        template_id = await coupons.template(kind=CouponKind.TASK_DISCOUNT, value=10, min_reward=50)
        coupon = await coupons.run(lambda s: s.claim(user, template_id))
        tasks = [uuid.uuid4() for _ in range(50)]
        outcomes = await asyncio.gather(
            *(_outcome(coupons.run(lambda s, t=t: s.reserve_for_task(user, coupon.id, t, 80))) for t in tasks)
        )
        assert outcomes.count(10) == 1
        assert outcomes.count("already_used") == 49
        async with coupons.sessions() as session:
            task_id = await session.scalar(select(CouponRecord.task_id).where(CouponRecord.id == coupon.id))
        assert task_id == tasks[outcomes.index(10)]


async def test_overlapping_expiry_sweeps_expire_every_coupon_once(pg_url: str) -> None:
    clock = FixedClock()
    async with coupons_on(pg_url, clock) as coupons:
        users = await coupons.users(200)
        templates = [await coupons.template(total_quantity=200, validity=CouponValidity(days=1)) for _ in range(3)]
        await asyncio.gather(*(coupons.run(lambda s, u=u, t=t: s.claim(u, t)) for u in users for t in templates))
        later = clock.now() + timedelta(days=30)  # past every coupon's expiry and every template's window

        async def sweep() -> int:
            total = 0
            while (count := await coupons.run(lambda s: s.expire_due(later, 25))) > 0:
                total += count
            return total

        counts = await asyncio.gather(*(sweep() for _ in range(4)))
        assert sum(counts) == 600 + 3  # each coupon expired and each template closed by exactly one sweep
        async with coupons.sessions() as session:
            statuses = dict(
                (await session.execute(select(CouponRecord.status, func.count()).group_by(CouponRecord.status))).all()
            )
            closed = await session.scalar(select(func.count()).where(CouponTemplateRecord.status == "closed"))
        assert statuses == {"expired": 600}
        assert closed == 3


async def test_redeems_racing_the_sweep_either_pay_or_expire_never_both(pg_url: str) -> None:
    clock = FixedClock()
    async with coupons_on(pg_url, clock) as coupons:
        users = await coupons.users(100)
        template_id = await coupons.template(total_quantity=100, value=5, validity=CouponValidity(days=1))
        claimed = await asyncio.gather(*(coupons.run(lambda s, u=u: s.claim(u, template_id)) for u in users))
        # the redeems still see the coupons valid; the sweep already sees them past expiry
        sweep_time = clock.now() + timedelta(days=2)

        async def sweep() -> int:
            total = 0
            while (count := await coupons.run(lambda s: s.expire_due(sweep_time, 10))) > 0:
                total += count
            return total

        redeems = [_outcome(coupons.run(lambda s, c=c: s.redeem(c.owner_id, c.id))) for c in claimed]
        outcomes = await asyncio.gather(sweep(), *redeems)
        paid = [outcome for outcome in outcomes[1:] if not isinstance(outcome, str)]
        assert outcomes[0] + len(paid) == 100
        for coupon in claimed:
            balance = await coupons.balance(coupon.owner_id)
            assert balance in {(0, 0), (5, 5)}
        async with coupons.sessions() as session:
            statuses = dict(
                (await session.execute(select(CouponRecord.status, func.count()).group_by(CouponRecord.status))).all()
            )
        assert statuses.get("used", 0) == len(paid)
        assert statuses.get("expired", 0) == outcomes[0]


@pytest.mark.parametrize("statement", [expire_coupons_statement, close_templates_statement])
async def test_a_sweep_with_nothing_due_uses_an_index(pg_url: str, statement: SweepStatement) -> None:
    clock = FixedClock()
    async with coupons_on(pg_url, clock) as coupons, coupons.sessions() as session:
        # the very statement the repository runs, with its parameters inlined
        sql = str(
            statement(clock.now(), 1000).compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
        )
        await session.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(row[0] for row in await session.execute(text(f"EXPLAIN {sql}")))
        index = "ix_coupons_due" if statement is expire_coupons_statement else "ix_coupon_templates_due"
        assert index in plan, plan
