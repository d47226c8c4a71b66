"""Each application metric moves for its reason: statements, the pool, connection errors, 401s,
registrations, component health; and traffic to many ids never adds series."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Column, Integer, MetaData, Table, Text, delete, insert, select, text, update
from sqlalchemy.exc import OperationalError

from app.infra.db.config import database_config
from app.infra.db.users import ActiveUserLoader
from app.infra.observability.db_metrics import refresh_pool_metrics
from app.infra.observability.health_metrics import COMPONENT_UP
from app.main import COMPONENT_METRIC_NAMES
from tests.support import (
    REDIS_URL,
    asyncpg_url,
    bearer,
    login,
    make_settings,
    redis_available,
    register,
    running_app,
)

REFUSED_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:1/x"
REFUSED_REDIS_URL = "redis://127.0.0.1:1/0"
FAST_FAILURES: dict[str, Any] = {
    "health_check_timeout_seconds": 1.0,
    "database_connect_timeout_seconds": 1.0,
    "redis_timeout_seconds": 1.0,
}
OPERATIONS = ("select", "insert", "update", "delete", "other")


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def statement_counts() -> dict[str, float]:
    return {op: sample("taskmarket_db_query_duration_seconds_count", operation=op) for op in OPERATIONS}


def grown(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {op: after[op] - before[op] for op in OPERATIONS if after[op] != before[op]}


# --- statements ----------------------------------------------------------------------------------


async def test_each_statement_is_timed_under_its_operation(database_url: str) -> None:
    engine = database_config(make_settings(database_url)).get_engine()
    probe = Table("metrics_probe", MetaData(), Column("id", Integer, primary_key=True), Column("note", Text))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(probe.create)
            try:
                before = statement_counts()
                await connection.execute(insert(probe).values(id=1, note="a"))
                assert grown(before, statement_counts()) == {"insert": 1}

                before = statement_counts()
                await connection.execute(select(probe.c.note).where(probe.c.id == 1))
                assert grown(before, statement_counts()) == {"select": 1}

                # an UPDATE behind a WITH is still an update (SQLAlchemy says so, not the first word)
                chosen = select(probe.c.id).where(probe.c.note == "a").cte("chosen")
                before = statement_counts()
                await connection.execute(update(probe).where(probe.c.id.in_(select(chosen.c.id))).values(note="b"))
                assert grown(before, statement_counts()) == {"update": 1}

                before = statement_counts()
                await connection.execute(delete(probe).where(probe.c.id == 1))
                assert grown(before, statement_counts()) == {"delete": 1}

                before = statement_counts()
                await connection.execute(text("SELECT count(*) FROM metrics_probe"))
                assert grown(before, statement_counts()) == {"select": 1}
            finally:
                await connection.run_sync(probe.drop)
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_reads_on_the_driver_connection_are_timed_as_selects(pg_url: str) -> None:
    engine = database_config(make_settings(pg_url)).get_engine()
    try:
        async with engine.connect() as connection:  # the first connect's own statements are not measured below
            await connection.execute(text("SELECT 1"))
        loader = ActiveUserLoader(engine, 1.0)
        before = statement_counts()
        assert await loader(uuid.uuid4()) is None
        assert grown(before, statement_counts()) == {"select": 1}
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_the_task_board_on_the_driver_is_timed(pg_url: str) -> None:
    async with running_app(make_settings(pg_url)) as (_, client):
        await register(client, "ada")
        ada = bearer(await login(client, "ada"))
        await client.get("/api/tasks", headers=ada)  # warm: the statements are compiled once
        before = statement_counts()
        response = await client.get("/api/tasks?status=open&limit=5", headers=ada)
        assert response.status_code == 200, response.text
        # the caller's row and the page (its count is known from a short page): both on the driver
        assert grown(before, statement_counts()) == {"select": 2}


# --- the pool and connection errors ----------------------------------------------------------------


async def test_pool_gauges_follow_checkouts(database_url: str) -> None:
    before = {name: sample(f"taskmarket_db_pool_{name}") for name in ("size", "checked_out", "connections")}
    settings = make_settings(database_url)
    engine = database_config(settings).get_engine()
    size = 5 if settings.is_sqlite else settings.database_pool_size  # SQLAlchemy's default size for SQLite files
    try:
        refresh_pool_metrics()  # what the event-loop monitor does twice a second
        assert sample("taskmarket_db_pool_size") == before["size"] + size
        async with engine.connect() as first, engine.connect() as second:
            await first.execute(text("SELECT 1"))
            await second.execute(text("SELECT 1"))
            refresh_pool_metrics()  # what the event-loop monitor does twice a second
            assert sample("taskmarket_db_pool_checked_out") == before["checked_out"] + 2
            assert sample("taskmarket_db_pool_connections") == before["connections"] + 2
            assert sample("taskmarket_db_pool_overflow") == 0
        refresh_pool_metrics()  # what the event-loop monitor does twice a second
        assert sample("taskmarket_db_pool_checked_out") == before["checked_out"]
        assert sample("taskmarket_db_pool_connections") == before["connections"] + 2  # idle in the pool
    finally:
        await engine.dispose()
    refresh_pool_metrics()  # what the event-loop monitor does twice a second
    assert {name: sample(f"taskmarket_db_pool_{name}") for name in before} == before


@pytest.mark.postgres
async def test_pool_overflow_counts_connections_above_the_size(pg_url: str) -> None:
    engine = database_config(make_settings(pg_url, database_pool_size=1, database_max_overflow=2)).get_engine()
    try:
        async with engine.connect() as first, engine.connect() as second:
            await first.execute(text("SELECT 1"))
            await second.execute(text("SELECT 1"))
            refresh_pool_metrics()  # what the event-loop monitor does twice a second
            assert sample("taskmarket_db_pool_overflow") == 1
    finally:
        await engine.dispose()
    refresh_pool_metrics()  # what the event-loop monitor does twice a second
    assert sample("taskmarket_db_pool_overflow") == 0


async def test_a_refused_connect_is_a_connection_error() -> None:
    engine = database_config(make_settings(REFUSED_DATABASE_URL, **FAST_FAILURES)).get_engine()
    before = sample("taskmarket_db_connection_errors_total")
    try:
        with pytest.raises(OperationalError):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        assert sample("taskmarket_db_connection_errors_total") == before + 1
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_connection_the_server_dropped_is_a_connection_error(pg_url: str) -> None:
    engine = database_config(make_settings(pg_url)).get_engine()
    admin = await asyncpg.connect(asyncpg_url(pg_url))
    try:
        async with engine.connect() as connection:
            backend = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await admin.execute("SELECT pg_terminate_backend($1)", backend)
        before = sample("taskmarket_db_connection_errors_total")
        async with engine.connect() as connection:  # the pool finds the dead one and replaces it
            assert (await connection.execute(text("SELECT 1"))).scalar_one() == 1
        assert sample("taskmarket_db_connection_errors_total") == before + 1
    finally:
        await admin.close()
        await engine.dispose()


# --- 401s and registrations -----------------------------------------------------------------------


def unauthorized(route: str) -> float:
    return sample("taskmarket_http_unauthorized_responses_total", route=route)


def litestar_requests(path: str, status: str) -> float:
    return sum(
        sample("litestar_requests_total", app_name="taskmarket", method=method, path=path, status_code=status)
        for method in ("GET", "POST")
    )


async def test_401s_are_counted_by_route_template(sqlite_url: str) -> None:
    async with running_app(make_settings(sqlite_url)) as (_, client):
        task_route = "/api/tasks/{task_id}"
        before_task, before_login = unauthorized(task_route), unauthorized("/api/secure-auth/login")
        litestar_before = litestar_requests(task_route, "401")
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            response = await client.get(f"/api/tasks/{uuid.uuid4()}", headers=headers)
            assert response.status_code == 401
        refused = await client.post("/api/secure-auth/login", json={"email": "no@example.com", "password": "x"})
        assert refused.status_code == 401

        # the JWT middleware's 401s (no or bad token) as much as the handlers' (a wrong password)
        assert unauthorized(task_route) == before_task + 2
        assert unauthorized("/api/secure-auth/login") == before_login + 1
        # litestar's own request counter never sees the middleware's 401s (the 401-share alert adds ours)
        assert litestar_requests(task_route, "401") == litestar_before


async def test_registration_attempts_and_failures_by_reason(sqlite_url: str) -> None:
    async with running_app(make_settings(sqlite_url)) as (_, client):
        reasons = ("validation_failed", "invitation_not_found", "invalid_request", "email_taken")
        before = {reason: sample("taskmarket_registration_failures_total", reason=reason) for reason in reasons}
        attempts = sample("taskmarket_registration_attempts_total")

        await register(client, "ada")
        weak = {"email": "bob@example.com", "username": "bob", "password": "bob"}
        assert (await client.post("/api/users/register", json=weak)).status_code == 422
        bad_code = {
            "email": "bob@example.com",
            "username": "bob",
            "password": "Secret€Pass9",
            "invitation_code": "NOPE",
        }
        assert (await client.post("/api/users/register", json=bad_code)).status_code == 422
        assert (await client.post("/api/users/register", json={"username": "bob"})).status_code == 400
        taken = {"email": "ada@example.com", "username": "ada2", "password": "Secret€Pass9"}
        assert (await client.post("/api/users/register", json=taken)).status_code == 409

        assert sample("taskmarket_registration_attempts_total") == attempts + 5
        after = {reason: sample("taskmarket_registration_failures_total", reason=reason) for reason in reasons}
        assert {reason: after[reason] - before[reason] for reason in reasons} == dict.fromkeys(reasons, 1.0)


# --- component health -----------------------------------------------------------------------------


def component_up(component: str) -> float | None:
    return REGISTRY.get_sample_value("taskmarket_component_up", {"component": component})


def gauges_of(readiness: httpx.Response) -> dict[str, float]:
    """What ``taskmarket_component_up`` must say for each component of a readiness answer."""
    components: dict[str, dict[str, Any]] = readiness.json()["components"]
    return {
        COMPONENT_METRIC_NAMES.get(name, name): 1.0 if component["status"] == "up" else 0.0
        for name, component in components.items()
    }


async def test_component_gauge_matches_readiness_with_the_database_down() -> None:
    async with running_app(make_settings(REFUSED_DATABASE_URL, **FAST_FAILURES)) as (_, client):
        response = await client.get("/health/ready")
        assert response.status_code == 503
        assert gauges_of(response) == {"database": 0.0}
        assert component_up("database") == 0.0


async def test_component_gauge_matches_readiness_with_the_database_up(sqlite_url: str) -> None:
    async with running_app(make_settings(sqlite_url, **FAST_FAILURES)) as (_, client):
        response = await client.get("/health/ready")
        assert response.status_code == 200
        assert gauges_of(response) == {"database": 1.0}
        assert component_up("database") == 1.0


async def test_component_gauge_names_every_component_when_redis_is_down(sqlite_url: str) -> None:
    async with running_app(make_settings(sqlite_url, redis_url=REFUSED_REDIS_URL, **FAST_FAILURES)) as (_, client):
        response = await client.get("/health/ready")
        expected = gauges_of(response)
        assert expected == {
            "database": 1.0,
            "redis": 0.0,
            "websocket_fanout": 0.0,
            "scheduler_heartbeat": 0.0,
            "worker_heartbeat": 0.0,
        }
        assert {component: component_up(component) for component in expected} == expected


@pytest.mark.redis
async def test_a_stale_heartbeat_is_not_up(sqlite_url: str) -> None:
    await (await redis_available()).aclose()
    async with running_app(make_settings(sqlite_url, redis_url=REDIS_URL, **FAST_FAILURES)) as (_, client):
        response = await client.get("/health/ready")
        assert response.status_code == 200  # degraded heartbeats keep the API ready...
        expected = gauges_of(response)
        assert expected["scheduler_heartbeat"] == 0.0  # ...but are not up
        assert expected["redis"] == 1.0
        assert {component: component_up(component) for component in expected} == expected


async def test_the_background_probe_keeps_the_gauge_current_without_readiness_calls(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, health_probe_interval_seconds=0.1, **FAST_FAILURES)
    async with running_app(settings):
        COMPONENT_UP.labels("database").set(-1)  # a value no probe writes
        for _ in range(50):
            if component_up("database") == 1.0:
                break
            await asyncio.sleep(0.05)
        assert component_up("database") == 1.0

    settings = make_settings(REFUSED_DATABASE_URL, health_probe_interval_seconds=0.1, **FAST_FAILURES)
    async with running_app(settings):
        for _ in range(50):
            if component_up("database") == 0.0:
                break
            await asyncio.sleep(0.05)
        assert component_up("database") == 0.0


# --- the event loop -------------------------------------------------------------------------------


async def test_a_second_event_loop_in_the_service_process_shows(sqlite_url: str) -> None:
    async with running_app(make_settings(sqlite_url)) as (_, client):
        before = sample("taskmarket_event_loops_created")
        assert (await client.get("/health")).status_code == 200
        assert sample("taskmarket_event_loops_created") == before  # serving makes no loop

        def stray() -> None:  # the old incident: a thread running async code on a loop of its own
            asyncio.run(asyncio.sleep(0))

        await asyncio.to_thread(stray)
        assert sample("taskmarket_event_loops_created") == before + 1


# --- cardinality ----------------------------------------------------------------------------------


def series(scrape: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
    }


async def test_traffic_to_many_ids_adds_no_series(sqlite_url: str) -> None:
    async with running_app(make_settings(sqlite_url)) as (_, client):
        await register(client, "ada")
        ada = bearer(await login(client, "ada"))

        async def traffic(ids: list[uuid.UUID]) -> None:
            for one in ids:
                await client.get(f"/api/tasks/{one}", headers=ada)  # 404, signed in
                await client.get(f"/api/tasks/{one}")  # 401, no token
                await client.get(f"/api/tasks/{one}", headers={"Authorization": f"Bearer {one}"})  # 401, bad token
                await client.post(f"/api/tasks/{one}/take", headers=ada)  # 404
                await client.get(f"/no/such/{one}")  # matches no route
                await client.get(f"/api/users/{one}", headers=ada)  # 404 with a path parameter
                await client.get(f"/api/tasks/not-a-uuid-{one.hex[:8]}", headers=ada)  # a malformed id

        await traffic([uuid.uuid4()])  # every kind of answer once: its series exist now
        first = await client.get("/metrics")
        many = [uuid.uuid4() for _ in range(200)]
        await traffic(many)
        second = await client.get("/metrics")

    grown_series = series(second.text) - series(first.text)
    assert not grown_series, sorted(grown_series)[:20]
    assert len(series(second.text)) == len(series(first.text))
    assert not any(str(one) in second.text or one.hex in second.text for one in many)
