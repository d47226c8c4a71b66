"""The pool's queue of idle connections serves waiting requests first come, first served."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.util.concurrency import greenlet_spawn
from sqlalchemy.util.queue import Empty

from app.infra.db.config import FairAsyncQueuePool


def _queue() -> Any:
    return FairAsyncQueuePool._queue_class(3)


async def _get(queue: Any, timeout: float | None = None) -> Any:
    return await greenlet_spawn(queue.get, True, timeout)


async def test_a_returned_connection_goes_to_the_longest_waiter_not_to_a_newcomer() -> None:
    queue = _queue()
    waiters = []
    for _ in range(3):
        waiters.append(asyncio.create_task(_get(queue)))
        await asyncio.sleep(0)  # each one in line before the next
    for item in ("a", "b"):
        queue.put_nowait(item)
    # a request arriving now finds nothing idle: both connections are already promised
    with pytest.raises(Empty):
        queue.get_nowait()
    queue.put_nowait("c")
    assert await asyncio.gather(*waiters) == ["a", "b", "c"]
    assert queue.qsize() == 0


async def test_a_wait_past_the_timeout_gives_up_and_leaves_the_line() -> None:
    queue = _queue()
    with pytest.raises(Empty):
        await _get(queue, timeout=0.05)
    queue.put_nowait("a")  # nobody waits any more: it stays idle
    assert queue.qsize() == 1
    assert await _get(queue, timeout=0.05) == "a"


async def test_a_connection_handed_to_a_cancelled_waiter_passes_to_the_next() -> None:
    queue = _queue()
    first = asyncio.create_task(_get(queue))
    await asyncio.sleep(0)
    second = asyncio.create_task(_get(queue))
    await asyncio.sleep(0)
    queue.put_nowait("a")  # promised to the first ...
    first.cancel()  # ... which gives up before it runs again
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, 1) == "a"
    assert queue.qsize() == 0
