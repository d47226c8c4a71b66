"""Prometheus helpers for multiprocess mode (several uvicorn workers share one directory)."""

from __future__ import annotations

import os

from prometheus_client import multiprocess


async def mark_process_dead_if_multiprocess() -> None:
    """Drop this process's live gauges from the shared directory, so a dead worker is not counted."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
