"""The pure parts of customer service: the assignment plan and the opaque cursor."""

from __future__ import annotations

import uuid
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from app.domain.support.model import AgentCapacity, QueuedChat, decode_cursor, encode_cursor, plan_assignments


def _queue(count: int) -> list[QueuedChat]:
    return [QueuedChat(id=uuid.uuid4(), user_id=uuid.uuid4()) for _ in range(count)]


def _agents(loads: list[int], maximum: int) -> list[AgentCapacity]:
    return [AgentCapacity(user_id=uuid.uuid4(), load=load, max_chats=maximum) for load in loads]


@given(
    loads=st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=12),
    waiting=st.integers(min_value=0, max_value=80),
)
def test_the_plan_fills_the_least_loaded_first_in_queue_order(loads: list[int], waiting: int) -> None:
    agents = _agents(loads, 6)
    queue = _queue(waiting)
    plan = plan_assignments(queue, agents)
    free = sum(6 - load for load in loads)
    assert len(plan) == min(waiting, free)
    assert [item.chat_id for item in plan] == [chat.id for chat in queue[: len(plan)]]  # FIFO, no chat twice
    added = Counter(item.agent_id for item in plan)
    final = [agent.load + added[agent.user_id] for agent in agents]
    assert max(final) <= 6
    # water-filling: an agent below the highest level reached was left below only when it was already full
    raised = [level for agent, level in zip(agents, final, strict=True) if added[agent.user_id]]
    if raised:
        assert all(level >= max(raised) - 1 or level == 6 for level in final)


def test_an_agent_never_gets_their_own_chat() -> None:
    (agent,) = _agents([0], 5)
    own = QueuedChat(id=uuid.uuid4(), user_id=agent.user_id)
    other = _queue(1)[0]
    plan = plan_assignments([own, other], [agent])
    assert [item.chat_id for item in plan] == [other.id]


def test_equal_agents_end_within_one_of_each_other() -> None:
    agents = _agents([0] * 50, 25)
    plan = plan_assignments(_queue(1000), agents)
    loads = Counter(item.agent_id for item in plan)
    assert len(plan) == 1000
    assert max(loads.values()) - min(loads.values()) <= 1


@given(st.integers(min_value=1, max_value=2**31 - 1))
def test_a_cursor_round_trips(seq: int) -> None:
    assert decode_cursor(encode_cursor(seq)) == seq


def test_foreign_cursors_are_refused() -> None:
    for cursor in ("", "abc", "czE6", "czE6MA", "czE6LTE", "czI6NQ", "czE6wrI", "!!!!"):
        assert decode_cursor(cursor) is None, cursor
