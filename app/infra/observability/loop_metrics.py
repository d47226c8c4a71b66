"""The event loop, watched: how many a process made, how late it runs, what errors reach it.

* ``taskmarket_event_loops_created``: every loop this process made or ran. A
  delegating event-loop policy, installed at process start (``count_event_loops``),
  counts the loops made through ``asyncio.new_event_loop()`` and ``asyncio.run()``;
  the monitor also counts the loop it runs on (uvicorn and taskiq make theirs with a
  loop factory, before the app is built). A healthy process shows 1; a stray
  ``asyncio.run()`` shows 2. One series per process (``liveall``).
* ``taskmarket_event_loop_lag_seconds``: how much later than asked a short sleep
  wakes up, sampled every ``interval`` (the loop was busy or blocked that long).
* ``taskmarket_event_loop_errors_total``: exceptions that reached the loop's
  exception handler ("Task exception was never retrieved", a failing callback);
  counted, then handled as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from app.infra.observability.db_metrics import refresh_pool_metrics
from app.infra.observability.process_metrics import refresh_process_metrics

LOOPS_CREATED = Gauge(
    "taskmarket_event_loops_created",
    "Event loops created in this process (1 when healthy)",
    multiprocess_mode="liveall",
)
LOOP_LAG = Histogram(
    "taskmarket_event_loop_lag_seconds",
    "How late the event loop woke a periodic probe (time it was busy or blocked)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LOOP_LAG_LAST = Gauge(
    "taskmarket_event_loop_lag_last_seconds",
    "Event-loop lag of the latest probe (the largest over the processes of an instance)",
    multiprocess_mode="livemax",
)
LOOP_ERRORS = Counter("taskmarket_event_loop_errors", "Exceptions that reached the event loop's exception handler")

ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]

_seen: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
_lock = threading.Lock()


def note_event_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Count ``loop`` once (by identity) among this process's loops."""
    with _lock:
        if loop in _seen:
            return
        _seen.add(loop)
    LOOPS_CREATED.inc()


class _CountingPolicy(asyncio.AbstractEventLoopPolicy):
    """The process's event-loop policy, unchanged except that every loop it hands out is counted."""

    def __init__(self, inner: asyncio.AbstractEventLoopPolicy) -> None:
        self.inner = inner

    def get_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = self.inner.get_event_loop()  # may make one (no loop set yet)
        note_event_loop(loop)
        return loop

    def set_event_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.inner.set_event_loop(loop)

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = self.inner.new_event_loop()
        note_event_loop(loop)
        return loop

    # Python 3.11's abstract child-watcher methods (deprecated since 3.12)
    def get_child_watcher(self) -> Any:
        return self.inner.get_child_watcher()  # type: ignore[attr-defined,unused-ignore]

    def set_child_watcher(self, watcher: Any) -> None:
        self.inner.set_child_watcher(watcher)  # type: ignore[attr-defined,unused-ignore]

    def __getattr__(self, name: str) -> Any:  # whatever else the inner policy offers
        return getattr(self.inner, name)


def count_event_loops() -> None:
    """Install the counting policy (once per process) and count the loop running now, if any."""
    with _lock:
        policy = asyncio.get_event_loop_policy()
        if not isinstance(policy, _CountingPolicy):
            asyncio.set_event_loop_policy(_CountingPolicy(policy))
    with contextlib.suppress(RuntimeError):
        note_event_loop(asyncio.get_running_loop())


class _CountingHandler:
    """Counts each exception that reaches the loop, then hands it to the handler that was there before."""

    def __init__(self, previous: ExceptionHandler | None) -> None:
        self.previous = previous

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        LOOP_ERRORS.inc()
        if self.previous is None:
            loop.default_exception_handler(context)
        else:
            self.previous(loop, context)


def count_loop_errors(loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Count the exceptions reaching ``loop``'s handler; returns what undoes it (none if already counted)."""
    current = loop.get_exception_handler()
    if isinstance(current, _CountingHandler):
        return lambda: None
    handler = _CountingHandler(current)
    loop.set_exception_handler(handler)

    def restore() -> None:
        if loop.get_exception_handler() is handler:
            loop.set_exception_handler(current)

    return restore


class LoopMonitor:
    """Started on the process's loop: counts it, counts its errors, and samples lag and process figures.

    Every ``interval`` seconds it sleeps and measures the overshoot (the lag) and
    refreshes the database pool gauges; every ``process_every`` probes it refreshes
    the process gauges (memory, descriptors).
    ``stop`` belongs in the ordered shutdown (background work is stopped before the
    pools close).
    """

    def __init__(self, interval: float = 0.5, process_every: int = 10) -> None:
        self._interval = interval
        self._process_every = process_every
        self._task: asyncio.Task[None] | None = None
        self._restore: Callable[[], None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        count_event_loops()
        self._restore = count_loop_errors(loop)
        refresh_process_metrics()
        self._task = loop.create_task(self._probe(), name="event-loop monitor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        restore, self._restore = self._restore, None
        if restore is not None:
            restore()

    async def _probe(self) -> None:
        probes = 0
        while True:
            # perf_counter, not loop.time(): uvloop's clock has millisecond steps and is read once per turn
            started = time.perf_counter()
            await asyncio.sleep(self._interval)
            lag = max(time.perf_counter() - started - self._interval, 0.0)
            LOOP_LAG.observe(lag)
            LOOP_LAG_LAST.set(lag)
            refresh_pool_metrics()
            probes += 1
            if probes % self._process_every == 0:
                refresh_process_metrics()
