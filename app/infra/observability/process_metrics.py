"""The process's memory and file descriptors, per process also in multiprocess mode.

prometheus_client's standard process collector (``process_resident_memory_bytes``, ...)
is left out of a multiprocess scrape (it reads the scraping process only), so each
process copies the figures it needs into gauges that keep one series per process
(``liveall``: a ``pid`` label in multiprocess mode; a process that exits cleanly is
dropped). The event-loop monitor refreshes them periodically; the same names exist in
every mode and in every kind of process (API, job worker, job scheduler).
"""

from __future__ import annotations

from prometheus_client import Gauge, ProcessCollector

RESIDENT_MEMORY = Gauge(
    "taskmarket_process_resident_memory_bytes", "Resident memory of this process", multiprocess_mode="liveall"
)
OPEN_FDS = Gauge("taskmarket_process_open_fds", "Open file descriptors of this process", multiprocess_mode="liveall")

# Reads /proc/self (Linux); elsewhere it reports nothing and the gauges stay at 0.
_READER = ProcessCollector(registry=None)
_TARGETS = {"process_resident_memory_bytes": RESIDENT_MEMORY, "process_open_fds": OPEN_FDS}


def refresh_process_metrics() -> None:
    """Copy this process's current figures into the gauges."""
    for family in _READER.collect():
        gauge = _TARGETS.get(family.name)
        if gauge is not None and family.samples:
            gauge.set(family.samples[0].value)
