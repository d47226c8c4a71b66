"""Garbage-collector settings of an API process, for steady latency.

With Python's default thresholds (700, 10, 10) a process holding thousands of WebSockets runs a full
(generation 2) collection every second or two while it broadcasts: each broadcast allocates a task per
socket, enough of them are still alive at a young collection to be promoted, and a full collection walks
every object of the process (50 to 300 ms with a few thousand sockets, measured with ``bench/ws.py``): a
pause every socket and request waits for. The default ``GC_THRESHOLDS`` (2000, 10, 100) make full
collections ten times rarer and young ones somewhat rarer; a large middle threshold (50 and more) was worse,
its generation-1 collections grew to 200 ms. Freezing the heap left by start-up (imports, the app, its
routes) keeps those objects out of every later collection. Cyclic garbage is still collected, in larger,
rarer batches.
"""

from __future__ import annotations

import gc


def set_collector_thresholds(thresholds: tuple[int, int, int] | None) -> None:
    """Apply ``GC_THRESHOLDS`` (``None``: keep Python's defaults)."""
    if thresholds is not None:
        gc.set_threshold(*thresholds)


_frozen = False


async def freeze_startup_heap() -> None:
    """Collect once, then move every object alive now to the permanent generation (a start-up step, before
    the first request: the collection takes a few hundred milliseconds on a full application).

    Once per process: frozen objects are never collected again, so an app built a second time in the same
    process (tests do) must not freeze its predecessor's garbage as well.
    """
    global _frozen  # noqa: PLW0603 - one flag per process, by design
    if _frozen:
        return
    _frozen = True
    gc.collect()
    gc.freeze()
