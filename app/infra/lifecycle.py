"""One event loop, and an ordered shutdown.

The old backend's worst failures came from threads calling ``asyncio.run()``
on the shared engine ("attached to a different loop") and from disposing pools
after the loop had closed ("Event loop is closed"). Here:

* ``LoopBridge`` captures the running loop at startup; other threads reach
  async code only through it, with a timeout, and it refuses once shutdown began.
* ``Runtime`` owns startup and the shutdown sequence of SPEC section 6.2: every
  step is bounded by a timeout, logged with its duration, and a failing step does
  not stop the ones after it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, TypeVar

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.plugins import InitPlugin

logger = logging.getLogger("app.lifecycle")

T = TypeVar("T")


class BridgeClosed(RuntimeError):
    """The service is shutting down (or not started): no new work is accepted from threads."""


class LoopBridge:
    """Lets code on other threads run a coroutine on the service's one event loop."""

    def __init__(self, default_timeout: float) -> None:
        self._default_timeout = default_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._lock = threading.Lock()

    def capture(self) -> None:
        """Remember the running loop; called once from the startup hook on that loop."""
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._closing = False

    def close(self) -> None:
        """Refuse every later submission."""
        with self._lock:
            self._closing = True

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    @property
    def is_open(self) -> bool:
        return self._loop is not None and not self._closing

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the service loop from another thread and return its result.

        Raises:
            BridgeClosed: the service is shutting down or has not started.
            TimeoutError: the coroutine did not finish in time (it is cancelled).
            RuntimeError: called from the loop's own thread (it would deadlock).
        """
        with self._lock:
            loop = self._loop
            if loop is None or self._closing or loop.is_closed():
                coroutine.close()
                raise BridgeClosed("the service is shutting down; no new work is accepted")
            if loop.is_running() and _running_loop() is loop:
                coroutine.close()
                raise RuntimeError("LoopBridge.run() called on the event loop's own thread; await instead")
            future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return future.result(self._default_timeout if timeout is None else timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError("the coroutine submitted to the event loop timed out") from None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class ShutdownPhase(IntEnum):
    """Shutdown runs phase by phase, in this order (SPEC section 6.2)."""

    MARK_SHUTTING_DOWN = 10
    STOP_SCHEDULER = 20
    CLOSE_WEBSOCKETS = 30
    CANCEL_BACKGROUND_TASKS = 40
    CLOSE_SESSIONS = 50
    DISPOSE_DATABASE = 60
    CLOSE_REDIS = 70
    FLUSH_METRICS = 80


Hook = Callable[[], Awaitable[None]]


@dataclass(order=True)
class _Step:
    phase: ShutdownPhase
    sequence: int
    name: str = field(compare=False)
    action: Hook = field(compare=False)


class Runtime:
    """Owns the service's lifetime: startup hooks, background tasks, and the ordered shutdown."""

    def __init__(self, bridge: LoopBridge, step_timeout: float) -> None:
        self.bridge = bridge
        self._step_timeout = step_timeout
        self._startup: list[tuple[str, Hook]] = []
        self._steps: list[_Step] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._shutting_down = False
        self.on_shutdown(ShutdownPhase.MARK_SHUTTING_DOWN, "close the loop bridge", self._close_bridge)
        self.on_shutdown(ShutdownPhase.CANCEL_BACKGROUND_TASKS, "cancel background tasks", self._cancel_tasks)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def on_startup(self, name: str, action: Hook) -> None:
        """Run ``action`` at startup, after the loop is captured, in registration order."""
        self._startup.append((name, action))

    def on_shutdown(self, phase: ShutdownPhase, name: str, action: Hook) -> None:
        """Run ``action`` in ``phase`` of the shutdown; steps of one phase run in registration order."""
        self._steps.append(_Step(phase, len(self._steps), name, action))

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Start a background task that shutdown cancels and awaits before the database closes."""
        if self._shutting_down:
            coroutine.close()
            raise BridgeClosed(f"cannot start {name!r}: the service is shutting down")
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _close_bridge(self) -> None:
        self.bridge.close()

    async def _cancel_tasks(self) -> None:
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await _await_cancelled_tasks()

    async def start(self) -> None:
        self.bridge.capture()
        self._shutting_down = False
        for name, action in self._startup:
            started = time.perf_counter()
            await action()
            logger.info("startup step done", extra={"step": name, "duration_ms": _ms_since(started)})

    async def shutdown(self) -> None:
        self._shutting_down = True
        began = time.perf_counter()
        for step in sorted(self._steps):
            await self._run_step(step)
        logger.info("shutdown complete", extra={"duration_ms": _ms_since(began)})

    async def _run_step(self, step: _Step) -> None:
        """Run one step bounded by the step timeout; log its outcome and duration, never raise."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._step_timeout):
                await step.action()
        except TimeoutError:
            logger.error(  # noqa: TRY400 - a timeout has no useful traceback
                "shutdown step timed out",
                extra=_step_extra(step, started, timeout_s=self._step_timeout),
            )
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the shutdown itself is being cancelled
            # The step awaited something that was cancelled (a background task it
            # stopped, say): that is the step's failure, not a reason to skip the rest.
            logger.error("shutdown step failed", extra=_step_extra(step, started, reason="cancelled"))  # noqa: TRY400
        except Exception:
            logger.exception("shutdown step failed", extra=_step_extra(step, started))
        else:
            logger.info("shutdown step done", extra=_step_extra(step, started))

    @asynccontextmanager
    async def lifespan(self, _app: Litestar) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.shutdown()


async def _await_cancelled_tasks() -> None:
    """Wait until every task of the loop that someone cancelled has unwound (the step timeout bounds it).

    When the graceful timeout runs out, uvicorn cancels the request tasks still
    running and starts the lifespan shutdown *without awaiting them*. Until they
    have unwound, their sessions are in mid-operation (a cancelled query on a
    database that does not answer spends up to two seconds closing its
    connection): closing them from the "close database sessions" step then fails
    ("connection is closed", ``IllegalStateChangeError``), and the pool may be
    disposed under a connection still checked out.
    """
    current = asyncio.current_task()
    cancelled = [task for task in asyncio.all_tasks() if task is not current and not task.done() and task.cancelling()]
    if cancelled:
        await asyncio.wait(cancelled)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _step_extra(step: _Step, started: float, **more: Any) -> dict[str, Any]:
    return {"step": step.name, "phase": step.phase.name, "duration_ms": _ms_since(started), **more}


class RuntimePlugin(InitPlugin):
    """Puts the runtime's lifespan on the app.

    List it *after* ``SQLAlchemyInitPlugin``: lifespans exit in reverse order, so
    ours (which closes sessions and disposes the engine) runs while the database
    plugin's lifespan is still open.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.lifespan.append(self.runtime.lifespan)
        return app_config
