"""What the experts context needs from storage."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

from app.domain.experts.model import CategoryTally, ExpertDraft, ExpertProfile, ExpertSort, ExpertStats


class ExpertRepository(Protocol):
    async def insert(self, user_id: UUID, draft: ExpertDraft, now: datetime) -> ExpertProfile | None:
        """Create the user's profile (every field of ``draft`` given); ``None`` if they have one already."""
        ...

    async def get(self, expert_id: UUID) -> ExpertProfile | None: ...

    async def update(self, user_id: UUID, changes: ExpertDraft, now: datetime) -> ExpertProfile | None:
        """Change the given fields of the user's profile; ``None`` if they have none."""
        ...

    async def search(
        self, sort: ExpertSort, category: str | None, limit: int, offset: int
    ) -> tuple[list[ExpertProfile], int]:
        """One page (ties broken by id) and the total count, in one query unless the page is empty."""
        ...

    async def tallies(self, after: UUID | None, batch_size: int) -> tuple[list[UUID], list[CategoryTally]]:
        """The next ``batch_size`` experts by id after ``after`` and, in the same query, their completed tasks
        counted per category."""
        ...

    async def save_stats(self, stats: Sequence[ExpertStats]) -> None:
        """Write figures and ``auto_bio`` of a batch in one statement; ``bio`` stays."""
        ...
