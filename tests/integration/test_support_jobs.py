"""The customer-service jobs, driven by a clock the test moves, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.domain.support.model import AgentStatus, ChatStatus, CloseReason, SenderRole
from app.domain.support.service import ChatClosed, ChatNotFound
from app.domain.users.model import Principal
from app.infra.db.support_tables import SupportChatRecord, SupportMessageRecord
from tests.integration.support_harness import Support, support_on


async def _open(support: Support, user: Principal, text: str = "Hello?") -> str:
    chat = await support.run(lambda s: s.open_chat(user, "Payout", text))
    return str(chat.id)


async def test_assignment_gives_the_queue_head_to_the_least_loaded_agents(database_url: str) -> None:
    async with support_on(database_url) as support:
        agents = await support.online_agents(3, max_chats=2)
        chats = await support.waiting_chats(8)
        assert await support.run(lambda s: s.assign_waiting(support.clock.now())) == 6
        assigned = await support.assigned()
        assert set(assigned) == set(chats[:6])  # the earliest six; the last two keep waiting
        loads = [list(assigned.values()).count(agent.id) for agent in agents]
        assert loads == [2, 2, 2]
        assert {(await support.chat(chat)).status for chat in chats[6:]} == {ChatStatus.WAITING}
        assert len(support.events.of_type("chat.assigned")) == 6
        # full: nothing moves until an agent has room
        assert await support.run(lambda s: s.assign_waiting(support.clock.now())) == 0
        first_agent = next(agent for agent in agents if agent.id == assigned[chats[0]])
        await support.run(lambda s: s.close_chat(first_agent, chats[0]))
        assert await support.run(lambda s: s.assign_waiting(support.clock.now())) == 1
        assert (await support.assigned())[chats[6]] == first_agent.id


async def test_an_offline_agents_chats_return_to_their_place_in_the_queue(database_url: str) -> None:
    async with support_on(database_url) as support:
        (agent,) = await support.online_agents(1, max_chats=1)
        first, second = await support.waiting_chats(2)
        await support.run(lambda s: s.assign_waiting(support.clock.now()))
        assert (await support.chat(first)).agent_id == agent.id
        await support.run(lambda s: s.set_agent_status(agent, AgentStatus.OFFLINE))
        assert await support.run(lambda s: s.requeue_unanswered(support.clock.now())) == 1
        back = await support.chat(first)
        assert (back.status, back.agent_id) == (ChatStatus.WAITING, None)
        assert [event.payload["chat_id"] for _, event in support.events.of_type("chat.requeued")] == [str(first)]
        # back online: the requeued chat is still ahead of the one that waited all along
        await support.run(lambda s: s.set_agent_status(agent, AgentStatus.ONLINE))
        assert await support.run(lambda s: s.assign_waiting(support.clock.now())) == 1
        assert (await support.chat(first)).agent_id == agent.id
        assert (await support.chat(second)).status is ChatStatus.WAITING


async def test_an_agent_silent_past_the_answer_timeout_loses_the_chat(database_url: str) -> None:
    async with support_on(database_url) as support:
        (agent,) = await support.online_agents(1)
        (ada, bob) = await support.people(2)
        silent = await support.run(lambda s: s.open_chat(ada, None, "Anyone?"))
        answered = await support.run(lambda s: s.open_chat(bob, None, "Hi"))
        await support.run(lambda s: s.assign_waiting(support.clock.now()))
        await support.run(lambda s: s.send_message(answered.id, agent, "Hello Bob, how can I help?"))

        support.clock.current += support.policy.answer_timeout - timedelta(seconds=1)
        assert await support.run(lambda s: s.requeue_unanswered(support.clock.now())) == 0
        support.clock.current += timedelta(seconds=1)
        assert await support.run(lambda s: s.requeue_unanswered(support.clock.now())) == 1
        assert (await support.chat(silent.id)).status is ChatStatus.WAITING
        assert (await support.chat(answered.id)).status is ChatStatus.ASSIGNED
        # the user writes again: the agent owes an answer from that moment
        await support.run(lambda s: s.send_message(answered.id, bob, "It is about my payout."))
        support.clock.current += support.policy.answer_timeout
        assert await support.run(lambda s: s.requeue_unanswered(support.clock.now())) == 1
        assert (await support.chat(answered.id)).status is ChatStatus.WAITING


async def test_a_user_idle_past_the_timeout_gets_the_chat_closed_with_a_system_message(database_url: str) -> None:
    async with support_on(database_url) as support:
        (agent,) = await support.online_agents(1)
        (ada, bob) = await support.people(2)
        idle = await support.run(lambda s: s.open_chat(ada, None, "Help"))
        waiting_for_agent = await support.run(lambda s: s.open_chat(bob, None, "Help too"))
        await support.run(lambda s: s.assign_waiting(support.clock.now()))
        await support.run(lambda s: s.send_message(idle.id, agent, "What is your order number?"))

        support.clock.current += support.policy.idle_timeout - timedelta(seconds=1)
        assert await support.run(lambda s: s.close_idle(support.clock.now())) == 0
        support.clock.current += timedelta(seconds=1)
        assert await support.run(lambda s: s.close_idle(support.clock.now())) == 1
        closed = await support.chat(idle.id)
        assert (closed.status, closed.close_reason, closed.closed_at) == (
            ChatStatus.CLOSED,
            CloseReason.IDLE,
            support.clock.now(),
        )
        # the bot's words are the last message, unread by the user
        page = await support.run(lambda s: s.list_messages(ada, idle.id, None, 10))
        assert (page.items[0].sender_role, page.items[0].sender_id) == (SenderRole.SYSTEM, None)
        assert closed.unread_for(ada.id) == 2
        # a chat where the user waits for the agent is not idle
        assert (await support.chat(waiting_for_agent.id)).status is ChatStatus.ASSIGNED
        assert [event.payload["reason"] for _, event in support.events.of_type("chat.closed")] == ["idle"]


async def test_cleanup_closes_inactive_chats_and_deletes_old_closed_ones(database_url: str) -> None:
    async with support_on(database_url) as support:
        (ada, bob, eve) = await support.people(3)
        old = await support.run(lambda s: s.open_chat(ada, None, "First"))
        await support.run(lambda s: s.close_chat(ada, old.id))
        support.clock.current += timedelta(days=30)
        stale = await support.run(lambda s: s.open_chat(bob, None, "Hello"))
        support.clock.current += timedelta(days=3)
        fresh = await support.run(lambda s: s.open_chat(eve, None, "Hi"))

        support.clock.current += support.policy.inactive_after - timedelta(days=3)  # stale: 7 days, fresh: 4
        outcome = await support.run(lambda s: s.cleanup_inactive(support.clock.now(), 100))
        assert (outcome.closed, outcome.deleted) == (1, 0)
        assert (await support.chat(stale.id)).close_reason is CloseReason.INACTIVE
        assert (await support.chat(fresh.id)).status is ChatStatus.WAITING

        support.clock.current = old.created_at + support.policy.retention + timedelta(seconds=1)
        outcome = await support.run(lambda s: s.cleanup_inactive(support.clock.now(), 100))
        assert (outcome.closed, outcome.deleted) == (1, 1)  # fresh went inactive too; old is gone
        async with support.sessions() as session:
            chats = set((await session.execute(select(SupportChatRecord.id))).scalars())
            orphans = await session.scalar(
                select(func.count()).select_from(SupportMessageRecord).where(SupportMessageRecord.chat_id == old.id)
            )
        assert chats == {stale.id, fresh.id}
        assert orphans == 0
        # idempotent: nothing left to do
        outcome = await support.run(lambda s: s.cleanup_inactive(support.clock.now(), 100))
        assert (outcome.closed, outcome.deleted) == (0, 0)


async def test_cleanup_works_in_batches(database_url: str) -> None:
    async with support_on(database_url) as support:
        await support.waiting_chats(7)
        support.clock.current += support.policy.inactive_after
        counts = []
        while (outcome := await support.run(lambda s: s.cleanup_inactive(support.clock.now(), 3))).closed:
            counts.append(outcome.closed)
        assert counts == [3, 3, 1]


async def test_events_reach_the_participants_after_the_commit_and_typing_is_never_stored(database_url: str) -> None:
    async with support_on(database_url) as support:
        (agent,) = await support.online_agents(1)
        (ada, bob) = await support.people(2)
        chat = await support.run(lambda s: s.open_chat(ada, None, "Hi"))
        await support.run(lambda s: s.assign_waiting(support.clock.now()))
        await support.run(lambda s: s.send_message(chat.id, agent, "Hello"))
        ((to, message),) = [(who, e) for who, e in support.events.of_type("chat.message") if e.payload["seq"] == 2]
        assert to == {ada.id, agent.id}
        assert (message.payload["body"], message.payload["sender_role"]) == ("Hello", "agent")
        assert support.events.of_type("chat.assigned")[0][0] == {ada.id, agent.id}

        await support.run(lambda s: s.notify_typing(chat.id, ada))
        ((to, typing),) = support.events.of_type("chat.typing")
        assert (to, typing.payload["user_id"]) == ({agent.id}, str(ada.id))
        assert (await support.chat(chat.id)).last_seq == 2  # nothing stored
        await support.run(lambda s: s.mark_read(ada, chat.id))
        assert support.events.of_type("chat.read")[0][0] == {agent.id}

        with pytest.raises(ChatNotFound):  # a stranger learns nothing, not even that the chat exists
            await support.run(lambda s: s.notify_typing(chat.id, bob))
        await support.run(lambda s: s.notify_typing(chat.id, agent))
        assert support.events.of_type("chat.typing")[-1][0] == {ada.id}
        await support.run(lambda s: s.close_chat(ada, chat.id))
        with pytest.raises(ChatClosed):
            await support.run(lambda s: s.notify_typing(chat.id, ada))
