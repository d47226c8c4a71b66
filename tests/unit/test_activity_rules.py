"""The activity rules that need no storage: the shown state over time and the creation checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.activities.model import ActivityDraft, ActivityState, shown_state
from app.domain.activities.service import check_draft
from app.domain.shared.errors import ValidationFailed

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
START = NOW + timedelta(hours=1)
END = NOW + timedelta(hours=3)


@pytest.mark.parametrize(
    ("stored", "at", "shown"),
    [
        (ActivityState.SCHEDULED, START - timedelta(seconds=1), ActivityState.SCHEDULED),
        (ActivityState.SCHEDULED, START, ActivityState.ACTIVE),  # [starts_at, ends_at)
        (ActivityState.SCHEDULED, END - timedelta(seconds=1), ActivityState.ACTIVE),
        (ActivityState.SCHEDULED, END, ActivityState.ENDED),  # before the end job got to it
        (ActivityState.ENDED, END + timedelta(days=1), ActivityState.ENDED),
        (ActivityState.CANCELLED, START - timedelta(hours=1), ActivityState.CANCELLED),
        (ActivityState.CANCELLED, START, ActivityState.CANCELLED),
        (ActivityState.CANCELLED, END + timedelta(days=1), ActivityState.CANCELLED),
    ],
)
def test_the_shown_state_follows_the_clock(stored: ActivityState, at: datetime, shown: ActivityState) -> None:
    assert shown_state(stored, START, END, at) is shown


def _draft(**overrides: object) -> ActivityDraft:
    values: dict[str, object] = {
        "title": "Park clean-up",
        "description": "Bring gloves.",
        "starts_at": START,
        "ends_at": END,
        "capacity": 10,
        "reward_points": 0,
    }
    values.update(overrides)
    return ActivityDraft(**values)  # type: ignore[arg-type]


def _codes(draft: ActivityDraft) -> set[tuple[str | None, str]]:
    with pytest.raises(ValidationFailed) as refused:
        check_draft(draft, NOW)
    assert refused.value.code == "invalid_activity"
    return {(issue.field, issue.code) for issue in refused.value.issues}


def test_a_valid_draft_is_trimmed() -> None:
    draft = check_draft(_draft(title="  Park clean-up ", description=" Gloves "), NOW)
    assert (draft.title, draft.description) == ("Park clean-up", "Gloves")
    assert check_draft(_draft(starts_at=NOW - timedelta(seconds=59), capacity=100_000, reward_points=100_000), NOW)


def test_every_broken_rule_is_listed() -> None:
    assert _codes(
        _draft(title="ab", description=" ", capacity=0, reward_points=-1, starts_at=NOW - timedelta(minutes=2))
    ) == {
        ("title", "invalid_length"),
        ("description", "invalid_length"),
        ("capacity", "out_of_range"),
        ("reward_points", "out_of_range"),
        ("starts_at", "starts_in_past"),
    }
    assert _codes(_draft(ends_at=START)) == {("ends_at", "ends_before_start")}
    assert _codes(_draft(ends_at=START + timedelta(days=366))) == {("ends_at", "too_long")}
    assert _codes(_draft(starts_at=NOW + timedelta(days=366), ends_at=NOW + timedelta(days=367))) == {
        ("starts_at", "starts_too_far")
    }
    assert _codes(_draft(capacity=100_001, reward_points=100_001)) == {
        ("capacity", "out_of_range"),
        ("reward_points", "out_of_range"),
    }
    assert _codes(_draft(starts_at=START.replace(tzinfo=None))) == {("starts_at", "naive_time")}
