"""Real scrapes of every kind of process, and the list of every metric name the project exports.

``scrape_api_and_worker()`` starts the whole distributed set-up on a fresh PostgreSQL
database and a private Redis: the API under uvicorn (two workers in Prometheus
multiprocess mode, as deployed), a taskiq worker and a taskiq scheduler (every job
every 2 s, so the worker runs them). It sends the API a little traffic that touches
every metric (a readiness check, registrations that succeed and fail, a 401, a query),
waits until the worker has run jobs and the API's background probes see every component
up, and returns the three ``/metrics`` texts. The
processes are stopped and the database dropped before it returns; the result is
kept, so every test of a session shares one run.

``METRICS`` names every metric the project exports, as PromQL sees it (counters with
``_total``, histograms by their base name), with the processes that export it.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.helpers import PrivateRedis, Service, start_service
from tests.e2e.jobs_support import JobProcess, job_env, start_scheduler, start_worker
from tests.support import fresh_postgres_database

API = "api"
WORKER = "worker"
SCHEDULER = "scheduler"
_EVERY = frozenset({API, WORKER, SCHEDULER})
_DATABASE = frozenset({API, WORKER})

# name -> the processes whose /metrics must show it
METRICS: dict[str, frozenset[str]] = {
    # HTTP: litestar's Prometheus middleware (route templates, status codes)
    "litestar_requests_total": frozenset({API}),
    "litestar_request_duration_seconds": frozenset({API}),
    "litestar_requests_in_progress": frozenset({API}),
    # HTTP, counted from the responses themselves
    "taskmarket_http_unauthorized_responses_total": frozenset({API}),
    "taskmarket_registration_attempts_total": frozenset({API}),
    "taskmarket_registration_failures_total": frozenset({API}),
    # component health (readiness)
    "taskmarket_component_up": frozenset({API}),
    # WebSockets
    "taskmarket_ws_connections_opened_total": frozenset({API}),
    "taskmarket_ws_connections_active": frozenset({API}),
    "taskmarket_ws_messages_received_total": frozenset({API}),
    "taskmarket_ws_messages_sent_total": frozenset({API}),
    "taskmarket_ws_clients_dropped_total": frozenset({API}),
    "taskmarket_ws_fanout_publish_failures_total": frozenset({API}),
    "taskmarket_ws_fanout_resubscriptions_total": frozenset({API}),
    # database
    "taskmarket_db_query_duration_seconds": _DATABASE,
    "taskmarket_db_pool_size": _DATABASE,
    "taskmarket_db_pool_checked_out": _DATABASE,
    "taskmarket_db_pool_overflow": _DATABASE,
    "taskmarket_db_pool_connections": _DATABASE,
    "taskmarket_db_connection_errors_total": _DATABASE,
    # event loop and process
    "taskmarket_event_loops_created": _EVERY,
    "taskmarket_event_loop_lag_seconds": _EVERY,
    "taskmarket_event_loop_lag_last_seconds": _EVERY,
    "taskmarket_event_loop_errors_total": _EVERY,
    "taskmarket_process_resident_memory_bytes": _EVERY,
    "taskmarket_process_open_fds": _EVERY,
    # jobs (in-process mode shows the worker's on the API instead)
    "taskmarket_job_runs_total": frozenset({WORKER}),
    "taskmarket_job_duration_seconds": frozenset({WORKER}),
    "taskmarket_job_in_progress": frozenset({WORKER}),
    "taskmarket_job_last_success_timestamp_seconds": frozenset({WORKER}),
    "taskmarket_job_enqueued_total": frozenset({SCHEDULER}),
    "taskmarket_job_enqueue_failures_total": frozenset({SCHEDULER}),
    "taskmarket_job_ticks_claimed_elsewhere_total": frozenset({SCHEDULER}),
}
# Exported too, but only once what they count has happened (the scrapes above do not provoke it).
CONDITIONAL_METRICS: dict[str, str] = {
    "litestar_requests_error_total": "the API's first 5xx answer",
}


def metric_names() -> set[str]:
    """Every metric name the project exports."""
    return set(METRICS) | set(CONDITIONAL_METRICS)


def names_in(scrape: str) -> set[str]:
    """The names a scrape shows samples of: each sample's own name (``x_total``, ``x_bucket``, ...)
    and the name of its metric family (``x`` of a histogram)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(scrape):
        if family.samples:
            names.add(family.name)
            names.update(sample.name for sample in family.samples)
    return names


def samples(scrape: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample called ``name``."""
    return [
        (dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
        if sample.name == name
    ]


@dataclass(frozen=True)
class Scrapes:
    api: str
    worker: str
    scheduler: str

    def of(self, process: str) -> str:
        texts: dict[str, str] = {API: self.api, WORKER: self.worker, SCHEDULER: self.scheduler}
        return texts[process]

    def names(self) -> set[str]:
        """Every name that any of the three scrapes shows."""
        return names_in(self.api) | names_in(self.worker) | names_in(self.scheduler)


API_WORKERS = 2
START_LIMIT_SECONDS = 60.0
JOB_RUN_LIMIT_SECONDS = 90.0
_cached: Scrapes | None = None


async def scrape_api_and_worker() -> Scrapes:
    """The ``/metrics`` of a real API, worker and scheduler after some traffic (one run per test session)."""
    global _cached  # noqa: PLW0603 - one run of the whole set-up per session
    if _cached is None:
        with tempfile.TemporaryDirectory(prefix="taskmarket-scrapes-") as workdir:
            _cached = await _scrape_everything(Path(workdir))
    return _cached


async def _scrape_everything(workdir: Path) -> Scrapes:
    redis = PrivateRedis(workdir)
    redis.start()
    try:
        with fresh_postgres_database() as database_url:
            multiproc_dir = workdir / "prometheus-multiproc"
            multiproc_dir.mkdir()
            api = start_service(
                database_url,
                workdir / "api.log",
                workers=API_WORKERS,
                extra_env={
                    "REDIS_URL": redis.url,
                    "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir),
                    "HEALTH_PROBE_INTERVAL_SECONDS": "1",
                },
            )
            env = job_env(database_url, redis.url, JOBS_EVERY_SECONDS_OVERRIDE="2")
            jobs: list[JobProcess] = []
            try:
                jobs.append(start_worker(env, workdir / "worker.log"))
                jobs.append(start_scheduler(env, workdir / "scheduler.log"))
                await _send_traffic(api)
                worker, scheduler = jobs
                await worker.wait_log("job worker started")
                await scheduler.wait_log("job scheduler started")
                worker_text = await _wait_for(worker, ("taskmarket_job_last_success_timestamp_seconds",))
                scheduler_text = await _wait_for(scheduler, ("taskmarket_job_enqueued_total",))
                api_text = await _scrape_api_when_all_up(api)
                return Scrapes(api=api_text, worker=worker_text, scheduler=scheduler_text)
            finally:
                for process in jobs:
                    process.stop()
                api.stop()
    finally:
        redis.stop()


async def _send_traffic(api: Service) -> None:
    """Once every worker serves: registrations (one refused), a sign-in, a query, a 401."""
    await api.wait_ready(START_LIMIT_SECONDS)
    deadline = time.monotonic() + START_LIMIT_SECONDS
    while api.log().count("Application startup complete") < API_WORKERS:
        assert time.monotonic() < deadline, f"not every API worker started:\n{api.log()[-5000:]}"
        await asyncio.sleep(0.1)
    async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as client:
        user = {"email": "ada@example.com", "username": "ada", "password": "Secret€Pass9"}
        assert (await client.post("/api/users/register", json=user)).status_code == 201
        weak = {"email": "bob@example.com", "username": "bob", "password": "bob"}
        assert (await client.post("/api/users/register", json=weak)).status_code == 422
        credentials = {"email": user["email"], "password": user["password"]}
        tokens = (await client.post("/api/secure-auth/login", json=credentials)).json()
        signed_in = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert (await client.get("/api/tasks", headers=signed_in)).status_code == 200
        assert (await client.get("/api/tasks")).status_code == 401


async def _scrape_api_when_all_up(api: Service) -> str:
    """The API's scrape once its background probes (every second here) see every component up,
    the job processes' heartbeats included."""
    components = {"database", "redis", "websocket_fanout", "scheduler_heartbeat", "worker_heartbeat"}
    deadline = time.monotonic() + START_LIMIT_SECONDS
    async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as client:
        while True:
            response = await client.get("/metrics")
            assert response.status_code == 200, response.text
            up = {labels["component"] for labels, value in samples(response.text, "taskmarket_component_up") if value}
            if up == components:
                return response.text
            assert time.monotonic() < deadline, f"components up: {sorted(up)}\n{api.log()[-5000:]}"
            await asyncio.sleep(0.5)


async def _wait_for(process: JobProcess, names: Iterable[str]) -> str:
    """The process's scrape, once it shows ``names`` (a job has run, a tick was enqueued)."""
    deadline = time.monotonic() + JOB_RUN_LIMIT_SECONDS
    while True:
        text = ""
        with contextlib.suppress(httpx.TransportError):
            text = await process.metrics()
        if set(names) <= names_in(text):
            return text
        if process.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{sorted(names)} not scraped from the process:\n{process.log()[-5000:]}")
        await asyncio.sleep(0.5)
