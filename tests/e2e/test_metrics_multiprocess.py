"""Prometheus in multiprocess mode: two uvicorn workers, one scrape reports the requests of both,
the sum of their database pools, and each one's event loops and memory."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import ServiceFactory, admin_connection, app_backend_pids
from tests.e2e.scrapes import samples

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

WORKERS = 2
POOL_SIZE = 10  # DATABASE_POOL_SIZE's default
BURST = 20
MAX_BURSTS = 10

# litestar's PrometheusMiddleware: "<prefix>_requests_total", prefix "litestar", labelled by route (group_path=True)
_HEALTH_TOTAL = re.compile(
    r'^litestar_requests_total\{(?=[^}]*path="/health")(?=[^}]*method="GET")(?=[^}]*status_code="200")[^}]*\}'
    r" (?P<value>[0-9.e+]+)$",
    re.MULTILINE,
)


def _health_total(scrape: str) -> float:
    values = [float(match["value"]) for match in _HEALTH_TOTAL.finditer(scrape)]
    assert len(values) <= 1, f"one series expected for GET /health 200 (multiprocess collector sums), got {values}"
    return values[0] if values else 0.0


async def _scrape(base_url: str) -> str:
    # a fresh connection per scrape: any worker may answer
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return response.text


async def test_one_scrape_counts_the_requests_of_every_worker(
    e2e_database_url: str, service_factory: ServiceFactory, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "prometheus-multiproc"
    metrics_dir.mkdir()
    service = service_factory(
        e2e_database_url,
        workers=WORKERS,
        graceful_timeout=5,
        # no background readiness probes: the pool's connections below are counted while nothing else runs
        extra_env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "HEALTH_PROBE_INTERVAL_SECONDS": "0"},
    )
    await service.wait_ready()
    deadline = time.monotonic() + 20
    while service.log().count("Application startup complete") < WORKERS and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert service.log().count("Application startup complete") == WORKERS, service.log()

    baseline = _health_total(await _scrape(service.base_url))  # wait_ready's probes are counted too

    # bursts of fresh connections until both workers have served some (bounded); each burst is counted exactly
    sent = 0
    limits = httpx.Limits(max_connections=BURST, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=service.base_url, timeout=5, limits=limits) as client:
        for _ in range(MAX_BURSTS):
            replies = await asyncio.gather(*(client.get("/health") for _ in range(BURST)))
            assert [r.status_code for r in replies] == [200] * BURST
            sent += BURST
            if len(list(metrics_dir.glob("counter_*.db"))) >= WORKERS:
                break
    counting_processes = sorted(path.name for path in metrics_dir.glob("counter_*.db"))
    assert len(counting_processes) == WORKERS, f"requests did not reach every worker: {counting_processes}"

    # every scrape, whichever worker answers it, reports the sum over both processes
    scrapes = await asyncio.gather(*(_scrape(service.base_url) for _ in range(6)))
    totals = {_health_total(scrape) - baseline for scrape in scrapes}
    assert totals == {float(sent)}, f"sent {sent} requests, scrapes report {totals}"
    assert "/metrics" not in "".join(line for line in scrapes[0].splitlines() if line.startswith("litestar_"))

    # per process, one series each: one event loop, its memory
    scrape = scrapes[0]
    loops = {labels["pid"]: value for labels, value in samples(scrape, "taskmarket_event_loops_created")}
    assert list(loops.values()) == [1.0] * WORKERS, loops
    memory = {labels["pid"]: value for labels, value in samples(scrape, "taskmarket_process_resident_memory_bytes")}
    assert set(memory) == set(loops), (memory, loops)
    assert all(value > 10_000_000 for value in memory.values()), memory

    # per instance, the sum of the workers' pools: configured size, and connections open = what the database sees
    async with httpx.AsyncClient(base_url=service.base_url, timeout=5, limits=limits) as client:
        replies = await asyncio.gather(*(client.get("/health/ready") for _ in range(BURST)))
        assert {r.status_code for r in replies} == {200}
    admin = await admin_connection(e2e_database_url)
    try:
        # the gauges follow within the monitor's period (0.5 s); the server forgets a closed backend soon after
        deadline = time.monotonic() + 5
        while True:
            scrape = await _scrape(service.base_url)
            checked_out = [value for _, value in samples(scrape, "taskmarket_db_pool_checked_out")]
            connections = [value for _, value in samples(scrape, "taskmarket_db_pool_connections")]
            backends = len(await app_backend_pids(admin, e2e_database_url))
            if (checked_out, connections) == ([0.0], [float(backends)]) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    assert backends >= 1
    assert (checked_out, connections) == ([0.0], [float(backends)])
    assert [value for _, value in samples(scrape, "taskmarket_db_pool_size")] == [float(WORKERS * POOL_SIZE)]

    service.send_signal(signal.SIGTERM)
    assert await service.wait_exit(15) in {0, -signal.SIGTERM, 128 + signal.SIGTERM}, service.log()
    # at worker exit mark_process_dead drops the live gauges (pool sums, loop counts, memory, ...)
    assert not list(metrics_dir.glob("gauge_live*.db")), sorted(p.name for p in metrics_dir.iterdir())
