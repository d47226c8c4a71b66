"""An in-memory Notifier and NotificationInbox with the same contract as the SQL one (single-threaded).

``calls`` records every ``notify``/``notify_many`` call as its list of notices; like the other fakes it
keeps a snapshot at ``commit`` and returns to it on ``rollback``.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from app.domain.notifications.model import Notice, Notification, NotificationKind, NotificationPage


class InMemoryNotifications:
    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 6, 1, tzinfo=UTC)
        self.calls: list[list[Notice]] = []
        self.notifications: dict[UUID, Notification] = {}
        self._saved: dict[UUID, Notification] = {}

    async def commit(self) -> None:
        self._saved = copy.copy(self.notifications)

    async def rollback(self) -> None:
        self.notifications = copy.copy(self._saved)

    @property
    def notices(self) -> list[Notice]:
        """Every notice of every call, in order."""
        return [notice for call in self.calls for notice in call]

    async def notify(self, user_id: UUID, kind: NotificationKind, payload: dict[str, Any]) -> None:
        await self.notify_many([Notice(user_id, kind, payload)])

    async def notify_many(self, notices: Sequence[Notice]) -> None:
        self.calls.append(list(notices))
        for notice in notices:
            notification = Notification(
                id=uuid.uuid4(), user_id=notice.user_id, kind=notice.kind, payload=notice.payload, created_at=self.now
            )
            self.notifications[notification.id] = notification

    async def list_for(self, user_id: UUID, unread_only: bool, limit: int, offset: int) -> NotificationPage:
        mine = [item for item in self.notifications.values() if item.user_id == user_id]
        matching = sorted(
            (item for item in mine if not unread_only or item.read_at is None),
            key=lambda item: (item.created_at, item.id),
            reverse=True,
        )
        unread = sum(1 for item in mine if item.read_at is None)
        return NotificationPage(items=matching[offset : offset + limit], total=len(matching), unread_count=unread)

    async def mark_read(self, notification_id: UUID, user_id: UUID, now: datetime) -> bool:
        item = self.notifications.get(notification_id)
        if item is None or item.user_id != user_id:
            return False
        if item.read_at is None:
            self.notifications[notification_id] = replace(item, read_at=now)
        return True

    async def mark_all_read(self, user_id: UUID, now: datetime) -> int:
        unread = [item for item in self.notifications.values() if item.user_id == user_id and item.read_at is None]
        for item in unread:
            self.notifications[item.id] = replace(item, read_at=now)
        return len(unread)
