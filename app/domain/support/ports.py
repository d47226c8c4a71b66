"""What customer service needs from storage.

Every change of a chat is one guarded write (``UPDATE ... WHERE <the state it needs>``): of
concurrent changes of one chat exactly one finds the state it needs; the others change
nothing and get ``None`` (or leave that chat out of their batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

from app.domain.support.model import (
    Agent,
    AgentCapacity,
    AgentStatus,
    Assignment,
    Chat,
    ChatStatus,
    ChatSummary,
    CloseReason,
    Message,
    QueuedChat,
    Requeued,
    SenderRole,
)


class ChatRepository(Protocol):
    async def open(self, chat: Chat) -> Chat | None:
        """Store a new waiting chat; ``None`` when its user has an open chat already."""
        ...

    async def get(self, chat_id: UUID) -> Chat | None: ...

    async def list_chats(
        self,
        statuses: frozenset[ChatStatus],
        limit: int,
        offset: int,
        *,
        user_id: UUID | None = None,
        agent_id: UUID | None = None,
    ) -> tuple[list[ChatSummary], int]:
        """One page, newest first (ties by id), each with its newest message, and the total count.

        A fixed number of statements whatever the page size.
        """
        ...

    async def append(
        self, chat_id: UUID, sender_id: UUID, role: SenderRole, body: str, now: datetime
    ) -> tuple[Chat, Message] | None:
        """Add a message from the chat's user (``role`` user) or its assigned agent (``role`` agent) to an
        open chat, moving the sender's read marker to it; ``None`` when the chat is closed or the sender no
        longer in that role. Concurrent messages of one chat get consecutive sequence numbers."""
        ...

    async def messages_before(self, chat_id: UUID, before_seq: int | None, limit: int) -> list[Message]:
        """Up to ``limit`` messages with a sequence number below ``before_seq`` (all if ``None``), newest first."""
        ...

    async def mark_read(self, chat_id: UUID, reader_id: UUID, role: SenderRole, up_to_seq: int | None) -> Chat | None:
        """Move the reader's marker (as the chat's user or its agent) forward to ``up_to_seq`` (the newest
        message if ``None``, never past it, never backwards); ``None`` when the reader no longer has that role."""
        ...

    async def close(
        self, chat_ids: Sequence[UUID], reason: CloseReason, now: datetime, *, agent_id: UUID | None = None
    ) -> list[Chat]:
        """Close those of ``chat_ids`` still open (only chats assigned to ``agent_id`` when given), each with a
        system message saying why; return the chats closed."""
        ...

    async def online_agents_locked(self, default_max_chats: int) -> list[AgentCapacity]:
        """Online agents (role agent, active account) with their current load, their rows locked until the
        transaction ends: overlapping assignment runs take turns."""
        ...

    async def lock_queue_head(self, limit: int) -> list[QueuedChat]:
        """The first ``limit`` waiting chats in queue order, locked; chats another transaction holds are skipped."""
        ...

    async def assign(self, assignments: Sequence[Assignment], now: datetime) -> None:
        """Give each chat to its agent (all in a single round trip)."""
        ...

    async def requeue_unanswered(self, now: datetime, answer_deadline: datetime, batch_size: int) -> list[Requeued]:
        """Put back in the queue up to ``batch_size`` assigned chats whose agent is offline (or no longer an
        agent), or whose user has waited for the agent since ``answer_deadline`` or earlier."""
        ...

    async def idle_chats(self, reply_deadline: datetime, batch_size: int) -> list[UUID]:
        """Assigned chats where the agent has waited for the user since ``reply_deadline`` or earlier; locked."""
        ...

    async def inactive_chats(self, last_activity_before: datetime, batch_size: int) -> list[UUID]:
        """Open chats without any message since before ``last_activity_before``; locked."""
        ...

    async def delete_closed(self, closed_before: datetime, batch_size: int) -> int:
        """Delete up to ``batch_size`` chats closed before ``closed_before``, with their messages."""
        ...


class AgentRepository(Protocol):
    async def get(self, user_id: UUID, default_max_chats: int) -> Agent | None:
        """The agent's record; ``None`` when ``user_id`` is not an agent (role) at all."""
        ...

    async def set_status(self, user_id: UUID, status: AgentStatus, now: datetime, default_max_chats: int) -> Agent:
        """Create or update the agent's record (the caller checked the role)."""
        ...

    async def set_max_chats(
        self, user_id: UUID, max_chats: int | None, now: datetime, default_max_chats: int
    ) -> Agent | None:
        """Set or clear the agent's own maximum; ``None`` when ``user_id`` is not an agent."""
        ...
