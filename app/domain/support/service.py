"""Use cases of customer service, for REST, the WebSocket and the scheduler alike (no transport here).

Who sees a chat: its user, the agent it is assigned to, and admins; anybody else is told it
does not exist (404 ``chat_not_found``), so chat ids reveal nothing. Who writes in it: its user
and its assigned agent. Live events go out through the ``EventPublisher`` only after the
transaction committed: the stored chat is the truth, an event is a hint to re-read it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from app.domain.shared.errors import Conflict, FieldIssue, Forbidden, NotFound, ValidationFailed
from app.domain.shared.events import EventPublisher, UserEvent
from app.domain.shared.ports import Clock, UnitOfWork
from app.domain.support.model import (
    Agent,
    AgentStatus,
    Chat,
    ChatStatus,
    ChatSummary,
    CleanupOutcome,
    CloseReason,
    Message,
    MessagePage,
    SenderRole,
    SupportPolicy,
    decode_cursor,
    encode_cursor,
    plan_assignments,
)
from app.domain.support.ports import AgentRepository, ChatRepository
from app.domain.users.model import Principal, Role

BODY_LENGTH = (1, 4_000)
SUBJECT_LENGTH = (1, 120)
MAX_CHATS_RANGE = (1, 100)
ASSIGN_BATCH = 5_000


class ChatNotFound(NotFound):
    code = "chat_not_found"


class AgentNotFound(NotFound):
    code = "agent_not_found"


class ChatAlreadyOpen(Conflict):
    code = "chat_already_open"


class ChatClosed(Conflict):
    code = "chat_closed"


class NotParticipant(Forbidden):
    code = "not_participant"


class NotAnAgent(Forbidden):
    code = "not_an_agent"


def _closed(chat: Chat, action: str) -> ChatClosed:
    # the current state, machine-readable, for a client that wants more than the code
    state = FieldIssue(code=chat.status.value, message="The chat's current status.", field="status")
    return ChatClosed(f"Cannot {action} a chat that is {chat.status.value}.", issues=(state,))


def check_body(body: str) -> str:
    """The message trimmed; 422 ``invalid_message`` when empty or longer than 4,000 characters."""
    text = body.strip()
    low, high = BODY_LENGTH
    if not low <= len(text) <= high:
        issue = FieldIssue(code="invalid_length", message=f"Must be {low} to {high} characters.", field="body")
        raise ValidationFailed("The message is empty or too long.", code="invalid_message", issues=(issue,))
    return text


def _check_subject(subject: str | None) -> str | None:
    if subject is None:
        return None
    text = subject.strip()
    low, high = SUBJECT_LENGTH
    if not low <= len(text) <= high:
        issue = FieldIssue(code="invalid_length", message=f"Must be {low} to {high} characters.", field="subject")
        raise ValidationFailed("The subject is empty or too long.", code="invalid_chat", issues=(issue,))
    return text


def _message_payload(message: Message) -> dict[str, Any]:
    return {
        "chat_id": str(message.chat_id),
        "id": str(message.id),
        "seq": message.seq,
        "sender_id": None if message.sender_id is None else str(message.sender_id),
        "sender_role": message.sender_role.value,
        "body": message.body,
        "created_at": message.created_at.isoformat(),
    }


def _participants(chat: Chat) -> list[UUID]:
    return [chat.user_id] if chat.agent_id is None else [chat.user_id, chat.agent_id]


class SupportService:
    def __init__(
        self,
        chats: ChatRepository,
        agents: AgentRepository,
        uow: UnitOfWork,
        clock: Clock,
        events: EventPublisher,
        policy: SupportPolicy,
    ) -> None:
        self._chats = chats
        self._agents = agents
        self._uow = uow
        self._clock = clock
        self._events = events
        self._policy = policy

    # --- users and agents in a chat -------------------------------------------------------------

    async def open_chat(self, user: Principal, subject: str | None = None, first_message: str | None = None) -> Chat:
        """Open a chat (``waiting``), optionally with a subject and a first message, in one transaction.

        Raises:
            ValidationFailed (``invalid_chat``, ``invalid_message``), ChatAlreadyOpen (one open chat per user).
        """
        subject = _check_subject(subject)
        body = None if first_message is None else check_body(first_message)
        now = self._clock.now()
        chat = await self._chats.open(
            Chat(
                id=uuid.uuid4(),
                user_id=user.id,
                agent_id=None,
                subject=subject,
                status=ChatStatus.WAITING,
                close_reason=None,
                queued_at=now,
                assigned_at=None,
                closed_at=None,
                last_activity_at=now,
                last_seq=0,
                user_read_seq=0,
                agent_read_seq=0,
                created_at=now,
                updated_at=now,
            )
        )
        if chat is None:
            await self._uow.rollback()
            raise ChatAlreadyOpen("You have an open chat already; write in it or close it first.")
        message = None
        if body is not None:
            appended = await self._chats.append(chat.id, user.id, SenderRole.USER, body, now)
            assert appended is not None  # the chat was opened in this very transaction
            chat, message = appended
        await self._uow.commit()
        if message is not None:
            await self._events.publish([chat.user_id], UserEvent("chat.message", _message_payload(message)))
        return chat

    async def get_chat(self, actor: Principal, chat_id: UUID) -> Chat:
        """The chat, if ``actor`` may see it (404 ``chat_not_found`` otherwise, also for another user's chat)."""
        chat = await self._chats.get(chat_id)
        if chat is None or not self._may_see(actor, chat):
            raise ChatNotFound("Chat not found.")
        return chat

    async def list_my_chats(
        self, user: Principal, statuses: frozenset[ChatStatus], limit: int, offset: int
    ) -> tuple[list[ChatSummary], int]:
        """The chats ``user`` opened, newest first."""
        return await self._chats.list_chats(statuses, limit, offset, user_id=user.id)

    async def list_agent_chats(
        self, agent: Principal, statuses: frozenset[ChatStatus], limit: int, offset: int
    ) -> tuple[list[ChatSummary], int]:
        """The chats assigned to ``agent`` (now, or when they closed), newest first."""
        self._require_agent(agent)
        return await self._chats.list_chats(statuses, limit, offset, agent_id=agent.id)

    async def list_all_chats(
        self, admin: Principal, statuses: frozenset[ChatStatus], limit: int, offset: int
    ) -> tuple[list[ChatSummary], int]:
        """Every chat, newest first (admins)."""
        if not admin.has_role(Role.ADMIN):
            raise Forbidden("Only admins list every chat.")
        return await self._chats.list_chats(statuses, limit, offset)

    async def send_message(self, chat_id: UUID, sender: Principal, body: str) -> Message:
        """Add a message from the chat's user or its assigned agent (REST and WebSocket both call this).

        Raises:
            ValidationFailed (``invalid_message``), ChatNotFound, NotParticipant (an admin reading along),
            ChatClosed (409, naming the current status).
        """
        text = check_body(body)
        chat = await self.get_chat(sender, chat_id)
        role = self._role_in(sender, chat)
        appended = await self._chats.append(chat_id, sender.id, role, text, self._clock.now())
        if appended is None:
            # closed, or requeued away from this agent, between the read and the write
            current = await self.get_chat(sender, chat_id)
            if not current.is_open:
                raise _closed(current, "write in")
            raise NotParticipant("Only the chat's user and its assigned agent write in it.")
        chat, message = appended
        await self._uow.commit()
        await self._events.publish(_participants(chat), UserEvent("chat.message", _message_payload(message)))
        return message

    async def list_messages(self, actor: Principal, chat_id: UUID, cursor: str | None, limit: int) -> MessagePage:
        """One page of the chat's history, newest first. The cursor is the position after the page's oldest
        message, so messages added meanwhile never shift the pages still to be read (no gaps, no repeats).

        Raises:
            ValidationFailed (``invalid_cursor``), ChatNotFound.
        """
        before = None
        if cursor is not None:
            before = decode_cursor(cursor)
            if before is None:
                issue = FieldIssue(code="invalid_cursor", message="Not a cursor of this list.", field="cursor")
                raise ValidationFailed("The cursor is not valid.", code="invalid_cursor", issues=(issue,))
        await self.get_chat(actor, chat_id)
        rows = await self._chats.messages_before(chat_id, before, limit + 1)
        items = rows[:limit]
        more = len(rows) > limit
        return MessagePage(items=items, next_cursor=encode_cursor(items[-1].seq) if more else None)

    async def mark_read(self, actor: Principal, chat_id: UUID, up_to_seq: int | None = None) -> Chat:
        """Move the caller's read marker to ``up_to_seq`` (default: the newest message); never backwards.
        The other participant is told (``chat.read``)."""
        if up_to_seq is not None and up_to_seq < 0:
            issue = FieldIssue(code="out_of_range", message="Must not be negative.", field="up_to_seq")
            raise ValidationFailed("The read position is not valid.", issues=(issue,))
        role = self._role_in(actor, await self.get_chat(actor, chat_id))
        marked = await self._chats.mark_read(chat_id, actor.id, role, up_to_seq)
        if marked is None:
            raise NotParticipant("Only the chat's user and its assigned agent have a read marker.")
        await self._uow.commit()
        seq = marked.user_read_seq if actor.id == marked.user_id else marked.agent_read_seq
        others = [who for who in _participants(marked) if who != actor.id]
        payload = {"chat_id": str(chat_id), "reader_id": str(actor.id), "seq": seq}
        await self._events.publish(others, UserEvent("chat.read", payload))
        return marked

    async def close_chat(self, actor: Principal, chat_id: UUID) -> Chat:
        """Close a chat: its user, its assigned agent or an admin; a system message records who.

        Raises:
            ChatNotFound, ChatClosed (409, naming the current status).
        """
        chat = await self.get_chat(actor, chat_id)
        if actor.id == chat.user_id:
            reason, agent_id = CloseReason.USER, None
        elif actor.has_role(Role.ADMIN):
            reason, agent_id = CloseReason.ADMIN, None
        else:  # the assigned agent (``get_chat`` let nobody else through): only while still assigned
            reason, agent_id = CloseReason.AGENT, actor.id
        closed = await self._chats.close([chat_id], reason, self._clock.now(), agent_id=agent_id)
        if not closed:
            current = await self.get_chat(actor, chat_id)
            if current.is_open:
                raise NotParticipant("The chat is no longer assigned to you.")
            raise _closed(current, "close")
        await self._uow.commit()
        await self._announce_closed(closed)
        return closed[0]

    async def notify_typing(self, chat_id: UUID, user: Principal) -> None:
        """Tell the other participant that ``user`` is typing; nothing is stored."""
        chat = await self.get_chat(user, chat_id)
        self._role_in(user, chat)
        if not chat.is_open:
            raise _closed(chat, "type in")
        others = [who for who in _participants(chat) if who != user.id]
        await self._events.publish(others, UserEvent("chat.typing", {"chat_id": str(chat_id), "user_id": str(user.id)}))

    # --- agents ----------------------------------------------------------------------------------

    async def get_agent(self, agent: Principal) -> Agent:
        """The caller's agent status, maximum and current load."""
        self._require_agent(agent)
        found = await self._agents.get(agent.id, self._policy.max_chats_per_agent)
        assert found is not None  # the role was checked
        return found

    async def set_agent_status(self, agent: Principal, status: AgentStatus) -> Agent:
        """Go online (the assignment job gives you chats) or offline (your open chats return to the queue at
        the job's next run, at their original places)."""
        self._require_agent(agent)
        result = await self._agents.set_status(agent.id, status, self._clock.now(), self._policy.max_chats_per_agent)
        await self._uow.commit()
        return result

    async def set_agent_max_chats(self, admin: Principal, user_id: UUID, max_chats: int | None) -> Agent:
        """Set (or, with ``None``, clear) an agent's own maximum of concurrent chats (admins).

        Raises:
            ValidationFailed (``out_of_range``), AgentNotFound (the user is no agent).
        """
        if not admin.has_role(Role.ADMIN):
            raise Forbidden("Only admins change an agent's maximum.")
        low, high = MAX_CHATS_RANGE
        if max_chats is not None and not low <= max_chats <= high:
            issue = FieldIssue(code="out_of_range", message=f"Must be {low} to {high}.", field="max_chats")
            raise ValidationFailed("The maximum is out of range.", issues=(issue,))
        agent = await self._agents.set_max_chats(
            user_id, max_chats, self._clock.now(), self._policy.max_chats_per_agent
        )
        if agent is None:
            raise AgentNotFound("No agent has this id.")
        await self._uow.commit()
        return agent

    # --- jobs ------------------------------------------------------------------------------------

    async def assign_waiting(self, now: datetime, batch_size: int = ASSIGN_BATCH) -> int:
        """Give waiting chats, in queue order, to the least-loaded online agents, never above an agent's
        maximum; commit; return how many. When capacity is short the earliest chats are served and the rest
        keep their places. Overlapping runs take turns on the agents' row locks and skip each other's chats:
        no chat is assigned twice, no agent exceeds their maximum. A handful of statements per run."""
        agents = await self._chats.online_agents_locked(self._policy.max_chats_per_agent)
        free = sum(max(agent.max_chats - agent.load, 0) for agent in agents)
        if free == 0:
            await self._uow.commit()  # releases the agents' locks
            return 0
        queue = await self._chats.lock_queue_head(min(free, batch_size))
        plan = plan_assignments(queue, agents)
        if plan:
            await self._chats.assign(plan, now)
        await self._uow.commit()
        for assignment in plan:
            payload = {"chat_id": str(assignment.chat_id), "agent_id": str(assignment.agent_id)}
            await self._events.publish([assignment.user_id, assignment.agent_id], UserEvent("chat.assigned", payload))
        return len(plan)

    async def requeue_unanswered(self, now: datetime, batch_size: int = 1_000) -> int:
        """Put assigned chats back in the queue, at their original places, when their agent went offline or
        left the user unanswered past the answer timeout; commit one batch; return how many."""
        requeued = await self._chats.requeue_unanswered(now, now - self._policy.answer_timeout, batch_size)
        await self._uow.commit()
        for item in requeued:
            payload = {"chat_id": str(item.chat_id), "former_agent_id": str(item.former_agent_id)}
            await self._events.publish([item.user_id, item.former_agent_id], UserEvent("chat.requeued", payload))
        return len(requeued)

    async def close_idle(self, now: datetime, batch_size: int = 1_000) -> int:
        """Close chats whose user left the agent unanswered past the idle timeout, each with a system
        message; commit one batch; return how many."""
        due = await self._chats.idle_chats(now - self._policy.idle_timeout, batch_size)
        closed = await self._chats.close(due, CloseReason.IDLE, now) if due else []
        await self._uow.commit()
        await self._announce_closed(closed)
        return len(closed)

    async def cleanup_inactive(self, now: datetime, batch_size: int) -> CleanupOutcome:
        """One batch of the daily cleanup: open chats without a message for the inactivity period close (with a
        system message); chats closed longer ago than the retention period are deleted with their messages.
        The scheduler calls it until both counts come back below ``batch_size``."""
        due = await self._chats.inactive_chats(now - self._policy.inactive_after, batch_size)
        closed = await self._chats.close(due, CloseReason.INACTIVE, now) if due else []
        deleted = await self._chats.delete_closed(now - self._policy.retention, batch_size)
        await self._uow.commit()
        await self._announce_closed(closed)
        return CleanupOutcome(closed=len(closed), deleted=deleted)

    # --- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _may_see(actor: Principal, chat: Chat) -> bool:
        if actor.id == chat.user_id or actor.has_role(Role.ADMIN):
            return True
        return actor.has_role(Role.AGENT) and chat.agent_id == actor.id

    @staticmethod
    def _role_in(actor: Principal, chat: Chat) -> SenderRole:
        if actor.id == chat.user_id:
            return SenderRole.USER
        if actor.id == chat.agent_id and actor.has_role(Role.AGENT):
            return SenderRole.AGENT
        raise NotParticipant("Only the chat's user and its assigned agent take part in it.")

    @staticmethod
    def _require_agent(actor: Principal) -> None:
        if not actor.has_role(Role.AGENT):
            raise NotAnAgent("This is for customer-service agents.")

    async def _announce_closed(self, chats: Iterable[Chat]) -> None:
        for chat in chats:
            payload = {
                "chat_id": str(chat.id),
                "reason": None if chat.close_reason is None else chat.close_reason.value,
            }
            await self._events.publish(_participants(chat), UserEvent("chat.closed", payload))
