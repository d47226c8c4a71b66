"""An in-memory ExpertRepository with the same contract as the SQL one (single-threaded)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from uuid import UUID

from app.domain.experts.model import CategoryTally, ExpertDraft, ExpertProfile, ExpertSort, ExpertStats

_UNRATED = -1.0


class InMemoryExperts:
    def __init__(self) -> None:
        self.profiles: dict[UUID, ExpertProfile] = {}
        self.usernames: dict[UUID, str] = {}
        # (taker_id, category, rating) of completed tasks, what ``tallies`` aggregates
        self.completed: list[tuple[UUID, str, int | None]] = []

    async def insert(self, user_id: UUID, draft: ExpertDraft, now: datetime) -> ExpertProfile | None:
        if any(profile.user_id == user_id for profile in self.profiles.values()):
            return None
        profile = ExpertProfile(
            id=uuid.uuid4(),
            user_id=user_id,
            username=self.usernames.get(user_id, "someone"),
            skills=draft.skills or (),
            categories=draft.categories or (),
            bio=draft.bio or "",
            auto_bio="",
            completed_count=0,
            average_rating=None,
            created_at=now,
            updated_at=now,
        )
        self.profiles[profile.id] = profile
        return profile

    async def get(self, expert_id: UUID) -> ExpertProfile | None:
        return self.profiles.get(expert_id)

    async def update(self, user_id: UUID, changes: ExpertDraft, now: datetime) -> ExpertProfile | None:
        for profile in self.profiles.values():
            if profile.user_id == user_id:
                changed = replace(
                    profile,
                    skills=profile.skills if changes.skills is None else changes.skills,
                    categories=profile.categories if changes.categories is None else changes.categories,
                    bio=profile.bio if changes.bio is None else changes.bio,
                    updated_at=now,
                )
                self.profiles[profile.id] = changed
                return changed
        return None

    async def search(
        self, sort: ExpertSort, category: str | None, limit: int, offset: int
    ) -> tuple[list[ExpertProfile], int]:
        def key(profile: ExpertProfile) -> tuple[float, float, str]:
            rating = _UNRATED if profile.average_rating is None else profile.average_rating
            if sort is ExpertSort.RATING:
                return (-rating, -profile.completed_count, str(profile.id))
            return (-profile.completed_count, -rating, str(profile.id))

        matching = [
            profile
            for profile in sorted(self.profiles.values(), key=key)
            if category is None or category in profile.categories
        ]
        return matching[offset : offset + limit], len(matching)

    async def tallies(self, after: UUID | None, batch_size: int) -> tuple[list[UUID], list[CategoryTally]]:
        ordered = sorted(self.profiles.values(), key=lambda profile: str(profile.id))
        batch = [profile for profile in ordered if after is None or str(profile.id) > str(after)][:batch_size]
        tallies = []
        for profile in batch:
            mine = [(category, rating) for taker, category, rating in self.completed if taker == profile.user_id]
            for category in sorted({category for category, _ in mine}):
                ratings = [rating for c, rating in mine if c == category and rating is not None]
                count = sum(1 for c, _ in mine if c == category)
                tallies.append(CategoryTally(profile.id, category, count, sum(ratings), len(ratings)))
            if not mine:
                tallies.append(CategoryTally(profile.id, None, 0, 0, 0))
        return [profile.id for profile in batch], tallies

    async def save_stats(self, stats: Sequence[ExpertStats]) -> None:
        for item in stats:
            self.profiles[item.expert_id] = replace(
                self.profiles[item.expert_id],
                completed_count=item.completed_count,
                average_rating=item.average_rating,
                auto_bio=item.auto_bio,
            )
