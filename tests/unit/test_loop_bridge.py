"""SPEC 6.1: one event loop; threads reach async code only through the bridge, which reuses the captured loop."""

from __future__ import annotations

import ast
import asyncio
import gc
import inspect
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.infra.lifecycle import BridgeClosed, LoopBridge

APP_DIR = Path(__file__).resolve().parents[2] / "app"
# Separate command-line processes, not the service: they own their loop.
OUTSIDE_THE_SERVICE = {Path("cli.py"), Path("jobs_cli.py"), Path("infra/db/migrations/env.py")}
# The counting event-loop policy defines ``new_event_loop`` and passes the call on to the real policy: it
# creates no loop of its own, it is how a stray one gets counted.
LOOP_COUNTING_POLICY = {Path("infra/observability/loop_metrics.py"): ["new_event_loop"]}


@pytest.fixture
def forbid_new_loops(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Record (and refuse) any attempt to build a second event loop while the test runs."""
    attempts: list[str] = []

    def refuse(name: str) -> Any:
        def call(*_args: Any, **_kwargs: Any) -> Any:
            attempts.append(name)
            raise AssertionError(f"{name} called: the bridge must reuse the captured loop")

        return call

    monkeypatch.setattr(asyncio, "run", refuse("asyncio.run"))
    monkeypatch.setattr(asyncio, "new_event_loop", refuse("asyncio.new_event_loop"))
    monkeypatch.setattr(asyncio.events, "new_event_loop", refuse("asyncio.events.new_event_loop"))
    yield attempts
    assert attempts == []


@pytest.fixture
async def bridge() -> LoopBridge:
    bridge = LoopBridge(default_timeout=5.0)
    bridge.capture()
    return bridge


async def test_two_hundred_calls_from_twenty_threads_run_on_the_captured_loop(
    bridge: LoopBridge, forbid_new_loops: list[str]
) -> None:
    test_loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    ran_on: list[tuple[asyncio.AbstractEventLoop, int]] = []
    results: dict[int, int] = {}
    caller_threads: set[int] = set()
    errors: list[BaseException] = []

    async def probe(i: int) -> int:
        await asyncio.sleep(0)
        ran_on.append((asyncio.get_running_loop(), threading.get_ident()))
        return i * i

    def worker(n: int) -> None:
        caller_threads.add(threading.get_ident())
        try:
            for k in range(10):
                i = n * 10 + k
                results[i] = bridge.run(probe(i))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,), name=f"bridge-caller-{n}") for n in range(20)]
    for thread in threads:
        thread.start()
    # Join without blocking the loop: the loop must stay free to run the submitted coroutines.
    await asyncio.gather(*(asyncio.to_thread(thread.join, 10) for thread in threads))

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert results == {i: i * i for i in range(200)}
    assert len(ran_on) == 200
    assert {loop for loop, _ in ran_on} == {test_loop}
    assert {ident for _, ident in ran_on} == {loop_thread}
    assert loop_thread not in caller_threads
    assert bridge.loop is test_loop


async def test_exception_of_the_coroutine_reaches_the_calling_thread(bridge: LoopBridge) -> None:
    async def fails() -> None:
        raise LookupError("nope")

    with pytest.raises(LookupError, match="nope"):
        await asyncio.to_thread(bridge.run, fails())


async def test_call_after_close_raises_bridge_closed_and_closes_the_coroutine(bridge: LoopBridge) -> None:
    ran = False

    async def work() -> None:
        nonlocal ran
        ran = True

    bridge.close()
    assert not bridge.is_open
    coroutine = work()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(BridgeClosed):
            await asyncio.to_thread(bridge.run, coroutine)
        assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED
        del coroutine
        gc.collect()
    assert not ran
    assert [w for w in caught if "never awaited" in str(w.message)] == []


async def test_bridge_that_never_captured_a_loop_refuses() -> None:
    bridge = LoopBridge(default_timeout=1.0)
    assert not bridge.is_open

    async def work() -> int:
        return 1

    coroutine = work()
    with pytest.raises(BridgeClosed):
        await asyncio.to_thread(bridge.run, coroutine)
    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED


async def test_recapture_after_close_reopens_the_bridge(bridge: LoopBridge) -> None:
    bridge.close()
    bridge.capture()
    assert bridge.is_open

    async def work() -> str:
        return "ok"

    assert await asyncio.to_thread(bridge.run, work()) == "ok"


async def test_coroutine_exceeding_the_timeout_raises_and_is_cancelled_on_the_loop(
    bridge: LoopBridge, forbid_new_loops: list[str]
) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError):
        await asyncio.to_thread(bridge.run, slow(), 0.05)
    assert started.is_set()
    await asyncio.wait_for(cancelled.wait(), timeout=2)


async def test_default_timeout_applies_when_none_is_given() -> None:
    bridge = LoopBridge(default_timeout=0.05)
    bridge.capture()
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError):
        await asyncio.to_thread(bridge.run, slow())
    await asyncio.wait_for(cancelled.wait(), timeout=2)


async def test_run_from_the_loop_thread_raises_runtime_error_instead_of_deadlocking(bridge: LoopBridge) -> None:
    async def work() -> None:
        return None

    coroutine = work()
    with pytest.raises(RuntimeError, match="own thread"):
        bridge.run(coroutine)
    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED


def _loop_creating_calls(source: str) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            if name in {"new_event_loop", "run_until_complete"} or (owner == "asyncio" and name == "run"):
                found.append(f"{owner}.{name}" if owner else name)
    return found


def test_no_service_code_calls_asyncio_run_or_new_event_loop() -> None:
    offenders = {}
    for path in sorted(APP_DIR.rglob("*.py")):
        relative = path.relative_to(APP_DIR)
        if relative in OUTSIDE_THE_SERVICE:
            continue
        calls = _loop_creating_calls(path.read_text(encoding="utf-8"))
        if calls and calls != LOOP_COUNTING_POLICY.get(relative):
            offenders[str(relative)] = calls
    assert offenders == {}


def test_the_scan_would_notice_a_loop_creating_call() -> None:
    assert _loop_creating_calls("import asyncio\nasyncio.run(main())\nloop = asyncio.new_event_loop()\n") == [
        "asyncio.run",
        "asyncio.new_event_loop",
    ]
