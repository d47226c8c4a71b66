"""ORM tables of coupons. The schema itself is created only by the Alembic migrations."""

from __future__ import annotations

import datetime
import uuid

from advanced_alchemy.base import UUIDAuditBase, UUIDBase
from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column


class CouponTemplateRecord(UUIDAuditBase):
    """A batch of identical coupons; ``claimed_count`` counts the coupons claimed from it."""

    __tablename__ = "coupon_templates"
    __table_args__ = (
        # the last line of defence of the total: no claim can push the count past it
        CheckConstraint("claimed_count >= 0 AND claimed_count <= total_quantity", name="claimed_within_total"),
        CheckConstraint("value > 0 AND total_quantity > 0 AND per_user_limit > 0", name="positive_amounts"),
        CheckConstraint("valid_until > valid_from", name="window_order"),
        CheckConstraint("(coupon_expires_at IS NULL) <> (coupon_valid_days IS NULL)", name="one_validity"),
        # the sweep, also when nothing is due (and the catalogue of open templates)
        Index(
            "ix_coupon_templates_due",
            "valid_until",
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
        Index("ix_coupon_templates_created", "created_at"),
    )

    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[int] = mapped_column(Integer)
    min_reward: Mapped[int | None] = mapped_column(Integer, nullable=True)
    total_quantity: Mapped[int] = mapped_column(Integer)
    per_user_limit: Mapped[int] = mapped_column(Integer)
    claimed_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    valid_from: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    valid_until: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    coupon_expires_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    coupon_valid_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), server_default=text("'active'"))
    closed_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)


class CouponRecord(UUIDBase):
    """One claimed coupon; name, kind, value and minimum are copied from its template at claim time."""

    __tablename__ = "coupons"
    __table_args__ = (
        # the per-user limit counts a user's coupons of one template
        Index("ix_coupons_template_owner", "template_id", "owner_id"),
        # "my coupons", newest first
        Index("ix_coupons_owner_claimed", "owner_id", "claimed_at"),
        # the sweep, also when nothing is due
        Index(
            "ix_coupons_due",
            "expires_at",
            postgresql_where=text("status = 'claimed'"),
            sqlite_where=text("status = 'claimed'"),
        ),
    )

    template_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("coupon_templates.id"))
    owner_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[int] = mapped_column(Integer)
    min_reward: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    claimed_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    expires_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    used_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    # the task this coupon discounted (no foreign key yet: tasks have no table so far)
    task_id: Mapped[uuid.UUID | None] = mapped_column(GUID, nullable=True)
    expired_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
