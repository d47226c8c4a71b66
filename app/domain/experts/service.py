"""Use cases of experts: a user's own profile, the public directory and the batch refresh of figures.

Creating a profile leaves the user's role alone: roles are an admin's decision (see the users context).
"""

from __future__ import annotations

from uuid import UUID

from app.domain.experts.model import CategoryTally, ExpertDraft, ExpertProfile, ExpertSort, stats_of
from app.domain.experts.ports import ExpertRepository
from app.domain.shared.errors import Conflict, FieldIssue, NotFound, ValidationFailed
from app.domain.shared.ports import Clock, UnitOfWork

MAX_SKILLS = 20
SKILL_LENGTH = (1, 40)
MAX_CATEGORIES = 10
CATEGORY_LENGTH = (1, 40)  # as a task's category
BIO_LENGTH = 2_000


class ExpertProfileExists(Conflict):
    code = "expert_profile_exists"


class ExpertNotFound(NotFound):
    code = "expert_not_found"


def _distinct(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for value in values))


def _check_list(
    field: str, values: tuple[str, ...], most: int, length: tuple[int, int], issues: list[FieldIssue]
) -> None:
    low, high = length
    if len(values) > most:
        issues.append(FieldIssue(code="too_many", message=f"At most {most}.", field=field))
    if any(not low <= len(value) <= high for value in values):
        issues.append(
            FieldIssue(code="invalid_length", message=f"Each must be {low} to {high} characters.", field=field)
        )


def check_draft(draft: ExpertDraft) -> ExpertDraft:
    """The draft trimmed (categories lowercased, repeats dropped); every broken rule reported at once (422
    ``invalid_expert_profile``). Fields left ``None`` are not checked."""
    skills = None if draft.skills is None else _distinct(tuple(skill.strip() for skill in draft.skills))
    categories = None if draft.categories is None else _distinct(tuple(c.strip().lower() for c in draft.categories))
    bio = None if draft.bio is None else draft.bio.strip()
    issues: list[FieldIssue] = []
    if skills is not None:
        _check_list("skills", skills, MAX_SKILLS, SKILL_LENGTH, issues)
    if categories is not None:
        _check_list("categories", categories, MAX_CATEGORIES, CATEGORY_LENGTH, issues)
    if bio is not None and len(bio) > BIO_LENGTH:
        issues.append(FieldIssue(code="invalid_length", message=f"At most {BIO_LENGTH} characters.", field="bio"))
    if issues:
        raise ValidationFailed(
            "The expert profile breaks some rules.", code="invalid_expert_profile", issues=tuple(issues)
        )
    return ExpertDraft(skills=skills, categories=categories, bio=bio)


class ExpertService:
    def __init__(self, experts: ExpertRepository, uow: UnitOfWork, clock: Clock) -> None:
        self._experts = experts
        self._uow = uow
        self._clock = clock

    async def create(self, user_id: UUID, draft: ExpertDraft) -> ExpertProfile:
        """Raises ValidationFailed (``invalid_expert_profile``), ExpertProfileExists."""
        draft = check_draft(
            ExpertDraft(skills=draft.skills or (), categories=draft.categories or (), bio=draft.bio or "")
        )
        profile = await self._experts.insert(user_id, draft, self._clock.now())
        if profile is None:
            raise ExpertProfileExists("You already have an expert profile.")
        await self._uow.commit()
        return profile

    async def update(self, user_id: UUID, changes: ExpertDraft) -> ExpertProfile:
        """Raises ValidationFailed (``invalid_expert_profile``), ExpertNotFound (no profile yet)."""
        profile = await self._experts.update(user_id, check_draft(changes), self._clock.now())
        if profile is None:
            raise ExpertNotFound("You have no expert profile.")
        await self._uow.commit()
        return profile

    async def get(self, expert_id: UUID) -> ExpertProfile:
        profile = await self._experts.get(expert_id)
        if profile is None:
            raise ExpertNotFound("Expert not found.")
        return profile

    async def list_experts(
        self, sort: ExpertSort, category: str | None, limit: int, offset: int
    ) -> tuple[list[ExpertProfile], int]:
        return await self._experts.search(sort, category, limit, offset)

    async def refresh_auto_bios(self, batch_size: int) -> int:
        """Recompute every expert's ``completed_count``, ``average_rating`` and ``auto_bio`` from the tasks they
        completed as takers, in batches by id (keyset): one aggregate query and one write per batch, committed
        per batch. Never touches ``bio``. Returns how many profiles were refreshed."""
        refreshed = 0
        after: UUID | None = None
        while True:
            expert_ids, tallies = await self._experts.tallies(after, batch_size)
            if not expert_ids:
                return refreshed
            by_expert: dict[UUID, list[CategoryTally]] = {}
            for tally in tallies:
                by_expert.setdefault(tally.expert_id, []).append(tally)
            await self._experts.save_stats(
                [stats_of(expert_id, by_expert.get(expert_id, [])) for expert_id in expert_ids]
            )
            await self._uow.commit()
            refreshed += len(expert_ids)
            if len(expert_ids) < batch_size:
                return refreshed
            after = expert_ids[-1]
