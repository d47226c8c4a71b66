"""An in-memory InvitationRepository (single-threaded) with the SQL adapter's contract."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from uuid import UUID, uuid4

from app.domain.invitations.model import InvitationCode, InvitationStatus
from app.domain.invitations.ports import AlreadyRedeemed, CodeTaken


class InMemoryInvitationRepository:
    def __init__(self) -> None:
        self.codes: dict[UUID, InvitationCode] = {}
        self.redemptions: dict[UUID, UUID] = {}  # invitee -> code id
        self.taken_codes: set[str] = set()  # codes that "already exist", to exercise collisions

    async def lock_inviter(self, user_id: UUID) -> None:
        return None

    async def count_active(self, inviter_id: UUID, now: datetime) -> int:
        return sum(
            1 for c in self.codes.values() if c.inviter_id == inviter_id and c.status(now) is InvitationStatus.ACTIVE
        )

    async def add(self, code: InvitationCode) -> None:
        if code.code in self.taken_codes or any(c.code == code.code for c in self.codes.values()):
            raise CodeTaken
        self.codes[code.id] = code

    async def take_use(self, code: str, now: datetime) -> InvitationCode | None:
        for stored in self.codes.values():
            if stored.code == code and stored.status(now) is InvitationStatus.ACTIVE:
                updated = replace(stored, use_count=stored.use_count + 1)
                self.codes[stored.id] = updated
                return updated
        return None

    async def find_by_code(self, code: str) -> InvitationCode | None:
        return next((c for c in self.codes.values() if c.code == code), None)

    async def record_redemption(self, code_id: UUID, invitee_id: UUID, now: datetime) -> UUID:
        if invitee_id in self.redemptions:
            raise AlreadyRedeemed
        self.redemptions[invitee_id] = code_id
        return uuid4()

    async def revoke(self, code_id: UUID, inviter_id: UUID, now: datetime) -> InvitationCode | None:
        stored = self.codes.get(code_id)
        if stored is None or stored.inviter_id != inviter_id:
            return None
        self.codes[code_id] = replace(stored, stored_status=InvitationStatus.REVOKED)
        return self.codes[code_id]

    async def list_for(
        self, inviter_id: UUID, status: InvitationStatus | None, now: datetime, limit: int, offset: int
    ) -> tuple[list[InvitationCode], int]:
        mine = [
            c
            for c in sorted(self.codes.values(), key=lambda c: c.created_at, reverse=True)
            if c.inviter_id == inviter_id and (status is None or c.status(now) is status)
        ]
        return mine[offset : offset + limit], len(mine)

    async def expire_due(self, now: datetime, batch_size: int) -> int:
        due = [c for c in self.codes.values() if c.stored_status is InvitationStatus.ACTIVE and c.expires_at <= now][
            :batch_size
        ]
        for c in due:
            self.codes[c.id] = replace(c, stored_status=InvitationStatus.EXPIRED)
        return len(due)
