"""Every metric the project exports is in a real scrape of the process that exports it."""

from __future__ import annotations

import pytest

from tests.e2e.scrapes import API, API_WORKERS, METRICS, SCHEDULER, WORKER, names_in, samples, scrape_api_and_worker

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]


async def test_every_metric_name_is_in_a_real_scrape() -> None:
    scrapes = await scrape_api_and_worker()
    missing = {
        process: sorted(name for name, where in METRICS.items() if process in where and name not in names)
        for process in (API, WORKER, SCHEDULER)
        if (names := names_in(scrapes.of(process)))
    }
    assert set(missing) == {API, WORKER, SCHEDULER}, "a scrape came back empty"
    assert missing == {API: [], WORKER: [], SCHEDULER: []}


async def test_each_process_runs_one_event_loop_and_reports_its_memory() -> None:
    scrapes = await scrape_api_and_worker()
    for process, count in ((API, API_WORKERS), (WORKER, 1), (SCHEDULER, 1)):
        text = scrapes.of(process)
        loops = samples(text, "taskmarket_event_loops_created")
        assert [value for _, value in loops] == [1.0] * count, (process, loops)
        memory = samples(text, "taskmarket_process_resident_memory_bytes")
        assert len(memory) == count, (process, memory)
        assert all(value > 10_000_000 for _, value in memory), (process, memory)
    # the API's workers are told apart (multiprocess mode keeps one series per process)
    assert len({labels["pid"] for labels, _ in samples(scrapes.api, "taskmarket_event_loops_created")}) == API_WORKERS


async def test_the_api_reports_one_value_per_component() -> None:
    scrapes = await scrape_api_and_worker()
    # both workers probe in the background; the instance shows one series per component (livemin)
    components = [labels["component"] for labels, _ in samples(scrapes.api, "taskmarket_component_up")]
    assert sorted(components) == [
        "database",
        "redis",
        "scheduler_heartbeat",
        "websocket_fanout",
        "worker_heartbeat",
    ]
