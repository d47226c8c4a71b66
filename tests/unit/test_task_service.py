from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.domain.coupons.model import CouponKind, CouponStatus, CouponValidity, TemplateDraft
from app.domain.coupons.service import CouponService
from app.domain.notifications.model import Notice, NotificationKind
from app.domain.points.model import HoldStatus
from app.domain.points.service import PointsPolicy, PointsService
from app.domain.shared.errors import DomainError, ValidationFailed
from app.domain.tasks.model import (
    TRANSITIONS,
    CancelReason,
    SortOrder,
    TaskDraft,
    TaskFilter,
    TaskSort,
    TaskStatus,
    sources_of,
)
from app.domain.tasks.service import TaskService
from app.domain.users.model import Principal, Role
from tests.fakes.coupons import InMemoryCoupons
from tests.fakes.notifications import InMemoryNotifications
from tests.fakes.points import InMemoryPointsLedger
from tests.fakes.tasks import InMemoryTasks

NOW = datetime(2026, 6, 1, tzinfo=UTC)
ADMIN = Principal(id=uuid.uuid4(), username="root", role=Role.ADMIN)
ADA = Principal(id=uuid.uuid4(), username="ada", role=Role.USER)
BOB = Principal(id=uuid.uuid4(), username="bob", role=Role.USER)
EVE = Principal(id=uuid.uuid4(), username="eve", role=Role.USER)


class _Clock:
    def __init__(self) -> None:
        self.current = NOW

    def now(self) -> datetime:
        return self.current


class _Both:
    """One unit of work over the in-memory stores that can roll back."""

    def __init__(self, *stores: Any) -> None:
        self.stores = stores

    async def commit(self) -> None:
        for store in self.stores:
            await store.commit()

    async def rollback(self) -> None:
        for store in self.stores:
            await store.rollback()


class _World:
    def __init__(self) -> None:
        self.clock = _Clock()
        self.tasks = InMemoryTasks()
        self.coupon_store = InMemoryCoupons()
        self.ledger = InMemoryPointsLedger()
        self.notifier = InMemoryNotifications()
        uow = _Both(self.tasks, self.coupon_store, self.notifier)
        self.points = PointsService(self.ledger, uow, self.clock, PointsPolicy(timedelta(days=365)))
        self.coupons = CouponService(self.coupon_store, self.points, uow, self.clock)
        self.service = TaskService(self.tasks, self.points, self.coupons, self.notifier, uow, self.clock)

    async def fund(self, user: Principal, amount: int) -> None:
        await self.points.grant(user.id, amount)

    async def balance(self, user: Principal) -> int:
        return (await self.points.summary(user.id)).balance

    async def task_coupon(self, user: Principal, value: int = 20, min_reward: int = 100) -> uuid.UUID:
        template = await self.coupons.create_template(
            ADMIN,
            TemplateDraft(
                name="Task helper",
                kind=CouponKind.TASK_DISCOUNT,
                value=value,
                total_quantity=10,
                per_user_limit=1,
                valid_from=NOW - timedelta(days=1),
                valid_until=NOW + timedelta(days=7),
                validity=CouponValidity(days=30),
                min_reward=min_reward,
            ),
        )
        return (await self.coupons.claim(user.id, template.id)).id


def draft(**overrides: Any) -> TaskDraft:
    values: dict[str, Any] = {
        "title": "Assemble a bookshelf",
        "description": "Flat-pack, 5 shelves.",
        "category": "Furniture",
        "reward_points": 100,
        "deadline": NOW + timedelta(days=3),
        "coupon_id": None,
    }
    values.update(overrides)
    return TaskDraft(**values)


async def _refused(call: Any) -> DomainError:
    with pytest.raises(DomainError) as raised:
        await call
    return raised.value


def test_the_transition_table_is_the_specs_state_machine() -> None:
    assert TRANSITIONS[TaskStatus.OPEN] == {TaskStatus.TAKEN, TaskStatus.CANCELLED}
    assert TRANSITIONS[TaskStatus.TAKEN] == {TaskStatus.COMPLETED, TaskStatus.CANCELLED}
    assert not TRANSITIONS[TaskStatus.COMPLETED]
    assert not TRANSITIONS[TaskStatus.CANCELLED]
    assert sources_of(TaskStatus.CANCELLED) == {TaskStatus.OPEN, TaskStatus.TAKEN}


async def test_posting_holds_the_reward_and_stores_the_task() -> None:
    world = _World()
    await world.fund(ADA, 150)
    task = await world.service.post(ADA.id, draft(title="  Assemble a bookshelf  "))
    assert (task.status, task.title, task.category, task.held_points) == (
        TaskStatus.OPEN,
        "Assemble a bookshelf",
        "furniture",
        100,
    )
    assert await world.balance(ADA) == 50
    assert world.ledger.holds[task.hold_id].reference == f"task:{task.id}"


async def test_a_task_coupon_lowers_the_hold_and_is_used_by_the_task() -> None:
    world = _World()
    await world.fund(ADA, 100)
    coupon_id = await world.task_coupon(ADA, value=20, min_reward=100)
    task = await world.service.post(ADA.id, draft(coupon_id=coupon_id))
    assert (task.held_points, task.discount) == (80, 20)
    assert await world.balance(ADA) == 20
    coupon = world.coupon_store.coupons[coupon_id]
    assert (coupon.status, coupon.task_id) == (CouponStatus.USED, task.id)


async def test_too_few_points_refuses_and_leaves_nothing_behind() -> None:
    world = _World()
    await world.fund(ADA, 50)
    coupon_id = await world.task_coupon(ADA, value=20, min_reward=100)
    error = await _refused(world.service.post(ADA.id, draft(coupon_id=coupon_id)))
    assert error.code == "insufficient_points"
    assert world.tasks.tasks == {}
    assert world.coupon_store.coupons[coupon_id].status is CouponStatus.CLAIMED
    assert await world.balance(ADA) == 50
    assert world.ledger.holds == {}


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"title": "  a "}, "invalid_length", "title"),
        ({"description": "   "}, "invalid_length", "description"),
        ({"category": ""}, "invalid_length", "category"),
        ({"reward_points": 0}, "out_of_range", "reward_points"),
        ({"reward_points": 1_000_001}, "out_of_range", "reward_points"),
        ({"deadline": NOW - timedelta(hours=1)}, "deadline_too_soon", "deadline"),
        ({"deadline": NOW + timedelta(minutes=1)}, "deadline_too_soon", "deadline"),
        ({"deadline": NOW + timedelta(days=400)}, "deadline_too_far", "deadline"),
        ({"deadline": datetime(2026, 7, 1)}, "naive_time", "deadline"),
    ],
)
async def test_a_draft_breaking_a_rule_is_refused(overrides: dict[str, Any], code: str, field: str) -> None:
    world = _World()
    await world.fund(ADA, 10_000_000)
    error = await _refused(world.service.post(ADA.id, draft(**overrides)))
    assert isinstance(error, ValidationFailed)
    assert error.code == "invalid_task"
    assert (code, field) in {(issue.code, issue.field) for issue in error.issues}
    assert world.tasks.tasks == {}


async def test_take_then_complete_pays_the_taker_once_with_a_rating() -> None:
    world = _World()
    await world.fund(ADA, 100)
    task = await world.service.post(ADA.id, draft())
    taken = await world.service.take(BOB, task.id)
    assert (taken.status, taken.taker_id) == (TaskStatus.TAKEN, BOB.id)
    done = await world.service.complete(ADA, task.id, rating=5)
    assert (done.status, done.rating) == (TaskStatus.COMPLETED, 5)
    assert await world.balance(BOB) == 100
    assert world.ledger.holds[task.hold_id].status is HoldStatus.CAPTURED
    again = await _refused(world.service.complete(ADA, task.id))
    assert again.code == "invalid_transition"
    assert "completed" in again.message
    assert await world.balance(BOB) == 100


async def test_who_may_do_what() -> None:
    world = _World()
    await world.fund(ADA, 300)
    task = await world.service.post(ADA.id, draft())
    assert (await _refused(world.service.take(ADA, task.id))).code == "own_task"
    assert (await _refused(world.service.complete(ADA, task.id))).code == "invalid_transition"
    assert (await _refused(world.service.cancel(BOB, task.id))).code == "not_poster"
    await world.service.take(BOB, task.id)
    assert (await _refused(world.service.take(EVE, task.id))).code == "invalid_transition"
    assert (await _refused(world.service.complete(BOB, task.id))).code == "not_poster"
    assert (await _refused(world.service.cancel(ADA, task.id))).code == "taker_consent_required"
    assert (await _refused(world.service.get(uuid.uuid4()))).code == "task_not_found"
    assert (await _refused(world.service.take(BOB, uuid.uuid4()))).code == "task_not_found"
    with pytest.raises(ValidationFailed):
        await world.service.complete(ADA, task.id, rating=6)


async def test_the_poster_cancels_an_open_task_and_gets_points_and_coupon_back() -> None:
    world = _World()
    await world.fund(ADA, 100)
    coupon_id = await world.task_coupon(ADA)
    task = await world.service.post(ADA.id, draft(coupon_id=coupon_id))
    cancelled = await world.service.cancel(ADA, task.id)
    assert (cancelled.status, cancelled.cancel_reason) == (TaskStatus.CANCELLED, CancelReason.POSTER)
    assert await world.balance(ADA) == 100
    assert world.coupon_store.coupons[coupon_id].status is CouponStatus.CLAIMED
    error = await _refused(world.service.cancel(ADA, task.id))
    assert error.code == "invalid_transition"
    assert "cancelled" in error.message


async def test_an_admin_cancels_a_taken_task() -> None:
    world = _World()
    await world.fund(ADA, 100)
    task = await world.service.post(ADA.id, draft())
    await world.service.take(BOB, task.id)
    cancelled = await world.service.cancel(ADMIN, task.id)
    assert (cancelled.status, cancelled.cancel_reason) == (TaskStatus.CANCELLED, CancelReason.ADMIN)
    assert await world.balance(ADA) == 100
    assert await world.balance(BOB) == 0


async def test_expiry_cancels_open_tasks_past_their_deadline_once() -> None:
    world = _World()
    await world.fund(ADA, 1000)
    due = [await world.service.post(ADA.id, draft(deadline=NOW + timedelta(hours=h))) for h in (1, 2, 3)]
    later = await world.service.post(ADA.id, draft(deadline=NOW + timedelta(days=30)))
    taken = await world.service.post(ADA.id, draft(deadline=NOW + timedelta(hours=1)))
    await world.service.take(BOB, taken.id)
    assert await world.balance(ADA) == 500
    when = NOW + timedelta(days=1)
    assert await world.service.cancel_expired(when, 2) == 2
    assert await world.service.cancel_expired(when, 2) == 1
    assert await world.service.cancel_expired(when, 2) == 0
    for task in due:
        stored = world.tasks.tasks[task.id]
        assert (stored.status, stored.cancel_reason) == (TaskStatus.CANCELLED, CancelReason.EXPIRED)
    assert world.tasks.tasks[later.id].status is TaskStatus.OPEN
    assert world.tasks.tasks[taken.id].status is TaskStatus.TAKEN
    assert await world.balance(ADA) == 800


async def test_a_task_past_its_deadline_cannot_be_taken() -> None:
    world = _World()
    await world.fund(ADA, 100)
    task = await world.service.post(ADA.id, draft(deadline=NOW + timedelta(hours=1)))
    world.clock.current = NOW + timedelta(hours=2)
    assert (await _refused(world.service.take(BOB, task.id))).code == "deadline_passed"


async def test_listing_filters_sorts_and_pages() -> None:
    world = _World()
    await world.fund(ADA, 1000)
    a = await world.service.post(ADA.id, draft(reward_points=30, category="garden", deadline=NOW + timedelta(days=5)))
    world.clock.current = NOW + timedelta(seconds=1)
    b = await world.service.post(ADA.id, draft(reward_points=10, deadline=NOW + timedelta(days=9)))
    world.clock.current = NOW + timedelta(seconds=2)
    c = await world.service.post(ADA.id, draft(reward_points=20, deadline=NOW + timedelta(days=1)))
    await world.service.take(BOB, c.id)

    def ids(page: tuple[list[Any], int]) -> list[uuid.UUID]:
        return [task.id for task in page[0]]

    newest = await world.service.list_tasks(TaskFilter(), TaskSort.CREATED, SortOrder.DESC, 10, 0)
    assert ids(newest) == [c.id, b.id, a.id]
    by_reward = await world.service.list_tasks(TaskFilter(), TaskSort.REWARD, SortOrder.ASC, 2, 1)
    assert (ids(by_reward), by_reward[1]) == ([c.id, a.id], 3)
    by_deadline = await world.service.list_tasks(TaskFilter(), TaskSort.DEADLINE, SortOrder.ASC, 10, 0)
    assert ids(by_deadline) == [c.id, a.id, b.id]
    opened = await world.service.list_tasks(
        TaskFilter(statuses=frozenset({TaskStatus.OPEN})), TaskSort.CREATED, SortOrder.DESC, 10, 0
    )
    assert ids(opened) == [b.id, a.id]
    assert ids(
        await world.service.list_tasks(TaskFilter(category="garden"), TaskSort.CREATED, SortOrder.DESC, 10, 0)
    ) == [a.id]
    assert ids(
        await world.service.list_tasks(TaskFilter(taker_id=BOB.id), TaskSort.CREATED, SortOrder.DESC, 10, 0)
    ) == [c.id]
    assert (await world.service.list_tasks(TaskFilter(poster_id=BOB.id), TaskSort.CREATED, SortOrder.DESC, 10, 0))[
        1
    ] == 0


def _kinds(world: _World) -> list[tuple[uuid.UUID, NotificationKind]]:
    return [(notice.user_id, notice.kind) for notice in world.notifier.notices]


async def test_take_and_complete_notify_the_poster_then_the_taker() -> None:
    world = _World()
    await world.fund(ADA, 100)
    task = await world.service.post(ADA.id, draft())
    assert world.notifier.calls == []
    await world.service.take(BOB, task.id)
    await world.service.complete(ADA, task.id, rating=4)
    assert _kinds(world) == [(ADA.id, NotificationKind.TASK_TAKEN), (BOB.id, NotificationKind.TASK_COMPLETED)]
    taken, completed = world.notifier.notices
    assert taken.payload == {"task_id": str(task.id), "title": task.title, "taker_id": str(BOB.id)}
    assert (completed.payload["points"], completed.payload["rating"]) == (100, 4)


async def test_refused_changes_notify_nobody() -> None:
    world = _World()
    await world.fund(ADA, 100)
    task = await world.service.post(ADA.id, draft())
    await _refused(world.service.take(ADA, task.id))
    await _refused(world.service.complete(ADA, task.id))
    await _refused(world.service.cancel(BOB, task.id))
    await _refused(world.service.consent_to_cancel(BOB, task.id))
    assert world.notifier.calls == []


async def test_cancelling_an_open_task_notifies_nobody_a_taken_one_its_taker() -> None:
    world = _World()
    await world.fund(ADA, 200)
    first = await world.service.post(ADA.id, draft())
    await world.service.cancel(ADA, first.id)
    assert world.notifier.calls == []
    second = await world.service.post(ADA.id, draft())
    await world.service.take(BOB, second.id)
    await world.service.cancel(ADMIN, second.id)
    assert _kinds(world) == [(ADA.id, NotificationKind.TASK_TAKEN), (BOB.id, NotificationKind.TASK_CANCELLED)]
    assert world.notifier.notices[-1].payload["reason"] == "admin"


async def test_with_the_takers_consent_the_poster_cancels_a_taken_task() -> None:
    world = _World()
    await world.fund(ADA, 100)
    coupon_id = await world.task_coupon(ADA)
    task = await world.service.post(ADA.id, draft(coupon_id=coupon_id))
    await world.service.take(BOB, task.id)
    assert (await _refused(world.service.cancel(ADA, task.id))).code == "taker_consent_required"
    assert (await _refused(world.service.consent_to_cancel(EVE, task.id))).code == "not_taker"
    assert (await _refused(world.service.consent_to_cancel(ADA, task.id))).code == "not_taker"
    consented = await world.service.consent_to_cancel(BOB, task.id)
    assert (consented.status, consented.cancel_consented_at) == (TaskStatus.TAKEN, NOW)
    again = await world.service.consent_to_cancel(BOB, task.id)  # idempotent, no second notification
    assert again.cancel_consented_at == NOW
    assert _kinds(world)[-1] == (ADA.id, NotificationKind.TASK_CANCEL_CONSENTED)
    assert len(world.notifier.calls) == 2
    assert (await _refused(world.service.cancel(EVE, task.id))).code == "not_poster"

    cancelled = await world.service.cancel(ADA, task.id)
    assert (cancelled.status, cancelled.cancel_reason) == (TaskStatus.CANCELLED, CancelReason.POSTER)
    assert await world.balance(ADA) == 100
    assert world.ledger.holds[task.hold_id].status is HoldStatus.RELEASED
    assert world.coupon_store.coupons[coupon_id].status is CouponStatus.CLAIMED
    assert _kinds(world)[-1] == (BOB.id, NotificationKind.TASK_CANCELLED)
    assert (await _refused(world.service.consent_to_cancel(BOB, task.id))).code == "invalid_transition"
    assert (await _refused(world.service.consent_to_cancel(BOB, uuid.uuid4()))).code == "task_not_found"


async def test_a_consent_does_not_outlive_a_completed_task() -> None:
    world = _World()
    await world.fund(ADA, 100)
    task = await world.service.post(ADA.id, draft())
    await world.service.take(BOB, task.id)
    await world.service.consent_to_cancel(BOB, task.id)
    await world.service.complete(ADA, task.id)
    assert (await _refused(world.service.cancel(ADA, task.id))).code == "invalid_transition"
    assert await world.balance(BOB) == 100


async def test_expiry_notifies_each_poster_once_in_one_call() -> None:
    world = _World()
    await world.fund(ADA, 1000)
    await world.fund(BOB, 1000)
    due = [
        await world.service.post(ADA.id, draft(deadline=NOW + timedelta(hours=1))),
        await world.service.post(BOB.id, draft(deadline=NOW + timedelta(hours=2))),
    ]
    await world.service.post(ADA.id, draft(deadline=NOW + timedelta(days=30)))
    when = NOW + timedelta(days=1)
    assert await world.service.cancel_expired(when, 10) == 2
    assert world.notifier.calls == [
        [
            Notice(ADA.id, NotificationKind.TASK_EXPIRED, {"task_id": str(due[0].id), "title": due[0].title}),
            Notice(BOB.id, NotificationKind.TASK_EXPIRED, {"task_id": str(due[1].id), "title": due[1].title}),
        ]
    ]
    assert await world.service.cancel_expired(when, 10) == 0
    assert world.notifier.calls[-1] == []
