"""Response bodies of notifications (a contract, like ``schemas.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from app.domain.notifications.model import Notification, NotificationKind, NotificationPage


class NotificationResponse(msgspec.Struct, kw_only=True):
    """`payload` of a task's kinds has `task_id` and `title`; `task_taken` adds `taker_id`, `task_completed`
    `points` and `rating`, `task_cancelled` `reason`. Activity kinds have `activity_id` and `title`;
    `activity_ended` adds the `points` credited."""

    id: UUID
    kind: NotificationKind
    payload: dict[str, Any]
    created_at: datetime
    read_at: datetime | None

    @classmethod
    def of(cls, notification: Notification) -> NotificationResponse:
        return cls(
            id=notification.id,
            kind=notification.kind,
            payload=notification.payload,
            created_at=notification.created_at,
            read_at=notification.read_at,
        )


class NotificationPageResponse(msgspec.Struct, kw_only=True):
    """`total` counts what the filter matches; `unread_count` all of your unread notifications."""

    items: list[NotificationResponse]
    total: int
    unread_count: int
    limit: int
    offset: int

    @classmethod
    def of(cls, page: NotificationPage, limit: int, offset: int) -> NotificationPageResponse:
        return cls(
            items=[NotificationResponse.of(item) for item in page.items],
            total=page.total,
            unread_count=page.unread_count,
            limit=limit,
            offset=offset,
        )
