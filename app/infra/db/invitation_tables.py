"""Tables of the invitations context."""

from __future__ import annotations

import datetime
import uuid

from advanced_alchemy.base import UUIDBase
from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column


class InvitationCodeRecord(UUIDBase):
    __tablename__ = "invitation_codes"
    __table_args__ = (
        CheckConstraint("use_count >= 0 AND use_count <= max_uses", name="uses_within_max"),
        Index("ix_invitation_codes_inviter_created", "inviter_id", "created_at"),
        # the expiry sweep, also when nothing is due
        Index(
            "ix_invitation_codes_due",
            "expires_at",
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
    )

    code: Mapped[str] = mapped_column(String(16), unique=True)
    inviter_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"))
    max_uses: Mapped[int] = mapped_column(Integer)
    use_count: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    status: Mapped[str] = mapped_column(String(16))  # active, revoked, expired
    created_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    closed_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)


class InvitationRedemptionRecord(UUIDBase):
    """Who registered with which code; an account uses at most one invitation."""

    __tablename__ = "invitation_redemptions"

    code_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("invitation_codes.id", ondelete="CASCADE"), index=True)
    invitee_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
