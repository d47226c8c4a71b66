"""Use cases of a user's notifications: list, mark read, mark all read."""

from __future__ import annotations

from uuid import UUID

from app.domain.notifications.model import NotificationPage
from app.domain.notifications.ports import NotificationInbox
from app.domain.shared.errors import NotFound
from app.domain.shared.ports import Clock, UnitOfWork


class NotificationNotFound(NotFound):
    code = "notification_not_found"


class NotificationService:
    def __init__(self, inbox: NotificationInbox, uow: UnitOfWork, clock: Clock) -> None:
        self._inbox = inbox
        self._uow = uow
        self._clock = clock

    async def list_mine(self, user_id: UUID, unread_only: bool, limit: int, offset: int) -> NotificationPage:
        return await self._inbox.list_for(user_id, unread_only, limit, offset)

    async def mark_read(self, user_id: UUID, notification_id: UUID) -> None:
        """Idempotent; another user's notification is answered like an unknown one (``notification_not_found``)."""
        if not await self._inbox.mark_read(notification_id, user_id, self._clock.now()):
            raise NotificationNotFound("Notification not found.")
        await self._uow.commit()

    async def mark_all_read(self, user_id: UUID) -> int:
        count = await self._inbox.mark_all_read(user_id, self._clock.now())
        await self._uow.commit()
        return count
