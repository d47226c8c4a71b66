"""The metrics of the event loop, of statements, of readiness and of registration answers, without I/O."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from prometheus_client import REGISTRY

from app.infra.observability.db_metrics import operation_of
from app.infra.observability.health_metrics import ComponentProbe, recording_probes
from app.infra.observability.http_metrics import failure_reason
from app.infra.observability.loop_metrics import LoopMonitor, count_event_loops, count_loop_errors


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    ("statement", "operation"),
    [
        ("SELECT users.id FROM users WHERE users.id = $1", "select"),
        ("select 1", "select"),
        ("\n  SELECT 1", "select"),
        ("(SELECT 1) UNION ALL (SELECT 2)", "select"),
        ("WITH due AS (SELECT id FROM tasks) SELECT * FROM due", "select"),
        ("INSERT INTO users (id) VALUES ($1)", "insert"),
        ("UPDATE tasks SET status = $1", "update"),
        ("delete from notifications where id = ?", "delete"),
        ("BEGIN", "other"),
        ("PRAGMA foreign_keys=ON", "other"),
        ("SAVEPOINT sa_savepoint_1", "other"),
        ("", "other"),
    ],
)
def test_statements_are_classified_by_their_first_word(statement: str, operation: str) -> None:
    assert operation_of(statement) == operation


def test_a_new_event_loop_in_the_process_is_counted() -> None:
    count_event_loops()
    before = sample("taskmarket_event_loops_created")
    loop = asyncio.new_event_loop()
    loop.close()
    assert sample("taskmarket_event_loops_created") == before + 1

    async def stray() -> None:
        count_event_loops()  # counting the running loop again does not count it twice

    asyncio.run(stray())
    assert sample("taskmarket_event_loops_created") == before + 2


def test_the_running_loop_is_counted_once() -> None:
    async def main() -> tuple[float, float]:
        first = sample("taskmarket_event_loops_created")
        count_event_loops()
        count_event_loops()
        return first, sample("taskmarket_event_loops_created")

    loop = asyncio.SelectorEventLoop()  # made without the policy, like uvicorn's and taskiq's loops
    try:
        first, after = loop.run_until_complete(main())
    finally:
        loop.close()
    assert after == first + 1


def test_an_exception_reaching_the_loop_is_counted_and_still_handled() -> None:
    seen: list[dict[str, Any]] = []
    loop = asyncio.new_event_loop()
    try:
        loop.set_exception_handler(lambda _loop, context: seen.append(context))
        restore = count_loop_errors(loop)
        assert count_loop_errors(loop)() is None  # a second call neither wraps again nor undoes the first
        before = sample("taskmarket_event_loop_errors_total")

        def broken() -> None:
            raise RuntimeError("boom")

        loop.call_soon(broken)
        loop.run_until_complete(asyncio.sleep(0.01))
        assert sample("taskmarket_event_loop_errors_total") == before + 1
        assert [type(context["exception"]) for context in seen] == [RuntimeError]

        restore()
        loop.call_exception_handler({"message": "after restore"})
        assert sample("taskmarket_event_loop_errors_total") == before + 1
        assert len(seen) == 2
    finally:
        loop.close()


async def test_a_blocked_loop_shows_as_lag() -> None:
    monitor = LoopMonitor(interval=0.02, process_every=1)
    count_before = sample("taskmarket_event_loop_lag_seconds_count")
    sum_before = sample("taskmarket_event_loop_lag_seconds_sum")
    await monitor.start()
    try:
        await asyncio.sleep(0.01)
        time.sleep(0.2)  # blocks the loop, as a synchronous call on the request path would
        await asyncio.sleep(0.1)
    finally:
        await monitor.stop()
    assert sample("taskmarket_event_loop_lag_seconds_count") > count_before
    assert sample("taskmarket_event_loop_lag_seconds_sum") - sum_before >= 0.15
    assert sample("taskmarket_process_resident_memory_bytes") > 0
    assert sample("taskmarket_process_open_fds") > 0
    assert asyncio.get_running_loop().get_exception_handler() is None  # stop() put the default back


async def test_component_gauge_follows_each_probe() -> None:
    state: dict[str, str] = {"database": "up", "job_workers": "up"}

    def probe(name: str) -> Any:
        async def check() -> str | None:
            if state[name] == "down":
                raise ConnectionError(name)
            return "no worker heartbeat" if state[name] == "degraded" else None

        return check

    probes = recording_probes({name: probe(name) for name in state}, {"job_workers": "worker_heartbeat"})
    components = ComponentProbe(probes, interval=3600)
    await components.probe_once()
    assert sample("taskmarket_component_up", component="database") == 1
    assert sample("taskmarket_component_up", component="worker_heartbeat") == 1

    state.update(database="down", job_workers="degraded")
    await components.probe_once()
    assert sample("taskmarket_component_up", component="database") == 0
    assert sample("taskmarket_component_up", component="worker_heartbeat") == 0
    with pytest.raises(ConnectionError):
        await probes["database"]()  # readiness still sees the failure itself

    state.update(database="up")
    assert await probes["database"]() is None
    assert sample("taskmarket_component_up", component="database") == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"code": "validation_failed", "errors": [{"code": "too_short", "field": "password"}]}', "validation_failed"),
        (
            b'{"code": "validation_failed", "errors": [{"code": "invitation_expired", "field": "invitation_code"}]}',
            "invitation_expired",
        ),
        (b'{"code": "email_taken", "errors": []}', "email_taken"),
        (b'{"code": "invalid_request"}', "invalid_request"),
        (b'{"code": "not a code!"}', "other"),
        (b'{"code": "' + b"x" * 200 + b'"}', "other"),
        (b"<html>bad gateway</html>", "http_502"),
        (b"[]", "http_502"),
        (b"{}", "http_502"),
    ],
)
def test_registration_failure_reason_is_the_answered_code(body: bytes, reason: str) -> None:
    assert failure_reason(body, 502) == reason
