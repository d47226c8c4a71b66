"""Request and response bodies of experts (a contract, like ``schemas.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from app.domain.experts.model import ExpertDraft, ExpertProfile

# Bounds on raw input only; the domain checks the rules (after trimming) and reports every broken one.
Skill = Annotated[str, msgspec.Meta(min_length=1, max_length=80, examples=["furniture assembly"])]
Skills = Annotated[list[Skill], msgspec.Meta(max_length=50)]
Category = Annotated[str, msgspec.Meta(min_length=1, max_length=60, examples=["furniture"])]
Categories = Annotated[list[Category], msgspec.Meta(max_length=30)]
Bio = Annotated[str, msgspec.Meta(max_length=4_000)]


class CreateExpertRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """At most 20 skills (1 to 40 characters each), 10 categories (lowercased, 1 to 40 characters) and a
    bio of 2,000 characters."""

    skills: Skills
    categories: Categories = msgspec.field(default_factory=list)
    bio: Bio = ""

    def to_draft(self) -> ExpertDraft:
        return ExpertDraft(skills=tuple(self.skills), categories=tuple(self.categories), bio=self.bio)


class UpdateExpertRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields given change; the same bounds as on creation."""

    skills: Skills | None = None
    categories: Categories | None = None
    bio: Bio | None = None

    def to_draft(self) -> ExpertDraft:
        return ExpertDraft(
            skills=None if self.skills is None else tuple(self.skills),
            categories=None if self.categories is None else tuple(self.categories),
            bio=self.bio,
        )


class ExpertResponse(msgspec.Struct, kw_only=True):
    """`auto_bio`, `completed_count` and `average_rating` (null when no completed task was rated) are
    refreshed periodically from the tasks the expert completed."""

    id: UUID
    user_id: UUID
    username: str
    skills: list[str]
    categories: list[str]
    bio: str
    auto_bio: str
    completed_count: int
    average_rating: float | None
    updated_at: datetime

    @classmethod
    def of(cls, profile: ExpertProfile) -> ExpertResponse:
        return cls(
            id=profile.id,
            user_id=profile.user_id,
            username=profile.username,
            skills=list(profile.skills),
            categories=list(profile.categories),
            bio=profile.bio,
            auto_bio=profile.auto_bio,
            completed_count=profile.completed_count,
            average_rating=profile.average_rating,
            updated_at=profile.updated_at,
        )


class ExpertPage(msgspec.Struct, kw_only=True):
    items: list[ExpertResponse]
    total: int
    limit: int
    offset: int
