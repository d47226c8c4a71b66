"""Customer service: a user's chat with an agent, the waiting queue and the agents' capacity.

States and the only transitions between them::

    waiting -> assigned          (the assignment job gives it to an online agent)
    assigned -> waiting          (its agent went offline or left the user unanswered: back to the queue,
                                  at its original place, since the queue is ordered by ``queued_at``)
    waiting | assigned -> closed (by the user, the agent, an admin, the idle job or the cleanup job)

A user has at most one open (waiting or assigned) chat at a time. Messages carry a per-chat
sequence number: it orders the history, is the pagination cursor and the read markers.
"""

from __future__ import annotations

import base64
import binascii
import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID


class ChatStatus(StrEnum):
    WAITING = "waiting"
    ASSIGNED = "assigned"
    CLOSED = "closed"


OPEN_STATUSES = frozenset({ChatStatus.WAITING, ChatStatus.ASSIGNED})


class CloseReason(StrEnum):
    USER = "user"  # the chat's user closed it
    AGENT = "agent"  # its agent closed it
    ADMIN = "admin"  # an admin closed it
    IDLE = "idle"  # the user did not answer the agent within the idle timeout
    INACTIVE = "inactive"  # no message for the inactivity period (daily cleanup)


class SenderRole(StrEnum):
    USER = "user"
    AGENT = "agent"
    SYSTEM = "system"


class AgentStatus(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


# What the system says when a chat closes, by reason (stored as the chat's last message).
CLOSING_WORDS: dict[CloseReason, str] = {
    CloseReason.USER: "The chat was closed by the user.",
    CloseReason.AGENT: "The chat was closed by the agent.",
    CloseReason.ADMIN: "The chat was closed by customer service.",
    CloseReason.IDLE: "The chat was closed because there was no reply for a while.",
    CloseReason.INACTIVE: "The chat was closed after a long period without activity.",
}


@dataclass(frozen=True, slots=True)
class SupportPolicy:
    """The settings of customer service (every period comes from the settings)."""

    max_chats_per_agent: int  # an agent's own override wins
    answer_timeout: timedelta  # an assigned chat the agent leaves unanswered this long goes back to the queue
    idle_timeout: timedelta  # a chat whose user leaves the agent unanswered this long closes
    inactive_after: timedelta  # an open chat without any message this long closes (daily cleanup)
    retention: timedelta  # a closed chat is deleted, with its messages, this long after closing


@dataclass(frozen=True, slots=True)
class Chat:
    id: UUID
    user_id: UUID
    agent_id: UUID | None
    subject: str | None
    status: ChatStatus
    close_reason: CloseReason | None
    queued_at: datetime  # the chat's place in the waiting queue; kept when it is requeued
    assigned_at: datetime | None
    closed_at: datetime | None
    last_activity_at: datetime
    last_seq: int  # sequence number of the newest message (0: none yet)
    user_read_seq: int  # the user's read marker: messages up to this one are read
    agent_read_seq: int  # the assigned agent's read marker
    created_at: datetime
    updated_at: datetime

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def unread_for(self, reader_id: UUID) -> int | None:
        """Messages after ``reader_id``'s read marker; ``None`` when they take no part in the chat."""
        if reader_id == self.user_id:
            return self.last_seq - self.user_read_seq
        if reader_id == self.agent_id:
            return self.last_seq - self.agent_read_seq
        return None


@dataclass(frozen=True, slots=True)
class Message:
    id: UUID
    chat_id: UUID
    seq: int
    sender_id: UUID | None  # None for system messages
    sender_role: SenderRole
    body: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ChatSummary:
    """A chat in a list: the chat and its newest message."""

    chat: Chat
    last_message: Message | None


@dataclass(frozen=True, slots=True)
class MessagePage:
    """Newest first; ``next_cursor`` fetches the older messages, ``None`` at the oldest."""

    items: list[Message]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Agent:
    user_id: UUID
    status: AgentStatus
    max_chats_override: int | None  # set by an admin; None: the default of the settings
    max_chats: int  # what applies
    active_chats: int  # chats assigned to the agent now
    status_changed_at: datetime | None


@dataclass(frozen=True, slots=True)
class AgentCapacity:
    """An online agent as the assignment job sees it, under its row lock."""

    user_id: UUID
    load: int
    max_chats: int


@dataclass(frozen=True, slots=True)
class QueuedChat:
    id: UUID
    user_id: UUID


@dataclass(frozen=True, slots=True)
class Assignment:
    chat_id: UUID
    user_id: UUID
    agent_id: UUID


@dataclass(frozen=True, slots=True)
class Requeued:
    chat_id: UUID
    user_id: UUID
    former_agent_id: UUID


@dataclass(frozen=True, slots=True)
class CleanupOutcome:
    closed: int  # open chats closed for inactivity
    deleted: int  # closed chats deleted with their messages, past retention


def plan_assignments(queue: Sequence[QueuedChat], agents: Sequence[AgentCapacity]) -> list[Assignment]:
    """Give the queue, in its order, to the least-loaded agents: each chat goes to the agent with the
    fewest chats at that moment (ties: the agent's id), never above an agent's maximum, never to the
    chat's own user. Chats beyond the free capacity stay in the queue, so the earliest are served first.

    With equal maximums the loads end within one of each other (as far as the queue reaches).
    """
    heap = [(agent.load, agent.user_id, agent.max_chats) for agent in agents if agent.load < agent.max_chats]
    heapq.heapify(heap)
    plan: list[Assignment] = []
    for chat in queue:
        if not heap:
            break
        skipped = []
        while heap and heap[0][1] == chat.user_id:  # an agent who opened a chat of their own
            skipped.append(heapq.heappop(heap))
        if heap:
            load, agent_id, maximum = heapq.heappop(heap)
            plan.append(Assignment(chat_id=chat.id, user_id=chat.user_id, agent_id=agent_id))
            if load + 1 < maximum:
                heapq.heappush(heap, (load + 1, agent_id, maximum))
        for entry in skipped:
            heapq.heappush(heap, entry)
    return plan


_CURSOR_PREFIX = "s1:"


def encode_cursor(seq: int) -> str:
    """An opaque cursor: the sequence number below which the next page starts."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    """The sequence number inside ``cursor``; ``None`` when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    digits = text.removeprefix(_CURSOR_PREFIX)
    if digits == text or not (digits.isascii() and digits.isdigit()) or len(digits) > 10:
        return None
    seq = int(digits)
    return seq if 0 < seq < 2**31 else None
