"""The assignment job at scale and under overlap (PostgreSQL, real concurrent sessions)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from app.domain.support.service import ChatAlreadyOpen
from tests.integration.support_harness import support_on

pytestmark = pytest.mark.postgres


async def test_a_thousand_waiting_chats_spread_evenly_over_fifty_agents(pg_url: str) -> None:
    async with support_on(pg_url) as support:
        agents = await support.online_agents(50, max_chats=25)
        chats = await support.waiting_chats(1000)
        assert await support.run(lambda s: s.assign_waiting(support.clock.now())) == 1000
        assigned = await support.assigned()
        assert set(assigned) == set(chats)
        loads = Counter(assigned.values())
        assert set(loads) == {agent.id for agent in agents}
        assert max(loads.values()) - min(loads.values()) <= 1
        assert max(loads.values()) <= 25


async def test_short_capacity_serves_the_earliest_chats_and_keeps_the_rest_in_order(pg_url: str) -> None:
    async with support_on(pg_url) as support:
        agents = await support.online_agents(50, max_chats=5)
        chats = await support.waiting_chats(1000)
        assert await support.run(lambda s: s.assign_waiting(support.clock.now())) == 250
        assigned = await support.assigned()
        assert set(assigned) == set(chats[:250])
        assert set(Counter(assigned.values()).values()) == {5}
        # capacity comes back: the next in line are served next, in queue order
        freed = [chat for chat, agent in assigned.items() if agent == agents[0].id][:2]
        for chat in freed:
            await support.run(lambda s, c=chat: s.close_chat(agents[0], c))
        assert await support.run(lambda s: s.assign_waiting(support.clock.now())) == 2
        now_assigned = await support.assigned()
        assert {chat for chat in now_assigned if chat not in assigned} == set(chats[250:252])


async def test_overlapping_runs_never_assign_a_chat_twice_nor_overfill_an_agent(pg_url: str) -> None:
    async with support_on(pg_url) as support:
        await support.online_agents(50, max_chats=5)
        chats = await support.waiting_chats(1000)
        counts = await asyncio.gather(*(support.run(lambda s: s.assign_waiting(support.clock.now())) for _ in range(4)))
        assert sum(counts) == 250
        assigned = await support.assigned()
        assert set(assigned) == set(chats[:250])
        assert set(Counter(assigned.values()).values()) == {5}
        announced = [event.payload["chat_id"] for _, event in support.events.of_type("chat.assigned")]
        assert len(announced) == len(set(announced)) == 250


async def test_overlapping_runs_with_room_for_everyone_keep_loads_even(pg_url: str) -> None:
    async with support_on(pg_url) as support:
        await support.online_agents(50, max_chats=10)
        chats = await support.waiting_chats(300)
        counts = await asyncio.gather(*(support.run(lambda s: s.assign_waiting(support.clock.now())) for _ in range(4)))
        assert sum(counts) == 300
        assigned = await support.assigned()
        assert set(assigned) == set(chats)
        loads = Counter(assigned.values())
        assert max(loads.values()) - min(loads.values()) <= 1


async def test_simultaneous_messages_of_one_chat_get_consecutive_numbers(pg_url: str) -> None:
    async with support_on(pg_url) as support:
        (ada,) = await support.people(1)
        chat = await support.run(lambda s: s.open_chat(ada))
        messages = await asyncio.gather(
            *(support.run(lambda s, n=n: s.send_message(chat.id, ada, f"m{n}")) for n in range(20))
        )
        assert sorted(message.seq for message in messages) == list(range(1, 21))
        stored = await support.chat(chat.id)
        assert (stored.last_seq, stored.user_read_seq) == (20, 20)


async def test_simultaneous_opens_by_one_user_leave_one_open_chat(pg_url: str) -> None:
    async with support_on(pg_url) as support:
        (ada,) = await support.people(1)

        async def attempt() -> str:
            try:
                await support.run(lambda s: s.open_chat(ada, None, "Hello"))
            except ChatAlreadyOpen as error:
                return error.code
            return "opened"

        outcomes = Counter(await asyncio.gather(*(attempt() for _ in range(10))))
        assert outcomes == {"opened": 1, "chat_already_open": 9}
