"""Notifications on SQLAlchemy Core: the notifier records in the caller's transaction, the inbox reads them."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Collection, Sequence
from typing import Any, Protocol, cast

from sqlalchemy import ColumnElement, Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.notifications.model import Notice, Notification, NotificationKind, NotificationPage
from app.domain.shared.events import UserEvent
from app.domain.shared.ports import Clock
from app.infra.db.notification_tables import NotificationRecord

_N = NotificationRecord
_TABLE = cast(Table, NotificationRecord.__table__)
_COLUMNS = (_N.id, _N.user_id, _N.kind, _N.payload, _N.created_at, _N.read_at)


def _live_event(row: dict[str, Any]) -> UserEvent:
    return UserEvent(
        "notification",
        {
            "id": str(row["id"]),
            "kind": row["kind"],
            "payload": row["payload"],
            "created_at": row["created_at"].isoformat(),
        },
    )


def _to_notification(row: Any) -> Notification:
    return Notification(
        id=row.id,
        user_id=row.user_id,
        kind=NotificationKind(row.kind),
        payload=row.payload,
        created_at=row.created_at,
        read_at=row.read_at,
    )


class LiveDelivery(Protocol):
    """Pushes an event to users' sockets once the session's transaction has committed."""

    def queue(self, session: AsyncSession, user_ids: Collection[uuid.UUID], user_event: UserEvent) -> None: ...


class SqlNotifications:
    """Both the ``Notifier`` and the ``NotificationInbox``; never commits.

    With ``live``, every recorded notification is also pushed to the user's open
    WebSockets as ``{"type": "notification", ...}`` after the transaction commits.
    """

    def __init__(self, session: AsyncSession, clock: Clock, live: LiveDelivery | None = None) -> None:
        self._session = session
        self._clock = clock
        self._live = live

    async def notify(self, user_id: uuid.UUID, kind: NotificationKind, payload: dict[str, Any]) -> None:
        await self.notify_many([Notice(user_id, kind, payload)])

    async def notify_many(self, notices: Sequence[Notice]) -> None:
        if not notices:
            return
        now = self._clock.now()
        rows: list[dict[str, Any]] = [
            {"id": uuid.uuid4(), "user_id": n.user_id, "kind": n.kind.value, "payload": n.payload, "created_at": now}
            for n in notices
        ]
        # executemany on the table (SQLAlchemy batches it as "insertmanyvalues"): a multi-row VALUES clause
        # would be compiled afresh for every batch, which cost more than the database's own work.
        await self._session.execute(insert(_TABLE), rows)
        if self._live is not None:
            for row in rows:
                self._live.queue(self._session, (row["user_id"],), _live_event(row))

    async def list_for(self, user_id: uuid.UUID, unread_only: bool, limit: int, offset: int) -> NotificationPage:
        conditions: list[ColumnElement[bool]] = [_N.user_id == user_id]
        if unread_only:
            conditions.append(_N.read_at.is_(None))
        page = (
            select(*_COLUMNS)
            .where(*conditions)
            .order_by(_N.created_at.desc(), _N.id.desc())
            .limit(limit)
            .offset(offset)
        )
        rows = (await self._session.execute(page)).all()
        total = (await self._session.execute(select(func.count()).select_from(_N).where(*conditions))).scalar_one()
        unread = (
            await self._session.execute(
                select(func.count()).select_from(_N).where(_N.user_id == user_id, _N.read_at.is_(None))
            )
        ).scalar_one()
        return NotificationPage(
            items=[_to_notification(row) for row in rows], total=int(total), unread_count=int(unread)
        )

    async def mark_read(self, notification_id: uuid.UUID, user_id: uuid.UUID, now: datetime.datetime) -> bool:
        mine = [_N.id == notification_id, _N.user_id == user_id]
        changed = await self._session.execute(
            update(_N).where(*mine, _N.read_at.is_(None)).values(read_at=now).returning(_N.id)
        )
        if changed.first() is not None:
            return True
        return (await self._session.execute(select(_N.id).where(*mine))).first() is not None

    async def mark_all_read(self, user_id: uuid.UUID, now: datetime.datetime) -> int:
        changed = await self._session.execute(
            update(_N).where(_N.user_id == user_id, _N.read_at.is_(None)).values(read_at=now).returning(_N.id)
        )
        return len(changed.all())
