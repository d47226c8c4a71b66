"""What notifications need: a notifier use cases call, and the inbox the user reads."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from app.domain.notifications.model import Notice, NotificationKind, NotificationPage


class Notifier(Protocol):
    """Records notifications in the caller's transaction (it never commits)."""

    async def notify(self, user_id: UUID, kind: NotificationKind, payload: dict[str, Any]) -> None: ...

    async def notify_many(self, notices: Sequence[Notice]) -> None:
        """All at once (one statement for the adapter); nothing when ``notices`` is empty."""
        ...


class NotificationInbox(Protocol):
    async def list_for(self, user_id: UUID, unread_only: bool, limit: int, offset: int) -> NotificationPage:
        """Newest first (ties broken by id)."""
        ...

    async def mark_read(self, notification_id: UUID, user_id: UUID, now: datetime) -> bool:
        """Mark the user's notification read (once); ``False`` when the user has no such notification."""
        ...

    async def mark_all_read(self, user_id: UUID, now: datetime) -> int:
        """Mark every unread notification of the user read; return how many."""
        ...
