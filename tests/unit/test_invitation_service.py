from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.invitations.model import InvitationPolicy, InvitationStatus
from app.domain.invitations.service import CODE_ALPHABET, CODE_LENGTH, InvitationLimitReached, InvitationService
from app.domain.points.service import PointsPolicy, PointsService
from app.domain.shared.errors import NotFound, ValidationFailed
from app.domain.users.model import Principal, Role, User
from tests.fakes.invitations import InMemoryInvitationRepository
from tests.fakes.points import InMemoryPointsLedger

NOW = datetime(2026, 6, 1, tzinfo=UTC)
POLICY = InvitationPolicy(max_active_per_user=2, reward_inviter=100, reward_invitee=50, default_lifetime_days=30)


class _Clock:
    def __init__(self) -> None:
        self.current = NOW

    def now(self) -> datetime:
        return self.current


class _Uow:
    async def commit(self) -> None:
        return None

    async def rollback(self) -> None:
        return None


def _principal() -> Principal:
    return Principal(id=uuid.uuid4(), username="ada", role=Role.USER)


def _new_user() -> User:
    return User(
        id=uuid.uuid4(),
        email="n@example.com",
        username="newbie",
        role=Role.USER,
        display_name=None,
        bio=None,
        is_active=True,
        created_at=NOW,
        updated_at=NOW,
    )


def _service(
    policy: InvitationPolicy = POLICY,
) -> tuple[InvitationService, InMemoryInvitationRepository, InMemoryPointsLedger, _Clock]:
    repository, ledger, clock = InMemoryInvitationRepository(), InMemoryPointsLedger(), _Clock()
    points = PointsService(ledger, _Uow(), clock, PointsPolicy(timedelta(days=365)))
    return InvitationService(repository, points, _Uow(), clock, policy), repository, ledger, clock


async def test_a_new_code_is_readable_and_active_with_the_default_lifetime() -> None:
    service, _, _, _ = _service()
    view = await service.create(_principal(), max_uses=3, expires_at=None)
    assert view.status is InvitationStatus.ACTIVE
    assert len(view.invitation.code) == CODE_LENGTH
    assert set(view.invitation.code) <= set(CODE_ALPHABET)
    assert view.invitation.expires_at == NOW + timedelta(days=30)


async def test_the_active_code_limit_holds_and_revoking_frees_a_slot() -> None:
    service, _, _, _ = _service()
    inviter = _principal()
    first = await service.create(inviter, max_uses=1, expires_at=None)
    await service.create(inviter, max_uses=1, expires_at=None)
    with pytest.raises(InvitationLimitReached):
        await service.create(inviter, max_uses=1, expires_at=None)
    await service.revoke(inviter, first.invitation.id)
    await service.create(inviter, max_uses=1, expires_at=None)


@pytest.mark.parametrize(
    ("max_uses", "expires_in", "field"),
    [
        (0, None, "max_uses"),
        (1001, None, "max_uses"),
        (1, timedelta(seconds=-1), "expires_at"),
        (1, timedelta(days=400), "expires_at"),
    ],
)
async def test_bad_uses_or_expiry_are_refused(max_uses: int, expires_in: timedelta | None, field: str) -> None:
    service, _, _, _ = _service()
    with pytest.raises(ValidationFailed) as raised:
        await service.create(
            _principal(), max_uses=max_uses, expires_at=None if expires_in is None else NOW + expires_in
        )
    assert raised.value.issues[0].field == field


async def test_redeeming_rewards_inviter_and_invitee_and_counts_the_use() -> None:
    service, repository, ledger, _ = _service()
    inviter = _principal()
    view = await service.create(inviter, max_uses=2, expires_at=None)
    invitee = _new_user()
    await service.redeem_for_new_user(view.invitation.code.lower(), invitee)  # codes are case-insensitive
    assert ledger.lots_total(inviter.id) == 100
    assert ledger.lots_total(invitee.id) == 50
    assert repository.codes[view.invitation.id].use_count == 1


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("unknown", "invitation_not_found"),
        ("revoked", "invitation_revoked"),
        ("expired", "invitation_expired"),
        ("used_up", "invitation_used_up"),
    ],
)
async def test_unusable_codes_are_refused_with_their_reason(setup: str, expected: str) -> None:
    service, _, _, clock = _service()
    inviter = _principal()
    view = await service.create(inviter, max_uses=1, expires_at=None)
    code = view.invitation.code
    if setup == "unknown":
        code = "NOPE"
    elif setup == "revoked":
        await service.revoke(inviter, view.invitation.id)
    elif setup == "expired":
        clock.current = NOW + timedelta(days=31)
    else:
        await service.redeem_for_new_user(code, _new_user())
    with pytest.raises(ValidationFailed) as raised:
        await service.redeem_for_new_user(code, _new_user())
    assert raised.value.issues[0].code == expected
    assert raised.value.issues[0].field == "invitation_code"


async def test_an_account_redeems_at_most_one_invitation() -> None:
    service, _, _, _ = _service()
    invitee = _new_user()
    first = await service.create(_principal(), max_uses=1, expires_at=None)
    second = await service.create(_principal(), max_uses=1, expires_at=None)
    await service.redeem_for_new_user(first.invitation.code, invitee)
    with pytest.raises(ValidationFailed) as raised:
        await service.redeem_for_new_user(second.invitation.code, invitee)
    assert raised.value.issues[0].code == "invitation_already_used"


async def test_zero_rewards_turn_rewards_off() -> None:
    policy = InvitationPolicy(max_active_per_user=2, reward_inviter=0, reward_invitee=0, default_lifetime_days=30)
    service, _, ledger, _ = _service(policy)
    view = await service.create(_principal(), max_uses=1, expires_at=None)
    await service.redeem_for_new_user(view.invitation.code, _new_user())
    assert ledger.transactions == []


async def test_another_users_code_cannot_be_revoked_and_looks_unknown() -> None:
    service, _, _, _ = _service()
    view = await service.create(_principal(), max_uses=1, expires_at=None)
    with pytest.raises(NotFound) as raised:
        await service.revoke(_principal(), view.invitation.id)
    assert raised.value.code == "invitation_not_found"


async def test_a_colliding_code_is_drawn_again() -> None:
    service, repository, _, _ = _service()
    original = repository.add
    calls = 0

    async def collide_once(code):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 1:
            repository.taken_codes.add(code.code)
        await original(code)

    repository.add = collide_once  # type: ignore[method-assign]
    view = await service.create(_principal(), max_uses=1, expires_at=None)
    assert calls == 2
    assert view.invitation.code not in repository.taken_codes


async def test_listing_shows_status_now_and_expiry_sweep_marks_them() -> None:
    service, _, _, clock = _service()
    inviter = _principal()
    await service.create(inviter, max_uses=1, expires_at=NOW + timedelta(days=1))
    await service.create(inviter, max_uses=1, expires_at=NOW + timedelta(days=10))
    clock.current = NOW + timedelta(days=2)
    expired, total = await service.list_mine(inviter, InvitationStatus.EXPIRED, 10, 0)
    assert total == 1
    assert expired[0].status is InvitationStatus.EXPIRED
    assert await service.expire_due(clock.current, 10) == 1
    assert await service.expire_due(clock.current, 10) == 0
