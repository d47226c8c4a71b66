"""ORM tables. The schema itself is created only by the Alembic migrations."""

from __future__ import annotations

import datetime
import uuid

from advanced_alchemy.base import UUIDAuditBase, UUIDBase
from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column


class UserRecord(UUIDAuditBase):
    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(254), unique=True)
    username: Mapped[str] = mapped_column(String(32))
    # casefolded username: uniqueness must not depend on case, in any script
    username_key: Mapped[str] = mapped_column(String(32), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), server_default=text("'user'"))
    display_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    bio: Mapped[str | None] = mapped_column(Text, nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))


class RefreshTokenRecord(UUIDBase):
    """One refresh token; every rotation of a login shares its ``family_id``."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_family_id", "family_id"), Index("ix_refresh_tokens_user_id", "user_id"))

    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"))
    family_id: Mapped[uuid.UUID] = mapped_column(GUID)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    expires_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    used_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    revoked_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)


class PointLotRecord(UUIDBase):
    """Points credited together, with one expiry; debits lower ``remaining``."""

    __tablename__ = "point_lots"
    __table_args__ = (
        CheckConstraint("remaining >= 0 AND remaining <= amount", name="remaining_within_amount"),
        # debits and balances read only lots with points left: keep that index small
        Index(
            "ix_point_lots_user_spendable",
            "user_id",
            "expires_at",
            postgresql_where=text("remaining > 0"),
            sqlite_where=text("remaining > 0"),
        ),
        # the expiry sweep, also when nothing is due
        Index(
            "ix_point_lots_due",
            "expires_at",
            postgresql_where=text("remaining > 0"),
            sqlite_where=text("remaining > 0"),
        ),
        # A user's ledger reads the expire entries kept on their expired lots, newest first. Partial, so
        # that only the sweep writes to it (one entry per lot it expires: the sweep's UPDATE changes
        # ``remaining``, which the partial indexes name, so it is never a HOT update and every index whose
        # predicate the new row meets gets an entry; a plain index on ``user_id`` would cost the sweep the
        # same and every credit one more). ``id`` makes the order of the ledger page exact.
        Index(
            "ix_point_lots_user_expired",
            "user_id",
            "expired_at",
            "id",
            postgresql_where=text("expired_amount IS NOT NULL"),
            sqlite_where=text("expired_amount IS NOT NULL"),
        ),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"))
    amount: Mapped[int] = mapped_column(Integer)
    remaining: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    created_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    # Set together by the expiry sweep, once: the lot's ``expire`` entry of the ledger (it lost
    # ``expired_amount`` points at ``expired_at``), kept here rather than as a row of ``point_transactions``.
    expired_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    expired_amount: Mapped[int | None] = mapped_column(Integer, nullable=True)


class PointTransactionRecord(UUIDBase):
    """The append-only ledger, but for the ``expire`` entries, which live on their lots (see ``points.py``):
    the sum of a user's amounts here and of those entries is their balance."""

    __tablename__ = "point_transactions"
    __table_args__ = (Index("ix_point_transactions_user_created", "user_id", "created_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reference: Mapped[str | None] = mapped_column(String(100), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hold_id: Mapped[uuid.UUID | None] = mapped_column(GUID, nullable=True)
    lot_id: Mapped[uuid.UUID | None] = mapped_column(GUID, nullable=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))


class PointHoldRecord(UUIDBase):
    """Points reserved until released to their owner or captured by another user."""

    __tablename__ = "point_holds"

    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    amount: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # [{"lot_id", "amount", "expires_at"}]: where the points came from, restored on release
    allocations: Mapped[list[dict[str, str | int]]] = mapped_column(
        JSON
    )  # advanced-alchemy's JsonB does not work with SQLAlchemy 2.1
    created_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    settled_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
