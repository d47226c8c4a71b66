"""Request and response bodies of customer service (a contract, like ``schemas.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from app.domain.support.model import (
    Agent,
    AgentStatus,
    Chat,
    ChatStatus,
    ChatSummary,
    CloseReason,
    Message,
    MessagePage,
    SenderRole,
)

# Bounds on raw input only; the domain trims and applies the rules (422 with a code).
Body = Annotated[str, msgspec.Meta(max_length=16_000, examples=["My payout has not arrived."])]
Subject = Annotated[str, msgspec.Meta(max_length=500, examples=["Payout missing"])]


class OpenChatRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Both optional. `subject`: 1 to 120 characters; `message`: the first message, 1 to 4,000 characters
    (after trimming)."""

    subject: Subject | None = None
    message: Body | None = None


class SendMessageRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`body`: 1 to 4,000 characters after trimming."""

    body: Body


class MarkReadRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`up_to_seq`: the newest message you have shown (default: the chat's newest). The marker never moves back."""

    up_to_seq: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)] | None = None


class AgentStatusRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    status: AgentStatus


class AgentSettingsRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`max_chats`: this agent's maximum of concurrent chats, 1 to 100 (422 `out_of_range` otherwise); `null`
    returns to the default of the settings."""

    max_chats: int | None


class MessageResponse(msgspec.Struct, kw_only=True):
    """`seq` numbers the chat's messages from 1; `sender_id` is `null` for system messages."""

    id: UUID
    chat_id: UUID
    seq: int
    sender_id: UUID | None
    sender_role: SenderRole
    body: str
    created_at: datetime

    @classmethod
    def of(cls, message: Message) -> MessageResponse:
        return cls(
            id=message.id,
            chat_id=message.chat_id,
            seq=message.seq,
            sender_id=message.sender_id,
            sender_role=message.sender_role,
            body=message.body,
            created_at=message.created_at,
        )


class ChatResponse(msgspec.Struct, kw_only=True):
    """`unread_count`: messages after your read marker (`null` when you take no part in the chat, e.g. an admin
    reading along). `last_message` is filled in lists."""

    id: UUID
    user_id: UUID
    agent_id: UUID | None
    subject: str | None
    status: ChatStatus
    close_reason: CloseReason | None
    queued_at: datetime
    assigned_at: datetime | None
    closed_at: datetime | None
    last_activity_at: datetime
    message_count: int
    unread_count: int | None
    created_at: datetime
    last_message: MessageResponse | None = None

    @classmethod
    def of(cls, chat: Chat, reader_id: UUID, last_message: Message | None = None) -> ChatResponse:
        return cls(
            id=chat.id,
            user_id=chat.user_id,
            agent_id=chat.agent_id,
            subject=chat.subject,
            status=chat.status,
            close_reason=chat.close_reason,
            queued_at=chat.queued_at,
            assigned_at=chat.assigned_at,
            closed_at=chat.closed_at,
            last_activity_at=chat.last_activity_at,
            message_count=chat.last_seq,
            unread_count=chat.unread_for(reader_id),
            created_at=chat.created_at,
            last_message=None if last_message is None else MessageResponse.of(last_message),
        )

    @classmethod
    def of_summary(cls, summary: ChatSummary, reader_id: UUID) -> ChatResponse:
        return cls.of(summary.chat, reader_id, summary.last_message)


class ChatPage(msgspec.Struct, kw_only=True):
    items: list[ChatResponse]
    total: int
    limit: int
    offset: int

    @classmethod
    def of(cls, items: list[ChatSummary], total: int, limit: int, offset: int, reader_id: UUID) -> ChatPage:
        return cls(
            items=[ChatResponse.of_summary(item, reader_id) for item in items], total=total, limit=limit, offset=offset
        )


class MessagePageResponse(msgspec.Struct, kw_only=True):
    """Newest first. Pass `next_cursor` as `cursor` for older messages; `null`: this page reaches the oldest."""

    items: list[MessageResponse]
    next_cursor: str | None
    limit: int

    @classmethod
    def of(cls, page: MessagePage, limit: int) -> MessagePageResponse:
        return cls(items=[MessageResponse.of(item) for item in page.items], next_cursor=page.next_cursor, limit=limit)


class AgentResponse(msgspec.Struct, kw_only=True):
    """`max_chats` applies now; `max_chats_override` is the agent's own (`null`: the default of the settings)."""

    user_id: UUID
    status: AgentStatus
    max_chats: int
    max_chats_override: int | None
    active_chats: int
    status_changed_at: datetime | None

    @classmethod
    def of(cls, agent: Agent) -> AgentResponse:
        return cls(
            user_id=agent.user_id,
            status=agent.status,
            max_chats=agent.max_chats,
            max_chats_override=agent.max_chats_override,
            active_chats=agent.active_chats,
            status_changed_at=agent.status_changed_at,
        )
