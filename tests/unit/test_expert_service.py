from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from app.domain.experts.model import CategoryTally, ExpertDraft, ExpertSort, ExpertStats, stats_of
from app.domain.experts.service import ExpertNotFound, ExpertProfileExists, ExpertService
from app.domain.shared.errors import ValidationFailed
from tests.fakes.experts import InMemoryExperts

NOW = datetime(2026, 6, 1, tzinfo=UTC)


class _Clock:
    def now(self) -> datetime:
        return NOW


class _Uow:
    def __init__(self) -> None:
        self.commits = 0

    async def commit(self) -> None:
        self.commits += 1

    async def rollback(self) -> None:
        pass


def _service() -> tuple[ExpertService, InMemoryExperts, _Uow]:
    store, uow = InMemoryExperts(), _Uow()
    return ExpertService(store, uow, _Clock()), store, uow


async def test_create_trims_lowercases_and_refuses_a_second_profile() -> None:
    service, _, _ = _service()
    user = uuid.uuid4()
    draft = ExpertDraft(
        skills=(" sanding ", "sanding", "paint"), categories=("Design", "design ", "Writing"), bio=" hi "
    )
    profile = await service.create(user, draft)
    assert (profile.skills, profile.categories, profile.bio) == (("sanding", "paint"), ("design", "writing"), "hi")
    with pytest.raises(ExpertProfileExists):
        await service.create(user, draft)


async def test_every_broken_rule_is_reported_at_once() -> None:
    service, _, _ = _service()
    draft = ExpertDraft(skills=tuple(f"s{i}" for i in range(21)), categories=("  ", "x" * 41), bio="b" * 2_001)
    with pytest.raises(ValidationFailed) as caught:
        await service.create(uuid.uuid4(), draft)
    assert caught.value.code == "invalid_expert_profile"
    assert sorted((issue.field, issue.code) for issue in caught.value.issues) == [
        ("bio", "invalid_length"),
        ("categories", "invalid_length"),
        ("skills", "too_many"),
    ]


async def test_update_changes_only_the_given_fields() -> None:
    service, _, _ = _service()
    user = uuid.uuid4()
    with pytest.raises(ExpertNotFound):
        await service.update(user, ExpertDraft(bio="x"))
    await service.create(user, ExpertDraft(skills=("a",), categories=("design",), bio="mine"))
    changed = await service.update(user, ExpertDraft(categories=("Writing",)))
    assert (changed.skills, changed.categories, changed.bio) == (("a",), ("writing",), "mine")


def test_stats_and_auto_bio() -> None:
    expert = uuid.uuid4()
    tallies = [
        CategoryTally(expert, "writing", 3, 9, 2),
        CategoryTally(expert, "design", 3, 10, 2),
        CategoryTally(expert, "garden", 1, 0, 0),
    ]
    stats = stats_of(expert, tallies)
    assert (stats.completed_count, stats.average_rating, stats.top_categories) == (7, 4.75, ("design", "writing"))
    assert stats.auto_bio == "7 tasks completed · average rating 4.8 · mostly design, writing"
    assert stats_of(expert, [CategoryTally(expert, None, 0, 0, 0)]).auto_bio == "No completed tasks yet"
    assert ExpertStats(expert, 1, None, ("garden",)).auto_bio == "1 task completed · mostly garden"


async def test_refresh_walks_every_batch_and_never_touches_bio() -> None:
    service, store, uow = _service()
    users = [uuid.uuid4() for _ in range(5)]
    for user in users:
        await service.create(user, ExpertDraft(skills=("a",), bio="my own words"))
    store.completed += [(users[0], "design", 5), (users[0], "design", 4), (users[1], "writing", None)]
    assert await service.refresh_auto_bios(batch_size=2) == 5
    assert uow.commits == 5 + 3  # one per create, one per batch
    by_user = {profile.user_id: profile for profile in store.profiles.values()}
    assert by_user[users[0]].auto_bio == "2 tasks completed · average rating 4.5 · mostly design"
    assert (by_user[users[1]].completed_count, by_user[users[1]].average_rating) == (1, None)
    assert all(profile.bio == "my own words" for profile in store.profiles.values())
    page, total = await service.list_experts(ExpertSort.COMPLETED, None, 2, 0)
    assert ([p.user_id for p in page], total) == ([users[0], users[1]], 5)
