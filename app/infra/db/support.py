"""Customer service on SQLAlchemy Core.

Concurrency. A chat changes through guarded ``UPDATE ... WHERE <the state it needs>``
statements: a message needs an open chat (and, from an agent, that it is still theirs),
a close an open one; the row lock orders concurrent messages, so their sequence numbers
are consecutive. The jobs take their batches with ``FOR UPDATE SKIP LOCKED`` and re-check
the state in the write, so overlapping runs split the work instead of doing it twice.

Assignment. An agent's load is not stored but counted from the assigned chats, so it
cannot drift from them. What keeps the count true while it is used: only assignment
raises a load, and every assignment run first locks all online agents' rows (in id order,
so runs cannot deadlock) and counts after it holds them. A second run waits for the
first to commit, then counts again in a new snapshot (READ COMMITTED) and sees the
first run's chats: no agent goes above their maximum. Closing or requeuing a chat only
lowers a load and needs no agent lock. The waiting chats of a run are locked with
``SKIP LOCKED`` in queue order, so a chat is never assigned twice; one that its user's
own write holds at that moment is left for the next run, still at its place.

SQLite runs one writer at a time and ignores ``FOR UPDATE``: the same statements are safe there.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, bindparam, case, delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.support.model import (
    CLOSING_WORDS,
    OPEN_STATUSES,
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
from app.domain.users.model import Role
from app.infra.db.support_tables import SupportAgentRecord, SupportChatRecord, SupportMessageRecord
from app.infra.db.tables import UserRecord

_C = SupportChatRecord
_M = SupportMessageRecord
_A = SupportAgentRecord
_U = UserRecord
_OPEN = sorted(status.value for status in OPEN_STATUSES)
_WAITING = ChatStatus.WAITING.value
_ASSIGNED = ChatStatus.ASSIGNED.value
_CHAT_COLUMNS = (
    _C.id,
    _C.user_id,
    _C.agent_id,
    _C.subject,
    _C.status,
    _C.close_reason,
    _C.queued_at,
    _C.assigned_at,
    _C.closed_at,
    _C.last_activity_at,
    _C.last_seq,
    _C.user_read_seq,
    _C.agent_read_seq,
    _C.created_at,
    _C.updated_at,
)
_MESSAGE_COLUMNS = (_M.id, _M.chat_id, _M.seq, _M.sender_id, _M.sender_role, _M.body, _M.created_at)


# Assignment writes all the chats of a run in one statement. PostgreSQL: one ``UPDATE ... FROM unnest(<two
# arrays>)``, two parameters whatever the batch, so one plan and no per-row work on either side (a VALUES list
# costs the client a fresh compile of thousands of parameters; an executemany runs one update per chat on the
# server). SQLite, one writer in process: an executemany of the same guarded update. Either way the user now
# waits for the agent's first word, and the new agent has read nothing yet.
_ASSIGN_POSTGRES = text(
    "UPDATE support_chats SET status = 'assigned', agent_id = plan.agent_id, assigned_at = :now, "
    "awaiting_agent_since = :now, awaiting_user_since = NULL, agent_read_seq = 0, updated_at = :now "
    "FROM unnest(CAST(:chats AS uuid[]), CAST(:agents AS uuid[])) AS plan(chat_id, agent_id) "
    "WHERE support_chats.id = plan.chat_id AND support_chats.status = 'waiting'"
)
_CHATS = cast(Table, _C.__table__)
_ASSIGN_EACH = (
    update(_CHATS)
    .where(_CHATS.c.id == bindparam("chat"), _CHATS.c.status == _WAITING)
    .values(
        status=_ASSIGNED,
        agent_id=bindparam("agent"),
        assigned_at=bindparam("now"),
        awaiting_agent_since=bindparam("now"),
        awaiting_user_since=None,
        agent_read_seq=0,
        updated_at=bindparam("now"),
    )
)


def _to_chat(row: Any) -> Chat:
    return Chat(
        id=row.id,
        user_id=row.user_id,
        agent_id=row.agent_id,
        subject=row.subject,
        status=ChatStatus(row.status),
        close_reason=None if row.close_reason is None else CloseReason(row.close_reason),
        queued_at=row.queued_at,
        assigned_at=row.assigned_at,
        closed_at=row.closed_at,
        last_activity_at=row.last_activity_at,
        last_seq=row.last_seq,
        user_read_seq=row.user_read_seq,
        agent_read_seq=row.agent_read_seq,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _to_message(row: Any) -> Message:
    return Message(
        id=row.id,
        chat_id=row.chat_id,
        seq=row.seq,
        sender_id=row.sender_id,
        sender_role=SenderRole(row.sender_role),
        body=row.body,
        created_at=row.created_at,
    )


def _statuses(statuses: frozenset[ChatStatus]) -> list[str]:
    return sorted(status.value for status in statuses)


def _is_active_agent() -> list[ColumnElement[bool]]:
    return [_U.role == Role.AGENT.value, _U.is_active.is_(True)]


def _dialect_insert(session: AsyncSession) -> Any:
    """The dialect's own ``insert`` (it has ``on_conflict_do_*`` on both PostgreSQL and SQLite)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


class SqlChatRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def open(self, chat: Chat) -> Chat | None:
        statement = (
            _dialect_insert(self._session)(_C)
            .values(
                id=chat.id,
                user_id=chat.user_id,
                subject=chat.subject,
                status=chat.status.value,
                queued_at=chat.queued_at,
                last_activity_at=chat.last_activity_at,
                last_seq=0,
                user_read_seq=0,
                agent_read_seq=0,
                created_at=chat.created_at,
                updated_at=chat.updated_at,
            )
            # the one-open-chat-per-user index refuses a second one, also when two opens race
            .on_conflict_do_nothing()
            .returning(*_CHAT_COLUMNS)
        )
        row = (await self._session.execute(statement)).first()
        return None if row is None else _to_chat(row)

    async def get(self, chat_id: uuid.UUID) -> Chat | None:
        row = (await self._session.execute(select(*_CHAT_COLUMNS).where(_C.id == chat_id))).first()
        return None if row is None else _to_chat(row)

    async def list_chats(
        self,
        statuses: frozenset[ChatStatus],
        limit: int,
        offset: int,
        *,
        user_id: uuid.UUID | None = None,
        agent_id: uuid.UUID | None = None,
    ) -> tuple[list[ChatSummary], int]:
        conditions: list[ColumnElement[bool]] = []
        if statuses:
            conditions.append(_C.status.in_(_statuses(statuses)))
        if user_id is not None:
            conditions.append(_C.user_id == user_id)
        if agent_id is not None:
            conditions.append(_C.agent_id == agent_id)
        page = (
            select(*_CHAT_COLUMNS)
            .where(*conditions)
            .order_by(_C.created_at.desc(), _C.id.desc())
            .limit(limit)
            .offset(offset)
        )
        chats = [_to_chat(row) for row in (await self._session.execute(page)).all()]
        total = (await self._session.execute(select(func.count()).select_from(_C).where(*conditions))).scalar_one()
        last: dict[uuid.UUID, Message] = {}
        if chats:
            # each chat's newest message, for the whole page in one statement
            newest = (
                select(*_MESSAGE_COLUMNS)
                .join(_C, (_C.id == _M.chat_id) & (_C.last_seq == _M.seq))
                .where(_C.id.in_([chat.id for chat in chats]))
            )
            last = {row.chat_id: _to_message(row) for row in (await self._session.execute(newest)).all()}
        return [ChatSummary(chat=chat, last_message=last.get(chat.id)) for chat in chats], int(total)

    async def append(
        self, chat_id: uuid.UUID, sender_id: uuid.UUID, role: SenderRole, body: str, now: datetime.datetime
    ) -> tuple[Chat, Message] | None:
        values: dict[str, Any] = {"last_seq": _C.last_seq + 1, "last_activity_at": now, "updated_at": now}
        conditions: list[ColumnElement[bool]] = [_C.id == chat_id]
        if role is SenderRole.USER:
            conditions += [_C.user_id == sender_id, _C.status.in_(_OPEN)]
            values |= {
                "user_read_seq": _C.last_seq + 1,  # writing means having read what came before
                "awaiting_agent_since": func.coalesce(_C.awaiting_agent_since, now),
                "awaiting_user_since": None,
            }
        else:
            conditions += [_C.agent_id == sender_id, _C.status == _ASSIGNED]
            values |= {
                "agent_read_seq": _C.last_seq + 1,
                "awaiting_user_since": func.coalesce(_C.awaiting_user_since, now),
                "awaiting_agent_since": None,
            }
        statement = update(_C).where(*conditions).values(**values).returning(*_CHAT_COLUMNS)
        row = (await self._session.execute(statement)).first()
        if row is None:
            return None
        chat = _to_chat(row)
        message = Message(
            id=uuid.uuid4(),
            chat_id=chat_id,
            seq=chat.last_seq,
            sender_id=sender_id,
            sender_role=role,
            body=body,
            created_at=now,
        )
        await self._session.execute(insert(_M).values(self._message_row(message)))
        return chat, message

    @staticmethod
    def _message_row(message: Message) -> dict[str, Any]:
        return {
            "id": message.id,
            "chat_id": message.chat_id,
            "seq": message.seq,
            "sender_id": message.sender_id,
            "sender_role": message.sender_role.value,
            "body": message.body,
            "created_at": message.created_at,
        }

    async def messages_before(self, chat_id: uuid.UUID, before_seq: int | None, limit: int) -> list[Message]:
        conditions = [_M.chat_id == chat_id]
        if before_seq is not None:
            conditions.append(_M.seq < before_seq)
        statement = select(*_MESSAGE_COLUMNS).where(*conditions).order_by(_M.seq.desc()).limit(limit)
        return [_to_message(row) for row in (await self._session.execute(statement)).all()]

    async def mark_read(
        self, chat_id: uuid.UUID, reader_id: uuid.UUID, role: SenderRole, up_to_seq: int | None
    ) -> Chat | None:
        marker = _C.user_read_seq if role is SenderRole.USER else _C.agent_read_seq
        owner = _C.user_id if role is SenderRole.USER else _C.agent_id
        target = _C.last_seq if up_to_seq is None else case((_C.last_seq < up_to_seq, _C.last_seq), else_=up_to_seq)
        statement = (
            update(_C)
            .where(_C.id == chat_id, owner == reader_id)
            .values({marker.key: case((marker < target, target), else_=marker)})
            .returning(*_CHAT_COLUMNS)
        )
        row = (await self._session.execute(statement)).first()
        return None if row is None else _to_chat(row)

    async def close(
        self,
        chat_ids: Sequence[uuid.UUID],
        reason: CloseReason,
        now: datetime.datetime,
        *,
        agent_id: uuid.UUID | None = None,
    ) -> list[Chat]:
        if not chat_ids:
            return []
        conditions: list[ColumnElement[bool]] = [_C.id.in_(list(chat_ids)), _C.status.in_(_OPEN)]
        if agent_id is not None:
            conditions += [_C.agent_id == agent_id, _C.status == _ASSIGNED]
        statement = (
            update(_C)
            .where(*conditions)
            .values(
                status=ChatStatus.CLOSED.value,
                close_reason=reason.value,
                closed_at=now,
                last_seq=_C.last_seq + 1,  # the system message saying why
                awaiting_agent_since=None,
                awaiting_user_since=None,
                updated_at=now,
            )
            .returning(*_CHAT_COLUMNS)
        )
        closed = [_to_chat(row) for row in (await self._session.execute(statement)).all()]
        if closed:
            words = CLOSING_WORDS[reason]
            rows = [
                self._message_row(Message(uuid.uuid4(), chat.id, chat.last_seq, None, SenderRole.SYSTEM, words, now))
                for chat in closed
            ]
            await self._session.execute(insert(_M), rows)
        return closed

    async def online_agents_locked(self, default_max_chats: int) -> list[AgentCapacity]:
        agents = (
            await self._session.execute(
                select(_A.user_id, _A.max_chats)
                .join(_U, _U.id == _A.user_id)
                .where(_A.status == AgentStatus.ONLINE.value, *_is_active_agent())
                .order_by(_A.user_id)
                .with_for_update(of=_A)
            )
        ).all()
        if not agents:
            return []
        # counted only now, under the locks, in a snapshot that sees every earlier run's commit
        counted = await self._session.execute(
            select(_C.agent_id, func.count())
            .where(_C.status == _ASSIGNED, _C.agent_id.in_([agent.user_id for agent in agents]))
            .group_by(_C.agent_id)
        )
        loads: dict[uuid.UUID | None, int] = {row[0]: row[1] for row in counted}
        return [
            AgentCapacity(
                user_id=agent.user_id, load=loads.get(agent.user_id, 0), max_chats=agent.max_chats or default_max_chats
            )
            for agent in agents
        ]

    async def lock_queue_head(self, limit: int) -> list[QueuedChat]:
        statement = (
            select(_C.id, _C.user_id)
            .where(_C.status == _WAITING)
            .order_by(_C.queued_at, _C.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [QueuedChat(id=row.id, user_id=row.user_id) for row in (await self._session.execute(statement)).all()]

    async def assign(self, assignments: Sequence[Assignment], now: datetime.datetime) -> None:
        if assignments:
            if self._session.get_bind().dialect.name == "postgresql":
                chats = [item.chat_id for item in assignments]
                agents = [item.agent_id for item in assignments]
                await self._session.execute(_ASSIGN_POSTGRES, {"chats": chats, "agents": agents, "now": now})
            else:
                rows = [{"chat": item.chat_id, "agent": item.agent_id, "now": now} for item in assignments]
                await self._session.execute(_ASSIGN_EACH, rows)

    async def requeue_unanswered(
        self, now: datetime.datetime, answer_deadline: datetime.datetime, batch_size: int
    ) -> list[Requeued]:
        available = (
            select(_A.user_id)
            .join(_U, _U.id == _A.user_id)
            .where(_A.status == AgentStatus.ONLINE.value, *_is_active_agent())
        )
        due = (
            await self._session.execute(
                select(_C.id, _C.user_id, _C.agent_id)
                .where(
                    _C.status == _ASSIGNED,
                    (_C.awaiting_agent_since <= answer_deadline) | _C.agent_id.not_in(available),
                )
                .order_by(_C.queued_at)
                .limit(batch_size)
                .with_for_update(skip_locked=True, of=_C)
            )
        ).all()
        if not due:
            return []
        changed = (
            await self._session.execute(
                update(_C)
                .where(_C.id.in_([row.id for row in due]), _C.status == _ASSIGNED)
                .values(
                    status=_WAITING,  # queued_at stays: the chat returns to its original place
                    agent_id=None,
                    assigned_at=None,
                    awaiting_agent_since=None,
                    awaiting_user_since=None,
                    agent_read_seq=0,
                    updated_at=now,
                )
                .returning(_C.id)
            )
        ).scalars()
        requeued = set(changed)
        return [
            Requeued(chat_id=row.id, user_id=row.user_id, former_agent_id=row.agent_id)
            for row in due
            if row.id in requeued
        ]

    async def _locked_ids(self, conditions: list[ColumnElement[bool]], order: Any, batch_size: int) -> list[uuid.UUID]:
        statement = select(_C.id).where(*conditions).order_by(order).limit(batch_size).with_for_update(skip_locked=True)
        return list((await self._session.execute(statement)).scalars())

    async def idle_chats(self, reply_deadline: datetime.datetime, batch_size: int) -> list[uuid.UUID]:
        return await self._locked_ids(
            [_C.status == _ASSIGNED, _C.awaiting_user_since <= reply_deadline], _C.awaiting_user_since, batch_size
        )

    async def inactive_chats(self, last_activity_before: datetime.datetime, batch_size: int) -> list[uuid.UUID]:
        return await self._locked_ids(
            [_C.status.in_(_OPEN), _C.last_activity_at <= last_activity_before], _C.last_activity_at, batch_size
        )

    async def delete_closed(self, closed_before: datetime.datetime, batch_size: int) -> int:
        ids = await self._locked_ids(
            [_C.status == ChatStatus.CLOSED.value, _C.closed_at <= closed_before], _C.closed_at, batch_size
        )
        if not ids:
            return 0
        await self._session.execute(delete(_M).where(_M.chat_id.in_(ids)))
        deleted = await self._session.execute(delete(_C).where(_C.id.in_(ids)).returning(_C.id))
        return len(deleted.all())


class SqlAgentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, user_id: uuid.UUID, default_max_chats: int) -> Agent | None:
        load = (
            select(func.count()).select_from(_C).where(_C.agent_id == _U.id, _C.status == _ASSIGNED).scalar_subquery()
        )
        statement = (
            select(_U.role, _A.status, _A.max_chats, _A.status_changed_at, load.label("load"))
            .select_from(_U)
            .outerjoin(_A, _A.user_id == _U.id)
            .where(_U.id == user_id)
        )
        row = (await self._session.execute(statement)).first()
        if row is None or row.role != Role.AGENT.value:
            return None
        return Agent(
            user_id=user_id,
            status=AgentStatus(row.status or AgentStatus.OFFLINE.value),
            max_chats_override=row.max_chats,
            max_chats=row.max_chats or default_max_chats,
            active_chats=int(row.load),
            status_changed_at=row.status_changed_at,
        )

    async def _upsert(self, user_id: uuid.UUID, now: datetime.datetime, changes: dict[str, Any]) -> None:
        statement = (
            _dialect_insert(self._session)(_A)
            .values(
                {"id": uuid.uuid4(), "user_id": user_id, "status": AgentStatus.OFFLINE.value, "updated_at": now}
                | changes
            )
            .on_conflict_do_update(index_elements=[_A.user_id], set_={"updated_at": now, **changes})
        )
        await self._session.execute(statement)

    async def set_status(
        self, user_id: uuid.UUID, status: AgentStatus, now: datetime.datetime, default_max_chats: int
    ) -> Agent:
        await self._upsert(user_id, now, {"status": status.value, "status_changed_at": now})
        agent = await self.get(user_id, default_max_chats)
        assert agent is not None
        return agent

    async def set_max_chats(
        self, user_id: uuid.UUID, max_chats: int | None, now: datetime.datetime, default_max_chats: int
    ) -> Agent | None:
        if await self.get(user_id, default_max_chats) is None:
            return None
        await self._upsert(user_id, now, {"max_chats": max_chats})
        return await self.get(user_id, default_max_chats)
