"""Live events for connected users: the port real-time delivery plugs into.

Publishing is best effort and happens after the use case's transaction has
committed: the durable record (a chat message, a notification) is the source
of truth, and a client that missed an event reads it back over REST.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID


@dataclass(frozen=True, slots=True)
class UserEvent:
    """One message to a user's open connections: ``{"type": type, **payload}`` on the wire."""

    type: str
    payload: Mapping[str, Any] = field(default_factory=dict)


class EventPublisher(Protocol):
    async def publish(self, user_ids: Collection[UUID], event: UserEvent) -> None:
        """Deliver ``event`` to every open connection of each user, on every process; never raises."""
        ...


class DiscardEvents:
    """The publisher for contexts without live delivery (jobs, tests that do not look)."""

    async def publish(self, user_ids: Collection[UUID], event: UserEvent) -> None:
        return None
