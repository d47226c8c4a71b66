"""Invitation codes: creation within a per-user limit, redemption at registration, revocation, expiry."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta
from uuid import UUID

from app.domain.invitations.model import InvitationCode, InvitationPolicy, InvitationStatus, InvitationView
from app.domain.invitations.ports import AlreadyRedeemed, CodeTaken, InvitationRepository
from app.domain.points.service import PointsService
from app.domain.shared.errors import Conflict, FieldIssue, NotFound, ValidationFailed
from app.domain.shared.ports import Clock, UnitOfWork
from app.domain.users.model import Principal, User

# No 0/O or 1/I/L: codes are read aloud and typed by hand.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 10
_DRAWS = 5

_REFUSALS = {
    InvitationStatus.REVOKED: ("invitation_revoked", "Invitation code was revoked."),
    InvitationStatus.EXPIRED: ("invitation_expired", "Invitation code has expired."),
    InvitationStatus.USED_UP: ("invitation_used_up", "Invitation code has no uses left."),
}


class InvitationLimitReached(Conflict):
    code = "invitation_limit_reached"


def normalize_code(code: str) -> str:
    return code.strip().upper()


def _invalid(code: str, message: str, field: str) -> ValidationFailed:
    return ValidationFailed(message, issues=(FieldIssue(code=code, message=message, field=field),))


class InvitationService:
    def __init__(
        self,
        invitations: InvitationRepository,
        points: PointsService,
        uow: UnitOfWork,
        clock: Clock,
        policy: InvitationPolicy,
    ) -> None:
        self._invitations = invitations
        self._points = points
        self._uow = uow
        self._clock = clock
        self._policy = policy

    async def create(self, actor: Principal, *, max_uses: int, expires_at: datetime | None) -> InvitationView:
        """A new code of the caller's; at most ``max_active_per_user`` usable codes at a time."""
        now = self._clock.now()
        policy = self._policy
        if not 1 <= max_uses <= policy.max_uses_limit:
            raise _invalid("out_of_range", f"max_uses must be 1 to {policy.max_uses_limit}.", "max_uses")
        expiry = expires_at or now + timedelta(days=policy.default_lifetime_days)
        if not now < expiry <= now + timedelta(days=policy.max_lifetime_days):
            raise _invalid(
                "out_of_range", f"expires_at must be in the next {policy.max_lifetime_days} days.", "expires_at"
            )
        await self._invitations.lock_inviter(actor.id)
        if await self._invitations.count_active(actor.id, now) >= policy.max_active_per_user:
            raise InvitationLimitReached(
                f"You already have {policy.max_active_per_user} active invitation codes; revoke one first."
            )
        for _ in range(_DRAWS):
            invitation = InvitationCode(
                id=uuid.uuid4(),
                code="".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH)),
                inviter_id=actor.id,
                max_uses=max_uses,
                use_count=0,
                expires_at=expiry,
                stored_status=InvitationStatus.ACTIVE,
                created_at=now,
            )
            try:
                await self._invitations.add(invitation)
            except CodeTaken:
                continue
            await self._uow.commit()
            return InvitationView(invitation, InvitationStatus.ACTIVE)
        raise Conflict("Could not draw a free invitation code; retry.", code="invitation_code_collision")

    async def redeem_for_new_user(self, code: str, user: User) -> None:
        """Use a code for an account being registered, and reward both, inside the registration's transaction.

        Self-referral is impossible by construction: the invitee is an account that did not exist
        before this transaction. Raises ``ValidationFailed`` (field ``invitation_code``) so the
        registration, and with it the new account, is rolled back.
        """
        now = self._clock.now()
        normalized = normalize_code(code)
        invitation = await self._invitations.take_use(normalized, now)
        if invitation is None:
            known = await self._invitations.find_by_code(normalized)
            if known is None:
                raise _invalid("invitation_not_found", "Invitation code is not valid.", "invitation_code")
            reason, message = _REFUSALS.get(known.status(now), _REFUSALS[InvitationStatus.USED_UP])
            raise _invalid(reason, message, "invitation_code")
        try:
            redemption_id = await self._invitations.record_redemption(invitation.id, user.id, now)
        except AlreadyRedeemed:
            raise _invalid(
                "invitation_already_used", "This account already used an invitation.", "invitation_code"
            ) from None
        reference = f"invitation:{invitation.id}"
        rewards = (
            (invitation.inviter_id, self._policy.reward_inviter, "invitation accepted", "inviter"),
            (user.id, self._policy.reward_invitee, "invited", "invitee"),
        )
        for user_id, amount, reason, role in rewards:
            if amount > 0:  # a reward of 0 turns it off
                await self._points.grant(
                    user_id,
                    amount,
                    reason=reason,
                    reference=reference,
                    idempotency_key=f"invitation:{redemption_id}:{role}",
                )

    async def revoke(self, actor: Principal, invitation_id: UUID) -> None:
        """Revoke one of the caller's codes; another user's code answers like an unknown one."""
        if await self._invitations.revoke(invitation_id, actor.id, self._clock.now()) is None:
            raise NotFound("Invitation code not found.", code="invitation_not_found")
        await self._uow.commit()

    async def list_mine(
        self, actor: Principal, status: InvitationStatus | None, limit: int, offset: int
    ) -> tuple[list[InvitationView], int]:
        """The caller's codes, newest first, optionally only those with ``status`` now."""
        now = self._clock.now()
        codes, total = await self._invitations.list_for(actor.id, status, now, limit, offset)
        return [InvitationView(code, code.status(now)) for code in codes], total

    async def expire_due(self, now: datetime, batch_size: int) -> int:
        """Mark one batch of codes past ``expires_at`` expired and commit; returns how many."""
        expired = await self._invitations.expire_due(now, batch_size)
        await self._uow.commit()
        return expired
