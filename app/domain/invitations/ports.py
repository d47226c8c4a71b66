from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

from app.domain.invitations.model import InvitationCode, InvitationStatus


class InvitationRepository(Protocol):
    async def lock_inviter(self, user_id: UUID) -> None:
        """Serialise code creation per user (so the active-code limit holds under concurrency)."""
        ...

    async def count_active(self, inviter_id: UUID, now: datetime) -> int: ...

    async def add(self, code: InvitationCode) -> None:
        """Insert; raises ``CodeTaken`` when the random code collides with an existing one."""
        ...

    async def take_use(self, code: str, now: datetime) -> InvitationCode | None:
        """Atomically count one use of a usable code (active, unexpired, uses left) and return it.

        ``None`` when the code cannot be used; of concurrent callers no more than
        ``max_uses`` ever succeed.
        """
        ...

    async def find_by_code(self, code: str) -> InvitationCode | None: ...

    async def record_redemption(self, code_id: UUID, invitee_id: UUID, now: datetime) -> UUID:
        """Store who used the code; raises ``AlreadyRedeemed`` for a second use by the same account."""
        ...

    async def revoke(self, code_id: UUID, inviter_id: UUID, now: datetime) -> InvitationCode | None:
        """Revoke the inviter's own code; ``None`` when it is not theirs (or unknown)."""
        ...

    async def list_for(
        self, inviter_id: UUID, status: InvitationStatus | None, now: datetime, limit: int, offset: int
    ) -> tuple[list[InvitationCode], int]: ...

    async def expire_due(self, now: datetime, batch_size: int) -> int: ...


class CodeTaken(Exception):
    """A generated code already exists (vanishingly rare; the service draws another)."""


class AlreadyRedeemed(Exception):
    """The account already used an invitation."""
