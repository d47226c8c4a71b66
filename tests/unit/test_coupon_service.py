from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.domain.coupons.model import (
    CouponFilter,
    CouponKind,
    CouponStatus,
    CouponValidity,
    TemplateChanges,
    TemplateDraft,
    TemplateFilter,
    TemplateStatus,
)
from app.domain.coupons.service import CouponService
from app.domain.points.service import PointsPolicy, PointsService
from app.domain.shared.errors import DomainError, Forbidden, ValidationFailed
from app.domain.users.model import Principal, Role
from tests.fakes.coupons import InMemoryCoupons
from tests.fakes.points import InMemoryPointsLedger

NOW = datetime(2026, 6, 1, tzinfo=UTC)
ADMIN = Principal(id=uuid.uuid4(), username="root", role=Role.ADMIN)
USER = Principal(id=uuid.uuid4(), username="ada", role=Role.USER)


class _Clock:
    def __init__(self) -> None:
        self.current = NOW

    def now(self) -> datetime:
        return self.current


class _World:
    def __init__(self) -> None:
        self.clock = _Clock()
        self.store = InMemoryCoupons()
        self.ledger = InMemoryPointsLedger()
        points = PointsService(self.ledger, self.store, self.clock, PointsPolicy(timedelta(days=365)))
        self.service = CouponService(self.store, points, self.store, self.clock)

    async def template(self, **overrides: Any) -> uuid.UUID:
        return (await self.service.create_template(ADMIN, draft(**overrides))).id


def draft(**overrides: Any) -> TemplateDraft:
    values: dict[str, Any] = {
        "name": "Welcome",
        "kind": CouponKind.POINTS_BONUS,
        "value": 50,
        "total_quantity": 10,
        "per_user_limit": 1,
        "valid_from": NOW - timedelta(days=1),
        "valid_until": NOW + timedelta(days=7),
        "validity": CouponValidity(days=30),
        "min_reward": None,
    }
    values.update(overrides)
    return TemplateDraft(**values)


def _task_coupon(**overrides: Any) -> dict[str, Any]:
    return {"kind": CouponKind.TASK_DISCOUNT, "value": 20, "min_reward": 100, **overrides}


async def _refused(call: Any) -> DomainError:
    with pytest.raises(DomainError) as raised:
        await call
    return raised.value


def _codes(error: DomainError) -> list[str]:
    return [issue.code for issue in error.issues]


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"name": "   "}, "invalid_name", "name"),
        ({"value": 0}, "invalid_value", "value"),
        ({"total_quantity": 0}, "out_of_range", "total_quantity"),
        ({"per_user_limit": 0}, "out_of_range", "per_user_limit"),
        ({"valid_until": NOW - timedelta(days=2)}, "window_order", "valid_until"),
        ({"valid_until": NOW - timedelta(hours=1)}, "window_in_past", "valid_until"),
        ({"validity": CouponValidity()}, "validity_missing", "coupon_valid_days"),
        ({"validity": CouponValidity(expires_at=NOW + timedelta(days=9), days=3)}, "validity_ambiguous", None),
        ({"validity": CouponValidity(days=0)}, "out_of_range", "coupon_valid_days"),
        ({"validity": CouponValidity(expires_at=NOW + timedelta(days=6))}, "expires_before_window_ends", None),
        ({"min_reward": 100}, "min_reward_not_allowed", "min_reward"),
        (_task_coupon(min_reward=None), "min_reward_required", "min_reward"),
        (_task_coupon(min_reward=20), "min_reward_too_low", "min_reward"),
        ({"valid_from": datetime(2026, 5, 1)}, "timezone_required", "valid_from"),  # naive: no time zone
    ],
)
async def test_a_template_breaking_a_rule_is_refused_with_its_code(
    overrides: dict[str, Any], code: str, field: str | None
) -> None:
    world = _World()
    error = await _refused(world.service.create_template(ADMIN, draft(**overrides)))
    assert isinstance(error, ValidationFailed)
    assert error.code == "invalid_template"
    assert code in _codes(error)
    if field is not None:
        assert field in {issue.field for issue in error.issues if issue.code == code}
    assert world.store.templates == {}


async def test_every_broken_rule_is_listed_at_once() -> None:
    world = _World()
    bad = draft(name="", value=0, total_quantity=0, validity=CouponValidity(), min_reward=5)
    error = await _refused(world.service.create_template(ADMIN, bad))
    assert set(_codes(error)) == {
        "invalid_name",
        "invalid_value",
        "out_of_range",
        "validity_missing",
        "min_reward_not_allowed",
    }


async def test_only_admins_manage_templates() -> None:
    world = _World()
    template_id = await world.template()
    for call in (
        world.service.create_template(USER, draft()),
        world.service.list_templates(USER, TemplateFilter(), 10, 0),
        world.service.update_template(USER, template_id, TemplateChanges(name="x")),
        world.service.close_template(USER, template_id),
    ):
        assert isinstance(await _refused(call), Forbidden)


async def test_a_claim_copies_the_terms_and_expires_days_after_it_or_at_the_fixed_end() -> None:
    world = _World()
    by_days = await world.template(**_task_coupon(), validity=CouponValidity(days=3))
    fixed_end = NOW + timedelta(days=20)
    fixed = await world.template(validity=CouponValidity(expires_at=fixed_end))

    coupon = await world.service.claim(USER.id, by_days)
    assert (coupon.kind, coupon.value, coupon.min_reward, coupon.name) == (CouponKind.TASK_DISCOUNT, 20, 100, "Welcome")
    assert coupon.status is CouponStatus.CLAIMED
    assert coupon.expires_at == NOW + timedelta(days=3)
    assert (await world.service.claim(USER.id, fixed)).expires_at == fixed_end
    assert world.store.templates[by_days].claimed_count == 1


async def test_claims_are_refused_with_the_reason() -> None:
    world = _World()
    later = await world.template(valid_from=NOW + timedelta(days=1))
    closed = await world.template()
    await world.service.close_template(ADMIN, closed)
    single = await world.template(total_quantity=1)
    await world.service.claim(uuid.uuid4(), single)
    ending = await world.template(valid_until=NOW + timedelta(hours=1))

    assert (await _refused(world.service.claim(USER.id, uuid.uuid4()))).code == "template_not_found"
    assert (await _refused(world.service.claim(USER.id, later))).code == "not_claimable"
    assert (await _refused(world.service.claim(USER.id, closed))).code == "not_claimable"
    assert (await _refused(world.service.claim(USER.id, single))).code == "sold_out"
    world.clock.current = NOW + timedelta(hours=1)
    assert (await _refused(world.service.claim(USER.id, ending))).code == "not_claimable"


async def test_the_per_user_limit_refuses_and_gives_the_place_back() -> None:
    world = _World()
    template_id = await world.template(total_quantity=3, per_user_limit=2)
    await world.service.claim(USER.id, template_id)
    await world.service.claim(USER.id, template_id)
    error = await _refused(world.service.claim(USER.id, template_id))
    assert error.code == "limit_reached"
    assert world.store.templates[template_id].claimed_count == 2  # the refused claim's increment was rolled back
    await world.service.claim(uuid.uuid4(), template_id)  # so another user gets the last one
    assert world.store.templates[template_id].claimed_count == 3


async def test_redeem_pays_the_value_once() -> None:
    world = _World()
    coupon = await world.service.claim(USER.id, await world.template(value=75))
    redemption = await world.service.redeem(USER.id, coupon.id)
    assert redemption.coupon.status is CouponStatus.USED
    assert redemption.transaction.amount == 75
    assert redemption.transaction.reason == "coupon"
    assert (await _refused(world.service.redeem(USER.id, coupon.id))).code == "already_used"
    assert world.ledger.ledger_total(USER.id) == world.ledger.lots_total(USER.id) == 75


async def test_another_users_coupon_is_answered_like_an_unknown_one() -> None:
    world = _World()
    coupon = await world.service.claim(USER.id, await world.template())
    intruder = uuid.uuid4()
    foreign = await _refused(world.service.redeem(intruder, coupon.id))
    unknown = await _refused(world.service.redeem(intruder, uuid.uuid4()))
    assert (type(foreign), foreign.code, foreign.message) == (type(unknown), unknown.code, unknown.message)
    assert foreign.code == "coupon_not_found"
    task = await _refused(world.service.reserve_for_task(intruder, coupon.id, uuid.uuid4(), 500))
    assert task.code == "coupon_not_found"
    assert world.store.coupons[coupon.id].status is CouponStatus.CLAIMED


async def test_redeem_refuses_a_task_coupon_and_an_expired_one() -> None:
    world = _World()
    task_coupon = await world.service.claim(USER.id, await world.template(**_task_coupon()))
    assert (await _refused(world.service.redeem(USER.id, task_coupon.id))).code == "wrong_kind"
    bonus = await world.service.claim(USER.id, await world.template(validity=CouponValidity(days=1)))
    world.clock.current = NOW + timedelta(days=1)
    assert (await _refused(world.service.redeem(USER.id, bonus.id))).code == "expired"
    assert world.ledger.ledger_total(USER.id) == 0


async def test_reserve_for_task_applies_once_replays_for_the_same_task_and_never_commits() -> None:
    world = _World()
    coupon = await world.service.claim(USER.id, await world.template(**_task_coupon()))
    commits = world.store.commits
    task = uuid.uuid4()

    assert (await _refused(world.service.reserve_for_task(USER.id, coupon.id, task, 99))).code == "min_reward_not_met"
    assert await world.service.reserve_for_task(USER.id, coupon.id, task, 100) == 20
    assert world.store.coupons[coupon.id].task_id == task
    assert world.store.coupons[coupon.id].status is CouponStatus.USED
    assert await world.service.reserve_for_task(USER.id, coupon.id, task, 100) == 20  # a retried post
    other_task = uuid.uuid4()
    assert (await _refused(world.service.reserve_for_task(USER.id, coupon.id, other_task, 100))).code == "already_used"
    assert world.store.commits == commits

    bonus = await world.service.claim(USER.id, await world.template())
    assert (await _refused(world.service.reserve_for_task(USER.id, bonus.id, task, 100))).code == "wrong_kind"


async def test_release_from_task_gives_the_coupon_back_once_and_expired_if_its_time_ran_out() -> None:
    world = _World()
    template_id = await world.template(**_task_coupon(), total_quantity=5, per_user_limit=5)
    coupon = await world.service.claim(USER.id, template_id)
    task = uuid.uuid4()
    await world.service.reserve_for_task(USER.id, coupon.id, task, 200)

    assert await world.service.release_from_task(coupon.id, uuid.uuid4()) is False  # not that task's
    assert await world.service.release_from_task(coupon.id, task) is True
    assert await world.service.release_from_task(coupon.id, task) is False  # idempotent
    assert world.store.coupons[coupon.id].status is CouponStatus.CLAIMED
    assert await world.service.reserve_for_task(USER.id, coupon.id, uuid.uuid4(), 200) == 20  # usable again

    late = await world.service.claim(USER.id, template_id)
    await world.service.reserve_for_task(USER.id, late.id, task, 200)
    world.clock.current = late.expires_at
    assert await world.service.release_from_task(late.id, task) is True
    assert world.store.coupons[late.id].status is CouponStatus.EXPIRED


async def test_my_coupons_show_a_coupon_past_its_expiry_as_expired_and_filter_by_status() -> None:
    world = _World()
    short = await world.service.claim(USER.id, await world.template(validity=CouponValidity(days=1)))
    used = await world.service.claim(USER.id, await world.template())
    await world.service.redeem(USER.id, used.id)
    fresh = await world.service.claim(USER.id, await world.template(validity=CouponValidity(days=9)))
    world.clock.current = NOW + timedelta(days=2)

    items, total = await world.service.my_coupons(USER.id, CouponFilter(), 10, 0)
    assert total == 3
    assert {item.id: item.status for item in items} == {
        short.id: CouponStatus.EXPIRED,
        used.id: CouponStatus.USED,
        fresh.id: CouponStatus.CLAIMED,
    }
    claimed, _ = await world.service.my_coupons(
        USER.id, CouponFilter(statuses=frozenset({CouponStatus.CLAIMED})), 10, 0
    )
    assert [item.id for item in claimed] == [fresh.id]
    expired, _ = await world.service.my_coupons(
        USER.id, CouponFilter(statuses=frozenset({CouponStatus.EXPIRED})), 10, 0
    )
    assert [item.id for item in expired] == [short.id]
    assert (await world.service.my_coupons(uuid.uuid4(), CouponFilter(), 10, 0)) == ([], 0)


async def test_expire_due_expires_coupons_and_closes_templates_in_batches() -> None:
    world = _World()
    template_id = await world.template(total_quantity=5, per_user_limit=5, validity=CouponValidity(days=1))
    for _ in range(3):
        await world.service.claim(USER.id, template_id)
    later = NOW + timedelta(days=8)

    assert await world.service.expire_due(later, 2) == 3  # two coupons and the template
    assert await world.service.expire_due(later, 2) == 1
    assert await world.service.expire_due(later, 2) == 0
    assert {c.status for c in world.store.coupons.values()} == {CouponStatus.EXPIRED}
    assert world.store.templates[template_id].status is TemplateStatus.CLOSED


async def test_an_edit_keeps_claimed_coupons_terms_and_the_total_above_the_claimed_count() -> None:
    world = _World()
    template_id = await world.template(total_quantity=5, per_user_limit=5)
    claimed = await world.service.claim(USER.id, template_id)
    await world.service.claim(USER.id, template_id)

    error = await _refused(world.service.update_template(ADMIN, template_id, TemplateChanges(total_quantity=1)))
    assert _codes(error) == ["below_claimed"]
    updated = await world.service.update_template(
        ADMIN, template_id, TemplateChanges(name=" Bigger ", value=80, total_quantity=2, coupon_valid_days=5)
    )
    assert (updated.name, updated.value, updated.total_quantity, updated.remaining) == ("Bigger", 80, 2, 0)
    assert updated.validity == CouponValidity(days=5)
    assert (await world.service.redeem(USER.id, claimed.id)).transaction.amount == 50

    fixed = NOW + timedelta(days=30)
    switched = await world.service.update_template(ADMIN, template_id, TemplateChanges(coupon_expires_at=fixed))
    assert switched.validity == CouponValidity(expires_at=fixed)
    error = await _refused(world.service.update_template(ADMIN, template_id, TemplateChanges(min_reward=10)))
    assert _codes(error) == ["min_reward_not_allowed"]
    assert (await _refused(world.service.update_template(ADMIN, uuid.uuid4(), TemplateChanges()))).code == (
        "template_not_found"
    )


async def test_closing_is_idempotent_and_keeps_claimed_coupons_usable() -> None:
    world = _World()
    template_id = await world.template()
    coupon = await world.service.claim(USER.id, template_id)
    first = await world.service.close_template(ADMIN, template_id)
    again = await world.service.close_template(ADMIN, template_id)
    assert first == again
    assert first.status is TemplateStatus.CLOSED
    assert (await _refused(world.service.update_template(ADMIN, template_id, TemplateChanges(name="x")))).code == (
        "template_closed"
    )
    assert (await world.service.redeem(USER.id, coupon.id)).transaction.amount == 50
    assert (await _refused(world.service.close_template(ADMIN, uuid.uuid4()))).code == "template_not_found"


async def test_available_lists_open_templates_with_what_the_caller_holds() -> None:
    world = _World()
    mine = await world.template(per_user_limit=1, valid_until=NOW + timedelta(days=2))
    other = await world.template(**_task_coupon(), valid_until=NOW + timedelta(days=3))
    await world.template(valid_from=NOW + timedelta(days=1))  # not yet
    sold_out = await world.template(total_quantity=1)
    await world.service.claim(uuid.uuid4(), sold_out)
    await world.service.claim(USER.id, mine)

    items, total = await world.service.available(USER.id, frozenset(), 10, 0)
    assert total == 2
    assert [(item.template.id, item.claimed_by_me, item.can_claim) for item in items] == [
        (mine, 1, False),
        (other, 0, True),
    ]
    tasks_only, _ = await world.service.available(USER.id, frozenset({CouponKind.TASK_DISCOUNT}), 10, 0)
    assert [item.template.id for item in tasks_only] == [other]


async def test_listing_templates_filters_by_status_and_kind() -> None:
    world = _World()
    open_one = await world.template()
    closed = await world.template(**_task_coupon())
    await world.service.close_template(ADMIN, closed)
    active, total = await world.service.list_templates(
        ADMIN, TemplateFilter(statuses=frozenset({TemplateStatus.ACTIVE})), 10, 0
    )
    assert ([t.id for t in active], total) == ([open_one], 1)
    tasks, _ = await world.service.list_templates(
        ADMIN, TemplateFilter(kinds=frozenset({CouponKind.TASK_DISCOUNT})), 10, 0
    )
    assert [t.id for t in tasks] == [closed]
    _, everything = await world.service.list_templates(ADMIN, TemplateFilter(), 1, 0)
    assert everything == 2
