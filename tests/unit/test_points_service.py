from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.points.model import Allocation, HoldStatus, Lot, TransactionKind
from app.domain.points.service import (
    IdempotencyKeyReused,
    InsufficientPoints,
    PointsPolicy,
    PointsService,
    allocate,
)
from app.domain.shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.domain.users.model import Principal, Role
from tests.fakes.points import InMemoryPointsLedger

NOW = datetime(2026, 6, 1, tzinfo=UTC)
ADMIN = Principal(id=uuid.uuid4(), username="root", role=Role.ADMIN)


class _Clock:
    def now(self) -> datetime:
        return NOW


class _Commits:
    def __init__(self) -> None:
        self.count = 0

    async def commit(self) -> None:
        self.count += 1

    async def rollback(self) -> None:
        return None


def _service() -> tuple[PointsService, InMemoryPointsLedger, _Commits]:
    ledger, commits = InMemoryPointsLedger(), _Commits()
    return PointsService(ledger, commits, _Clock(), PointsPolicy(timedelta(days=365))), ledger, commits


def test_allocation_takes_lots_in_the_order_given_and_refuses_a_shortfall() -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    lots = [Lot(first, uuid.uuid4(), 5, NOW), Lot(second, uuid.uuid4(), 10, NOW + timedelta(days=1))]
    assert allocate(lots, 7) == [Allocation(first, 5, NOW), Allocation(second, 2, NOW + timedelta(days=1))]
    with pytest.raises(InsufficientPoints):
        allocate(lots, 16)


@pytest.mark.parametrize("amount", [0, -1, 1_000_000_001])
async def test_amounts_must_be_positive_and_bounded(amount: int) -> None:
    service, _, _ = _service()
    with pytest.raises(ValidationFailed) as raised:
        await service.grant(uuid.uuid4(), amount)
    assert raised.value.issues[0].code == "invalid_amount"


async def test_same_key_same_request_replays_and_different_request_is_refused() -> None:
    service, ledger, _ = _service()
    user = uuid.uuid4()
    first = await service.grant(user, 10, reason="r", idempotency_key="k")
    assert await service.grant(user, 10, reason="r", idempotency_key="k") == first
    with pytest.raises(IdempotencyKeyReused):
        await service.grant(user, 11, reason="r", idempotency_key="k")
    with pytest.raises(IdempotencyKeyReused):
        await service.spend(user, 10, reason="r", idempotency_key="k")
    assert ledger.ledger_total(user) == 10


async def test_replayed_hold_returns_the_same_hold_without_holding_twice() -> None:
    service, ledger, _ = _service()
    user = uuid.uuid4()
    await service.grant(user, 100)
    hold = await service.hold(user, 30, reference="task:1", idempotency_key="h")
    assert await service.hold(user, 30, reference="task:1", idempotency_key="h") == hold
    assert ledger.lots_total(user) == 70


async def test_a_settled_hold_cannot_be_settled_the_other_way() -> None:
    service, _, _ = _service()
    user, other = uuid.uuid4(), uuid.uuid4()
    await service.grant(user, 50)
    hold = await service.hold(user, 20)
    await service.capture(hold.id, other)
    with pytest.raises(Conflict) as raised:
        await service.release(hold.id)
    assert raised.value.code == "hold_settled"
    with pytest.raises(NotFound):
        await service.release(uuid.uuid4())


async def test_release_restores_the_original_expiries() -> None:
    service, ledger, _ = _service()
    user = uuid.uuid4()
    await service.grant(user, 40, expires_at=NOW + timedelta(days=3))
    hold = await service.hold(user, 40)
    await service.release(hold.id)
    assert ledger.holds[hold.id].status is HoldStatus.RELEASED
    assert {lot.expires_at for lot in ledger.lots.values() if lot.remaining} == {NOW + timedelta(days=3)}
    assert (await service.summary(user)).expiring_soon == 40


async def test_expired_points_cannot_be_spent_even_before_the_sweep() -> None:
    service, _, _ = _service()
    user = uuid.uuid4()
    await service.grant(user, 10, expires_at=NOW - timedelta(seconds=1))
    with pytest.raises(InsufficientPoints):
        await service.spend(user, 1)


async def test_admin_grant_checks_role_user_and_expiry_then_commits() -> None:
    service, ledger, commits = _service()
    user = uuid.uuid4()
    with pytest.raises(Forbidden):
        await service.admin_grant(
            Principal(id=user, username="ada", role=Role.USER), user, 5, reason="x", idempotency_key="k"
        )
    with pytest.raises(NotFound):
        await service.admin_grant(ADMIN, user, 5, reason="x", idempotency_key="k")
    ledger.known_users.add(user)
    with pytest.raises(ValidationFailed):
        await service.admin_grant(ADMIN, user, 5, reason="x", idempotency_key="k", expires_in_days=0)
    transaction = await service.admin_grant(ADMIN, user, 5, reason="x", idempotency_key="k", expires_in_days=2)
    assert transaction.kind is TransactionKind.GRANT
    assert commits.count == 1
    assert (await service.summary(user)).expiring_soon == 5
