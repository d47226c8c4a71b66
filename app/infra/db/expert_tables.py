"""ORM tables of experts. The schema itself is created only by the Alembic migrations."""

from __future__ import annotations

import uuid

from advanced_alchemy.base import UUIDAuditBase, UUIDBase
from advanced_alchemy.types import GUID
from sqlalchemy import JSON, CheckConstraint, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column


class ExpertRecord(UUIDAuditBase):
    """A user's expert profile (at most one); the figures are refreshed by the batch job."""

    __tablename__ = "experts"
    __table_args__ = (
        CheckConstraint("completed_count >= 0", name="completed_count"),
        CheckConstraint("average_rating IS NULL OR average_rating BETWEEN 1 AND 5", name="rating_range"),
        Index("ix_experts_rating", "average_rating", "completed_count"),
        Index("ix_experts_completed", "completed_count", "average_rating"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    skills: Mapped[list[str]] = mapped_column(JSON)
    categories: Mapped[list[str]] = mapped_column(JSON)
    bio: Mapped[str] = mapped_column(Text, server_default=text("''"))
    auto_bio: Mapped[str] = mapped_column(Text, server_default=text("''"))
    completed_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    average_rating: Mapped[float | None] = mapped_column(Float, nullable=True)


class ExpertCategoryRecord(UUIDBase):
    """One category of an expert: what the public list filters on (``experts.categories`` is what it shows)."""

    __tablename__ = "expert_categories"
    __table_args__ = (UniqueConstraint("category", "expert_id", name="uq_expert_categories_category_expert"),)

    expert_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("experts.id", ondelete="CASCADE"), index=True)
    category: Mapped[str] = mapped_column(String(40))
