"""The alert rules and the dashboard read what real processes export: names, and the labels they rely on.

Uses the shared scrapes of ``tests.e2e.scrapes`` (an API under uvicorn with two workers in multiprocess
mode, a taskiq worker and a taskiq scheduler, after traffic that touches every metric: registrations
that succeed and fail, a 401, job runs, enqueued ticks). Job metrics are read from the worker's scrape
(the scheduler's for the enqueue counters), everything else from the API's.
"""

from __future__ import annotations

import re

import pytest

from app.domain.jobs.catalogue import CATALOGUE
from tests.deploy_metrics import (
    EXPORTED,
    SCHEDULER_FAMILIES,
    WORKER_FAMILIES,
    alerting_rules,
    deploy_metric_names,
    exported_sample_names,
)
from tests.e2e.scrapes import (
    API,
    METRICS,
    SCHEDULER,
    WORKER,
    Scrapes,
    names_in,
    samples,
    scrape_api_and_worker,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

# Labels the rules and the dashboard group or filter by, per scraped name (read from the process that exports it).
LABELS_USED = {
    "litestar_requests_total": {"method", "path", "status_code"},
    "litestar_request_duration_seconds_bucket": {"le", "method", "path"},
    "taskmarket_http_unauthorized_responses_total": {"route"},
    "taskmarket_registration_failures_total": {"reason"},
    "taskmarket_ws_clients_dropped_total": {"reason"},
    "taskmarket_db_query_duration_seconds_bucket": {"le", "operation"},
    "taskmarket_component_up": {"component"},
    # one series per process in multiprocess mode (the API runs two uvicorn workers here)
    "taskmarket_event_loops_created": {"pid"},
    "taskmarket_process_resident_memory_bytes": {"pid"},
    # `job` is the job's name; Prometheus stores it as `exported_job`
    "taskmarket_job_runs_total": {"job", "outcome"},
    "taskmarket_job_duration_seconds_bucket": {"job", "le"},
    "taskmarket_job_last_success_timestamp_seconds": {"job"},
    "taskmarket_job_enqueued_total": {"job"},
}


def exporter(name: str) -> str:
    family = exported_sample_names()[name]
    if family in SCHEDULER_FAMILIES:
        return SCHEDULER
    if family in WORKER_FAMILIES:
        return WORKER
    return API


def test_the_deploy_contract_lists_the_metrics_the_scrape_test_lists() -> None:
    """tests.deploy_metrics.EXPORTED and tests.e2e.scrapes.METRICS describe the same metrics."""
    as_promql = {family + ("_total" if kind == "counter" else "") for family, kind in EXPORTED.items()}
    assert as_promql == set(METRICS)
    # the families read from the job processes' scrapes are those the API does not export
    job_only = {name.removesuffix("_total") for name, where in METRICS.items() if API not in where}
    assert job_only == WORKER_FAMILIES | SCHEDULER_FAMILIES


async def test_every_metric_of_the_alerts_and_the_dashboard_is_in_a_real_scrape() -> None:
    scrapes: Scrapes = await scrape_api_and_worker()
    scraped = {process: names_in(scrapes.of(process)) for process in (API, WORKER, SCHEDULER)}
    missing = sorted(
        f"{name} ({exporter(name)})" for name in deploy_metric_names() if name not in scraped[exporter(name)]
    )
    assert not missing


async def test_the_labels_the_rules_rely_on_are_in_the_scrapes() -> None:
    scrapes = await scrape_api_and_worker()
    for name, labels in LABELS_USED.items():
        found = samples(scrapes.of(exporter(name)), name)
        assert found, name
        assert all(labels <= set(sample_labels) for sample_labels, _ in found), (name, found[:3])


async def test_the_job_rules_match_the_workers_series() -> None:
    scrapes = await scrape_api_and_worker()
    # TaskmarketJobSlow subtracts the 30 s bucket: it must be a bucket boundary, spelt as the rule spells it
    buckets = {labels["le"] for labels, _ in samples(scrapes.worker, "taskmarket_job_duration_seconds_bucket")}
    slow = next(rule for rule in alerting_rules() if rule["alert"] == "TaskmarketJobSlow")
    (bucket,) = re.findall(r'le="([^"]+)"', slow["expr"])
    assert bucket in buckets
    # the job names the worker reports are the ones the period rule knows
    jobs = {labels["job"] for labels, _ in samples(scrapes.worker, "taskmarket_job_runs_total")}
    assert jobs
    assert jobs <= {job.name for job in CATALOGUE}


async def test_the_heartbeat_components_are_the_ones_the_rules_tell_apart() -> None:
    """TaskmarketJobHeartbeatMissing takes the components ending in _heartbeat; TaskmarketNotReady the rest."""
    scrapes = await scrape_api_and_worker()
    components = {labels["component"] for labels, _ in samples(scrapes.api, "taskmarket_component_up")}
    heartbeats = {component for component in components if re.fullmatch(r".+_heartbeat", component)}
    assert heartbeats == {"scheduler_heartbeat", "worker_heartbeat"}
    assert components - heartbeats == {"database", "redis", "websocket_fanout"}
