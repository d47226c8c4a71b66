"""Invitation codes: a user invites others; each registration with a valid code rewards both."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID


class InvitationStatus(StrEnum):
    ACTIVE = "active"
    USED_UP = "used_up"  # derived: every use taken
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class InvitationCode:
    id: UUID
    code: str
    inviter_id: UUID
    max_uses: int
    use_count: int
    expires_at: datetime
    stored_status: InvitationStatus  # active, revoked, or expired (by the expiry sweep)
    created_at: datetime

    def status(self, now: datetime) -> InvitationStatus:
        """What a client sees; stored state plus time, so it is right even before the expiry sweep ran."""
        if self.stored_status is InvitationStatus.REVOKED:
            return InvitationStatus.REVOKED
        if self.stored_status is InvitationStatus.EXPIRED or self.expires_at <= now:
            return InvitationStatus.EXPIRED
        if self.use_count >= self.max_uses:
            return InvitationStatus.USED_UP
        return InvitationStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class InvitationView:
    """A code with the status it has now."""

    invitation: InvitationCode
    status: InvitationStatus


@dataclass(frozen=True, slots=True)
class InvitationPolicy:
    max_active_per_user: int
    reward_inviter: int
    reward_invitee: int
    default_lifetime_days: int
    max_lifetime_days: int = 365
    max_uses_limit: int = 1000
