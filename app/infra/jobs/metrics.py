"""Job metrics (our own, not taskiq's bundled middleware, which flips the whole process into multiprocess mode).

Process-global, like every prometheus_client metric: the API's ``/metrics``
shows them in in-process mode; workers and schedulers serve them on their own
port (``JOBS_METRICS_PORT``).
"""

from __future__ import annotations

import logging
import multiprocessing
import re

from prometheus_client import Counter, Gauge, Histogram, start_http_server

logger = logging.getLogger("app.jobs")

RUNS = Counter(
    "taskmarket_job_runs", "Job runs by job and outcome (success, error, timeout, skipped)", ["job", "outcome"]
)
DURATION = Histogram(
    "taskmarket_job_duration_seconds",
    "Duration of job runs (skipped runs excluded)",
    ["job"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
IN_PROGRESS = Gauge("taskmarket_job_in_progress", "Job runs in progress", ["job"], multiprocess_mode="livesum")
LAST_SUCCESS = Gauge(
    "taskmarket_job_last_success_timestamp_seconds",
    "Unix time the job last finished successfully",
    ["job"],
    multiprocess_mode="max",
)
ENQUEUED = Counter("taskmarket_job_enqueued", "Job ticks the scheduler enqueued", ["job"])
ENQUEUE_FAILURES = Counter(
    "taskmarket_job_enqueue_failures", "Job ticks the scheduler could not enqueue (error or timeout)", ["job"]
)
TICKS_ALREADY_CLAIMED = Counter(
    "taskmarket_job_ticks_claimed_elsewhere", "Ticks not enqueued because another scheduler replica did", ["job"]
)

_WORKER_NAME = re.compile(r"^worker-(\d+)$")


def serve_metrics(port: int) -> int | None:
    """Serve ``/metrics`` on ``port`` (+ N in the N-th child of ``taskiq worker --workers``); 0 turns it off.

    Returns the port bound, or None. A port already taken is logged, not fatal:
    the jobs matter more than their metrics.
    """
    if port == 0:
        return None
    match = _WORKER_NAME.match(multiprocessing.current_process().name)
    bound = port + (int(match.group(1)) if match else 0)
    try:
        start_http_server(bound, addr="0.0.0.0")  # noqa: S104 - scraped from outside the container
    except OSError as error:
        logger.warning("job metrics not served", extra={"port": bound, "error": str(error)})
        return None
    logger.info("job metrics served", extra={"port": bound})
    return bound
