"""Notifications: what happened to a user's tasks, recorded for them to read.

The ``Notifier`` port records them inside the caller's transaction; live delivery (WebSocket)
plugs into the same port later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID


class NotificationKind(StrEnum):
    TASK_TAKEN = "task_taken"  # to the poster
    TASK_COMPLETED = "task_completed"  # to the taker
    TASK_EXPIRED = "task_expired"  # to the poster
    TASK_CANCELLED = "task_cancelled"  # to the taker, when a taken task is cancelled
    TASK_CANCEL_CONSENTED = "task_cancel_consented"  # to the poster, when the taker consents to a cancel
    ACTIVITY_ENDED = "activity_ended"  # to each participant, with the points credited
    ACTIVITY_CANCELLED = "activity_cancelled"  # to each participant, when its creator or an admin cancels it


@dataclass(frozen=True, slots=True)
class Notice:
    """A notification to record: for whom, what, and its JSON-serialisable details."""

    user_id: UUID
    kind: NotificationKind
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Notification:
    id: UUID
    user_id: UUID
    kind: NotificationKind
    payload: dict[str, Any]
    created_at: datetime
    read_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NotificationPage:
    items: list[Notification]
    total: int  # of the filter
    unread_count: int  # of the user, whatever the filter
