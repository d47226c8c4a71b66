"""Experts: users who present their skills; their figures come from the tasks they completed as takers.

``completed_count``, ``average_rating`` and ``auto_bio`` are kept on the profile (so the
public list sorts by them) and recomputed in batches by ``ExpertService.refresh_auto_bios``;
the expert's own ``bio`` is theirs alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

TOP_CATEGORIES = 2


class ExpertSort(StrEnum):
    RATING = "rating"  # best average rating first (unrated last), then most completed
    COMPLETED = "completed"  # most completed tasks first, then best rating


@dataclass(frozen=True, slots=True)
class ExpertDraft:
    """What an expert fills in; on a change, ``None`` leaves a field as it is."""

    skills: tuple[str, ...] | None = None
    categories: tuple[str, ...] | None = None
    bio: str | None = None


@dataclass(frozen=True, slots=True)
class ExpertProfile:
    id: UUID
    user_id: UUID
    username: str
    skills: tuple[str, ...]
    categories: tuple[str, ...]
    bio: str
    auto_bio: str
    completed_count: int
    average_rating: float | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CategoryTally:
    """An expert's completed tasks of one category (``category`` is ``None`` when they completed none)."""

    expert_id: UUID
    category: str | None
    completed: int
    rating_sum: int
    rated: int


@dataclass(frozen=True, slots=True)
class ExpertStats:
    expert_id: UUID
    completed_count: int
    average_rating: float | None
    top_categories: tuple[str, ...]

    @property
    def auto_bio(self) -> str:
        """One line, e.g. ``12 tasks completed · average rating 4.6 · mostly design, writing``."""
        if self.completed_count == 0:
            return "No completed tasks yet"
        parts = [f"{self.completed_count} task{'' if self.completed_count == 1 else 's'} completed"]
        if self.average_rating is not None:
            parts.append(f"average rating {self.average_rating:.1f}")
        if self.top_categories:
            parts.append(f"mostly {', '.join(self.top_categories)}")
        return " · ".join(parts)


def stats_of(expert_id: UUID, tallies: Sequence[CategoryTally]) -> ExpertStats:
    """Sum an expert's per-category tallies: the average is over rated tasks only; the top categories are the
    most completed (ties by name)."""
    counted = [tally for tally in tallies if tally.category is not None and tally.completed > 0]
    completed = sum(tally.completed for tally in counted)
    rated = sum(tally.rated for tally in counted)
    average = round(sum(tally.rating_sum for tally in counted) / rated, 2) if rated else None
    ranked = sorted(counted, key=lambda tally: (-tally.completed, tally.category))
    return ExpertStats(
        expert_id=expert_id,
        completed_count=completed,
        average_rating=average,
        top_categories=tuple(tally.category for tally in ranked[:TOP_CATEGORIES] if tally.category is not None),
    )
