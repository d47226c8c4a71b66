from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.security.jwt import Token

from app.api.errors import problem_responses
from app.api.notification_schemas import NotificationPageResponse
from app.domain.notifications.service import NotificationService
from app.domain.shared.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from app.domain.users.model import User

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE_SIZE)]
Offset = Annotated[int, QueryParameter(ge=0, le=1_000_000)]


class NotificationsController(Controller):
    path = "/api/notifications"
    tags = ["notifications"]

    @get(
        "/me",
        operation_id="listMyNotifications",
        summary="My notifications, newest first",
        responses=problem_responses(400, 401, 503),
    )
    async def list_mine(
        self,
        request: Request[User, Token, Any],
        notifications: NamedDependency[NotificationService],
        limit: Limit = DEFAULT_PAGE_SIZE,
        offset: Offset = 0,
        unread: Annotated[bool, QueryParameter(description="Only unread notifications")] = False,
    ) -> NotificationPageResponse:
        """Kinds: `task_taken`, `task_completed`, `task_expired`, `task_cancelled`, `task_cancel_consented`."""
        page = await notifications.list_mine(request.user.id, unread, limit, offset)
        return NotificationPageResponse.of(page, limit, offset)

    @post(
        "/me/read-all",
        operation_id="markAllNotificationsRead",
        summary="Mark all my notifications read",
        status_code=204,
        responses=problem_responses(401, 503),
    )
    async def mark_all_read(
        self, request: Request[User, Token, Any], notifications: NamedDependency[NotificationService]
    ) -> None:
        await notifications.mark_all_read(request.user.id)

    @post(
        "/{notification_id:uuid}/read",
        operation_id="markNotificationRead",
        summary="Mark one of my notifications read",
        status_code=204,
        responses=problem_responses(400, 401, 404, 503),
    )
    async def mark_read(
        self,
        request: Request[User, Token, Any],
        notification_id: FromPath[UUID],
        notifications: NamedDependency[NotificationService],
    ) -> None:
        """Idempotent. 404 `notification_not_found`, also for another user's notification."""
        await notifications.mark_read(request.user.id, notification_id)
