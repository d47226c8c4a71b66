from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import F3_FRAGMENTS, PrivateRedis, Service, ServiceFactory, forbidden_lines, start_service
from tests.e2e.jobs_support import JobProcess
from tests.support import fresh_postgres_database


@pytest.fixture(scope="module")
def e2e_database_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test module (dropped afterwards)."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[ServiceFactory]:
    """Starts services whose output goes to ``tmp_path``; every one is stopped at the end of the test.

    The log of every service is also checked for the F3 lines after it stopped (tests check the rest).
    """
    started: list[Service] = []

    def start(database_url: str, **options: Any) -> Service:
        service = start_service(database_url, tmp_path / f"service-{len(started)}.log", **options)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
    bad = {str(service.log_path): forbidden_lines(service.log(), F3_FRAGMENTS) for service in started}
    bad = {path: lines for path, lines in bad.items() if lines}
    assert not bad, f"forbidden lines in service logs: {bad}"


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of the test's own, stopped at the end (the test may stop and start it meanwhile)."""
    redis = PrivateRedis(tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


@pytest.fixture
def database_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test (dropped afterwards)."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def processes() -> Iterator[list[JobProcess]]:
    """Job processes a test started: each is stopped at the end."""
    started: list[JobProcess] = []
    yield started
    for process in started:
        process.stop()
