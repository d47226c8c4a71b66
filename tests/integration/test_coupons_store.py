"""Coupons on real databases (SQLite and PostgreSQL): the SQL adapter keeps the service's rules."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.domain.coupons.model import (
    Coupon,
    CouponFilter,
    CouponKind,
    CouponStatus,
    CouponValidity,
    TemplateChanges,
    TemplateFilter,
    TemplateStatus,
)
from app.domain.shared.errors import DomainError
from app.infra.db.coupon_tables import CouponRecord, CouponTemplateRecord
from tests.integration.coupon_harness import ADMIN, FixedClock, coupon_service, coupons_on

TASK_COUPON = {"kind": CouponKind.TASK_DISCOUNT, "value": 20, "min_reward": 100}


async def test_a_claimed_bonus_coupon_pays_its_value_once(database_url: str) -> None:
    async with coupons_on(database_url) as coupons:
        user = await coupons.user()
        template_id = await coupons.template(value=75)
        coupon = await coupons.run(lambda s: s.claim(user, template_id))
        assert coupon.status is CouponStatus.CLAIMED
        assert coupon.expires_at == coupons.clock.now() + timedelta(days=30)

        redemption = await coupons.run(lambda s: s.redeem(user, coupon.id))
        assert redemption.coupon.status is CouponStatus.USED
        assert redemption.coupon.used_at == coupons.clock.now()
        assert redemption.transaction.reference == f"coupon:{coupon.id}"
        with pytest.raises(DomainError) as again:
            await coupons.run(lambda s: s.redeem(user, coupon.id))
        assert again.value.code == "already_used"
        assert await coupons.balance(user) == (75, 75)


async def test_a_claim_over_the_per_user_limit_is_rolled_back_in_the_database(database_url: str) -> None:
    async with coupons_on(database_url) as coupons:
        user, other, third = await coupons.users(3)
        template_id = await coupons.template(total_quantity=2, per_user_limit=1)
        await coupons.run(lambda s: s.claim(user, template_id))
        with pytest.raises(DomainError) as refused:
            await coupons.run(lambda s: s.claim(user, template_id))
        assert refused.value.code == "limit_reached"
        templates, _ = await coupons.run(lambda s: s.list_templates(ADMIN, TemplateFilter(), 10, 0))
        assert templates[0].claimed_count == 1
        await coupons.run(lambda s: s.claim(other, template_id))  # the place was given back
        with pytest.raises(DomainError) as sold_out:
            await coupons.run(lambda s: s.claim(third, template_id))
        assert sold_out.value.code == "sold_out"


async def test_claims_outside_the_window_or_of_closed_templates_are_refused(database_url: str) -> None:
    clock = FixedClock()
    async with coupons_on(database_url, clock) as coupons:
        user = await coupons.user()
        later = await coupons.template(valid_from=clock.now() + timedelta(hours=1))
        closed = await coupons.template()
        await coupons.run(lambda s: s.close_template(ADMIN, closed))
        ending = await coupons.template(valid_until=clock.now() + timedelta(minutes=5))
        cases = [(later, "not_claimable"), (closed, "not_claimable"), (uuid.uuid4(), "template_not_found")]
        for template_id, code in cases:
            with pytest.raises(DomainError) as refused:
                await coupons.run(lambda s, t=template_id: s.claim(user, t))
            assert refused.value.code == code
        clock.current += timedelta(minutes=5)
        with pytest.raises(DomainError) as over:
            await coupons.run(lambda s: s.claim(user, ending))
        assert over.value.code == "not_claimable"


async def test_reserving_for_a_task_stands_or_falls_with_the_callers_transaction(database_url: str) -> None:
    async with coupons_on(database_url) as coupons:
        user = await coupons.user()
        template_id = await coupons.template(**TASK_COUPON)
        coupon = await coupons.run(lambda s: s.claim(user, template_id))
        task = uuid.uuid4()

        # the tasks context rolls back (say, the hold failed): the coupon is untouched
        async with coupons.sessions() as session:
            assert await coupon_service(session, coupons.clock).reserve_for_task(user, coupon.id, task, 150) == 20
            await session.rollback()
        stored = await coupons.run(lambda s: s.my_coupons(user, CouponFilter(), 10, 0))
        assert stored[0][0].status is CouponStatus.CLAIMED

        assert await coupons.run(lambda s: s.reserve_for_task(user, coupon.id, task, 150)) == 20
        assert await coupons.run(lambda s: s.reserve_for_task(user, coupon.id, task, 150)) == 20  # a retry
        used, _ = await coupons.run(lambda s: s.my_coupons(user, CouponFilter(), 10, 0))
        assert (used[0].status, used[0].task_id) == (CouponStatus.USED, task)
        with pytest.raises(DomainError) as taken:
            await coupons.run(lambda s: s.reserve_for_task(user, coupon.id, uuid.uuid4(), 150))
        assert taken.value.code == "already_used"

        assert await coupons.run(lambda s: s.release_from_task(coupon.id, task)) is True
        assert await coupons.run(lambda s: s.release_from_task(coupon.id, task)) is False
        released, _ = await coupons.run(lambda s: s.my_coupons(user, CouponFilter(), 10, 0))
        assert (released[0].status, released[0].task_id, released[0].used_at) == (CouponStatus.CLAIMED, None, None)


async def test_a_coupon_released_after_its_expiry_comes_back_expired(database_url: str) -> None:
    clock = FixedClock()
    async with coupons_on(database_url, clock) as coupons:
        user = await coupons.user()
        template_id = await coupons.template(**TASK_COUPON, validity=CouponValidity(days=1))
        coupon = await coupons.run(lambda s: s.claim(user, template_id))
        task = uuid.uuid4()
        await coupons.run(lambda s: s.reserve_for_task(user, coupon.id, task, 100))
        clock.current += timedelta(days=2)
        assert await coupons.run(lambda s: s.release_from_task(coupon.id, task)) is True
        async with coupons.sessions() as session:
            row = (await session.execute(select(CouponRecord).where(CouponRecord.id == coupon.id))).scalar_one()
        assert (row.status, row.expired_at, row.task_id) == ("expired", clock.now(), None)


async def test_reserve_refusals_name_the_reason(database_url: str) -> None:
    clock = FixedClock()
    async with coupons_on(database_url, clock) as coupons:
        user, intruder = await coupons.users(2)
        task_template = await coupons.template(**TASK_COUPON, validity=CouponValidity(days=1))
        bonus_template = await coupons.template()
        task_coupon = await coupons.run(lambda s: s.claim(user, task_template))
        bonus = await coupons.run(lambda s: s.claim(user, bonus_template))

        async def refusal(owner: uuid.UUID, coupon_id: uuid.UUID, reward: int) -> str:
            with pytest.raises(DomainError) as refused:
                await coupons.run(lambda s: s.reserve_for_task(owner, coupon_id, uuid.uuid4(), reward))
            return refused.value.code

        assert await refusal(user, task_coupon.id, 99) == "min_reward_not_met"
        assert await refusal(intruder, task_coupon.id, 500) == "coupon_not_found"
        assert await refusal(user, uuid.uuid4(), 500) == "coupon_not_found"
        assert await refusal(user, bonus.id, 500) == "wrong_kind"
        clock.current += timedelta(days=1)
        assert await refusal(user, task_coupon.id, 500) == "expired"


async def test_my_coupons_page_filter_by_seen_status_and_kind(database_url: str) -> None:
    clock = FixedClock()
    async with coupons_on(database_url, clock) as coupons:
        user, other = await coupons.users(2)
        short = await coupons.template(per_user_limit=3, validity=CouponValidity(days=1))
        long = await coupons.template(**TASK_COUPON, per_user_limit=3)
        expiring = await coupons.run(lambda s: s.claim(user, short))
        clock.current += timedelta(seconds=1)
        redeemed = await coupons.run(lambda s: s.claim(user, short))
        await coupons.run(lambda s: s.redeem(user, redeemed.id))
        clock.current += timedelta(seconds=1)
        kept = await coupons.run(lambda s: s.claim(user, long))
        await coupons.run(lambda s: s.claim(other, long))
        clock.current += timedelta(days=1)  # the first has expired, though no sweep ran

        def listed(
            statuses: frozenset[CouponStatus] = frozenset(),
            kinds: frozenset[CouponKind] = frozenset(),
            limit: int = 10,
            offset: int = 0,
        ) -> Awaitable[tuple[list[Coupon], int]]:
            filters = CouponFilter(statuses=statuses, kinds=kinds)
            return coupons.run(lambda s: s.my_coupons(user, filters, limit, offset))

        items, total = await listed()
        assert total == 3
        assert [(c.id, c.status) for c in items] == [
            (kept.id, CouponStatus.CLAIMED),
            (redeemed.id, CouponStatus.USED),
            (expiring.id, CouponStatus.EXPIRED),
        ]
        page, total = await listed(limit=1, offset=1)
        assert ([c.id for c in page], total) == ([redeemed.id], 3)
        assert [c.id for c in (await listed(frozenset({CouponStatus.EXPIRED})))[0]] == [expiring.id]
        assert [c.id for c in (await listed(frozenset({CouponStatus.CLAIMED})))[0]] == [kept.id]
        both = await listed(frozenset({CouponStatus.CLAIMED, CouponStatus.USED}))
        assert [c.id for c in both[0]] == [kept.id, redeemed.id]
        assert [c.id for c in (await listed(kinds=frozenset({CouponKind.TASK_DISCOUNT})))[0]] == [kept.id]


async def test_available_shows_open_templates_with_what_the_caller_holds(database_url: str) -> None:
    clock = FixedClock()
    async with coupons_on(database_url, clock) as coupons:
        user, other = await coupons.users(2)
        held = await coupons.template(valid_until=clock.now() + timedelta(days=1))
        task = await coupons.template(**TASK_COUPON, valid_until=clock.now() + timedelta(days=2))
        await coupons.template(valid_from=clock.now() + timedelta(days=1))
        sold_out = await coupons.template(total_quantity=1)
        closed = await coupons.template()
        await coupons.run(lambda s: s.close_template(ADMIN, closed))
        await coupons.run(lambda s: s.claim(other, sold_out))
        await coupons.run(lambda s: s.claim(user, held))

        items, total = await coupons.run(lambda s: s.available(user, frozenset(), 10, 0))
        assert total == 2
        assert [(a.template.id, a.claimed_by_me, a.can_claim) for a in items] == [(held, 1, False), (task, 0, True)]
        theirs, _ = await coupons.run(lambda s: s.available(other, frozenset(), 10, 0))
        assert [a.claimed_by_me for a in theirs] == [0, 0]
        only_tasks, _ = await coupons.run(lambda s: s.available(user, frozenset({CouponKind.TASK_DISCOUNT}), 1, 0))
        assert [a.template.id for a in only_tasks] == [task]


async def test_expire_due_expires_each_coupon_and_closes_each_template_once(database_url: str) -> None:
    clock = FixedClock()
    async with coupons_on(database_url, clock) as coupons:
        users = await coupons.users(5)
        short = await coupons.template(total_quantity=5, validity=CouponValidity(days=1))
        long = await coupons.template(total_quantity=5, validity=CouponValidity(days=30))
        for user in users:
            await coupons.run(lambda s, u=user: s.claim(u, short))
            await coupons.run(lambda s, u=user: s.claim(u, long))
        used = (await coupons.run(lambda s: s.my_coupons(users[0], CouponFilter(), 10, 0)))[0]
        for coupon in used:
            await coupons.run(lambda s, c=coupon: s.redeem(users[0], c.id))

        in_two_days = clock.now() + timedelta(days=2)
        assert await coupons.run(lambda s: s.expire_due(in_two_days, 3)) == 3
        assert await coupons.run(lambda s: s.expire_due(in_two_days, 3)) == 1
        assert await coupons.run(lambda s: s.expire_due(in_two_days, 3)) == 0
        after_the_window = clock.now() + timedelta(days=8)
        assert await coupons.run(lambda s: s.expire_due(after_the_window, 10)) == 2  # both templates
        assert await coupons.run(lambda s: s.expire_due(after_the_window, 10)) == 0

        async with coupons.sessions() as session:
            statuses = (await session.execute(select(CouponRecord.template_id, CouponRecord.status))).all()
            templates = (await session.execute(select(CouponTemplateRecord.status))).scalars().all()
        assert sorted(status for template_id, status in statuses if template_id == short) == ["expired"] * 4 + ["used"]
        assert sorted(status for template_id, status in statuses if template_id == long) == ["claimed"] * 4 + ["used"]
        assert templates == ["closed", "closed"]


async def test_template_edits_are_stored_and_the_database_guards_the_total(database_url: str) -> None:
    clock = FixedClock()
    async with coupons_on(database_url, clock) as coupons:
        user = await coupons.user()
        template_id = await coupons.template(total_quantity=3, per_user_limit=2)
        await coupons.run(lambda s: s.claim(user, template_id))
        fixed = clock.now() + timedelta(days=40)
        changes = TemplateChanges(name="Spring", value=60, total_quantity=1, per_user_limit=1, coupon_expires_at=fixed)
        updated = await coupons.run(lambda s: s.update_template(ADMIN, template_id, changes))
        assert (updated.name, updated.value, updated.total_quantity, updated.remaining) == ("Spring", 60, 1, 0)
        assert updated.validity == CouponValidity(expires_at=fixed)
        stored, _ = await coupons.run(lambda s: s.list_templates(ADMIN, TemplateFilter(), 10, 0))
        assert stored == [updated]

        closed = await coupons.run(lambda s: s.close_template(ADMIN, template_id))
        assert (closed.status, closed.closed_at) == (TemplateStatus.CLOSED, clock.now())
        with pytest.raises(DomainError) as refused:
            await coupons.run(lambda s: s.update_template(ADMIN, template_id, TemplateChanges(name="x")))
        assert refused.value.code == "template_closed"

        # the last line of defence: no statement can push the claimed count past the total
        async with coupons.sessions() as session:
            with pytest.raises(IntegrityError):
                await session.execute(
                    update(CouponTemplateRecord)
                    .where(CouponTemplateRecord.id == template_id)
                    .values(claimed_count=CouponTemplateRecord.claimed_count + 1)
                )
