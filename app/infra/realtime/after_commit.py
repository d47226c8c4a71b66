"""Live events that wait for their transaction: published after it commits, dropped if it rolls back.

A notification is recorded in the caller's transaction (the ``Notifier`` port
never commits). Pushing it to the user's sockets at that moment would announce
something a rollback may still undo, so the event is parked on the session and
handed to the publisher by SQLAlchemy's ``after_commit`` hook. Publishing runs in
a background task of the runtime (shutdown cancels and awaits it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Coroutine
from typing import Any
from uuid import UUID

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.domain.shared.events import EventPublisher, UserEvent

logger = logging.getLogger("app.realtime")

_PENDING = "taskmarket.pending_user_events"
Spawn = Callable[[Coroutine[Any, Any, Any], str], object]


class AfterCommitEvents:
    def __init__(self, publisher: EventPublisher, spawn: Spawn) -> None:
        self._publisher = publisher
        self._spawn = spawn
        _install_hooks()

    def queue(self, session: AsyncSession, user_ids: Collection[UUID], user_event: UserEvent) -> None:
        pending: list[tuple[AfterCommitEvents, list[UUID], UserEvent]] = session.sync_session.info.setdefault(
            _PENDING, []
        )
        pending.append((self, list(user_ids), user_event))

    def _publish_later(self, events: list[tuple[list[UUID], UserEvent]]) -> None:
        try:
            self._spawn(self._publish_all(events), "publish user events")
        except RuntimeError:
            # shutting down: the durable records stay readable over REST
            logger.debug("user events not published: shutting down", extra={"count": len(events)})

    async def _publish_all(self, events: list[tuple[list[UUID], UserEvent]]) -> None:
        for user_ids, user_event in events:
            await self._publisher.publish(user_ids, user_event)


def _after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    by_sink: dict[AfterCommitEvents, list[tuple[list[UUID], UserEvent]]] = {}
    for sink, user_ids, user_event in pending:
        by_sink.setdefault(sink, []).append((user_ids, user_event))
    for sink, events in by_sink.items():
        sink._publish_later(events)  # the hook belongs to this module


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


def _install_hooks() -> None:
    # Class-level listeners, installed once per process: sessions without parked
    # events pay one dict lookup per commit.
    if not event.contains(Session, "after_commit", _after_commit):
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_rollback", _after_rollback)
