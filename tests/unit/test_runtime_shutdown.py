"""SPEC 6.2: ordered shutdown, each step bounded by a timeout and logged with its duration."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import pytest

from app.infra.lifecycle import BridgeClosed, LoopBridge, Runtime, ShutdownPhase

LOGGER = "app.lifecycle"
OWN_STEPS = {"close the loop bridge", "cancel background tasks"}


async def make_runtime(step_timeout: float = 1.0) -> Runtime:
    runtime = Runtime(LoopBridge(default_timeout=1.0), step_timeout=step_timeout)
    await runtime.start()
    return runtime


def recorder(log: list[str], name: str) -> Callable[[], Awaitable[None]]:
    async def step() -> None:
        log.append(name)

    return step


def step_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.getMessage().startswith("shutdown step")]


async def test_steps_run_in_phase_order_regardless_of_registration_order() -> None:
    runtime = await make_runtime()
    ran: list[str] = []
    runtime.on_shutdown(ShutdownPhase.FLUSH_METRICS, "flush", recorder(ran, "flush"))
    runtime.on_shutdown(ShutdownPhase.CLOSE_REDIS, "redis", recorder(ran, "redis"))
    runtime.on_shutdown(ShutdownPhase.DISPOSE_DATABASE, "dispose", recorder(ran, "dispose"))
    runtime.on_shutdown(ShutdownPhase.CLOSE_SESSIONS, "sessions-a", recorder(ran, "sessions-a"))
    runtime.on_shutdown(ShutdownPhase.CLOSE_SESSIONS, "sessions-b", recorder(ran, "sessions-b"))
    runtime.on_shutdown(ShutdownPhase.CLOSE_WEBSOCKETS, "websockets", recorder(ran, "websockets"))
    runtime.on_shutdown(ShutdownPhase.STOP_SCHEDULER, "scheduler", recorder(ran, "scheduler"))
    runtime.on_shutdown(ShutdownPhase.MARK_SHUTTING_DOWN, "mark", recorder(ran, "mark"))

    await runtime.shutdown()

    # Within one phase, registration order holds.
    assert ran == ["mark", "scheduler", "websockets", "sessions-a", "sessions-b", "dispose", "redis", "flush"]


def test_phases_follow_the_spec_order() -> None:
    assert list(ShutdownPhase) == sorted(ShutdownPhase)
    assert [p.name for p in ShutdownPhase] == [
        "MARK_SHUTTING_DOWN",
        "STOP_SCHEDULER",
        "CLOSE_WEBSOCKETS",
        "CANCEL_BACKGROUND_TASKS",
        "CLOSE_SESSIONS",
        "DISPOSE_DATABASE",
        "CLOSE_REDIS",
        "FLUSH_METRICS",
    ]


async def test_failing_step_is_logged_and_later_steps_still_run(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    runtime = await make_runtime()
    ran: list[str] = []

    async def broken() -> None:
        raise ValueError("boom")

    runtime.on_shutdown(ShutdownPhase.STOP_SCHEDULER, "broken scheduler", broken)
    runtime.on_shutdown(ShutdownPhase.DISPOSE_DATABASE, "dispose", recorder(ran, "dispose"))
    runtime.on_shutdown(ShutdownPhase.CLOSE_REDIS, "redis", recorder(ran, "redis"))

    await runtime.shutdown()

    assert ran == ["dispose", "redis"]
    failed = [r for r in step_records(caplog) if r.getMessage() == "shutdown step failed"]
    assert len(failed) == 1
    assert failed[0].levelno == logging.ERROR
    assert failed[0].step == "broken scheduler"  # type: ignore[attr-defined]
    assert failed[0].exc_info is not None
    assert isinstance(failed[0].exc_info[1], ValueError)


async def test_step_raising_cancelled_error_does_not_abort_the_shutdown(caplog: pytest.LogCaptureFixture) -> None:
    """A step that awaits a task it cancelled sees CancelledError; the database must still be disposed."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    runtime = await make_runtime()
    ran: list[str] = []
    listener = asyncio.get_running_loop().create_task(asyncio.sleep(30))

    async def stop_listener() -> None:
        listener.cancel()
        await listener  # raises CancelledError: the listener was cancelled, not the shutdown

    runtime.on_shutdown(ShutdownPhase.STOP_SCHEDULER, "stop listener", stop_listener)
    runtime.on_shutdown(ShutdownPhase.DISPOSE_DATABASE, "dispose", recorder(ran, "dispose"))

    await runtime.shutdown()

    assert ran == ["dispose"]
    failed = [r for r in step_records(caplog) if r.getMessage() == "shutdown step failed"]
    assert [r.step for r in failed] == ["stop listener"]  # type: ignore[attr-defined]


async def test_cancelling_the_shutdown_itself_still_propagates() -> None:
    runtime = await make_runtime(step_timeout=5.0)
    entered = asyncio.Event()

    async def hangs() -> None:
        entered.set()
        await asyncio.Event().wait()

    runtime.on_shutdown(ShutdownPhase.STOP_SCHEDULER, "hangs", hangs)
    shutdown = asyncio.get_running_loop().create_task(runtime.shutdown())
    await asyncio.wait_for(entered.wait(), timeout=1)
    shutdown.cancel()
    with pytest.raises(asyncio.CancelledError):
        await shutdown


async def test_hanging_step_is_cut_at_the_step_timeout_and_later_steps_run(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    runtime = await make_runtime(step_timeout=0.05)
    ran: list[str] = []
    hang_cancelled = asyncio.Event()

    async def hangs() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            hang_cancelled.set()
            raise

    runtime.on_shutdown(ShutdownPhase.STOP_SCHEDULER, "stuck scheduler", hangs)
    runtime.on_shutdown(ShutdownPhase.DISPOSE_DATABASE, "dispose", recorder(ran, "dispose"))

    started = time.perf_counter()
    await runtime.shutdown()
    elapsed = time.perf_counter() - started

    assert ran == ["dispose"]
    assert hang_cancelled.is_set()
    assert elapsed < 1.0
    timed_out = [r for r in step_records(caplog) if r.getMessage() == "shutdown step timed out"]
    assert [r.step for r in timed_out] == ["stuck scheduler"]  # type: ignore[attr-defined]
    assert timed_out[0].levelno == logging.ERROR
    assert timed_out[0].timeout_s == 0.05  # type: ignore[attr-defined]
    assert timed_out[0].duration_ms >= 40  # type: ignore[attr-defined]


async def test_background_tasks_are_cancelled_and_awaited_before_sessions_and_database_close() -> None:
    runtime = await make_runtime()
    events: list[str] = []
    running = asyncio.Event()

    async def background_loop(name: str) -> None:
        running.set()
        try:
            while True:
                await asyncio.sleep(0.01)
        finally:
            # Cleanup that itself awaits: it must finish before the sessions close.
            await asyncio.sleep(0.005)
            events.append(f"{name} cleaned up")

    tasks = [runtime.spawn(background_loop(f"job{i}"), name=f"job{i}") for i in range(3)]
    await asyncio.wait_for(running.wait(), timeout=1)

    async def close_sessions() -> None:
        events.append("sessions closed" if all(t.done() for t in tasks) else "sessions closed while tasks ran")

    async def dispose() -> None:
        events.append("database disposed")

    runtime.on_shutdown(ShutdownPhase.DISPOSE_DATABASE, "dispose", dispose)
    runtime.on_shutdown(ShutdownPhase.CLOSE_SESSIONS, "sessions", close_sessions)

    await runtime.shutdown()

    assert sorted(events[:3]) == ["job0 cleaned up", "job1 cleaned up", "job2 cleaned up"]
    assert events[3:] == ["sessions closed", "database disposed"]
    assert all(task.cancelled() for task in tasks)


async def test_bridge_and_spawn_refuse_work_once_shutdown_started() -> None:
    runtime = await make_runtime()
    outcomes: dict[str, object] = {}

    async def work() -> str:
        return "ran"

    # Before shutdown, a thread gets through.
    assert await asyncio.to_thread(runtime.bridge.run, work()) == "ran"

    async def scheduler_step() -> None:
        outcomes["shutting_down"] = runtime.shutting_down
        try:
            await asyncio.to_thread(runtime.bridge.run, work())
        except BridgeClosed as exc:
            outcomes["bridge"] = exc
        try:
            runtime.spawn(work(), name="late")
        except BridgeClosed as exc:
            outcomes["spawn"] = exc

    runtime.on_shutdown(ShutdownPhase.STOP_SCHEDULER, "scheduler", scheduler_step)
    await runtime.shutdown()

    assert outcomes["shutting_down"] is True
    assert isinstance(outcomes["bridge"], BridgeClosed)
    assert isinstance(outcomes["spawn"], BridgeClosed)
    assert not runtime.bridge.is_open


async def test_every_step_is_logged_with_its_duration(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    runtime = await make_runtime(step_timeout=0.05)

    async def slow() -> None:
        await asyncio.sleep(0.02)

    async def broken() -> None:
        raise RuntimeError("boom")

    async def hangs() -> None:
        await asyncio.Event().wait()

    runtime.on_shutdown(ShutdownPhase.CLOSE_SESSIONS, "slow sessions", slow)
    runtime.on_shutdown(ShutdownPhase.DISPOSE_DATABASE, "broken dispose", broken)
    runtime.on_shutdown(ShutdownPhase.CLOSE_REDIS, "hung redis", hangs)

    await runtime.shutdown()

    records = step_records(caplog)
    logged = {r.step: r for r in records}  # type: ignore[attr-defined]
    assert len(records) == len(logged)  # one line per step
    assert set(logged) == OWN_STEPS | {"slow sessions", "broken dispose", "hung redis"}
    for record in records:
        assert isinstance(record.duration_ms, float)  # type: ignore[attr-defined]
        assert record.duration_ms >= 0  # type: ignore[attr-defined]
        assert record.phase in ShutdownPhase.__members__  # type: ignore[attr-defined]
    assert logged["slow sessions"].getMessage() == "shutdown step done"
    assert logged["slow sessions"].duration_ms >= 15  # type: ignore[attr-defined]
    assert logged["broken dispose"].getMessage() == "shutdown step failed"
    assert logged["hung redis"].getMessage() == "shutdown step timed out"
    complete = [r for r in caplog.records if r.getMessage() == "shutdown complete"]
    assert len(complete) == 1
    assert complete[0].duration_ms >= 15  # type: ignore[attr-defined]


async def test_startup_captures_the_running_loop_and_runs_hooks_in_order() -> None:
    runtime = Runtime(LoopBridge(default_timeout=1.0), step_timeout=1.0)
    ran: list[str] = []
    runtime.on_startup("first", recorder(ran, "first"))
    runtime.on_startup("second", recorder(ran, "second"))

    await runtime.start()

    assert ran == ["first", "second"]
    assert runtime.bridge.loop is asyncio.get_running_loop()
    assert runtime.bridge.is_open
    assert not runtime.shutting_down
    await runtime.shutdown()
