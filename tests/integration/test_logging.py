from __future__ import annotations

import json
import logging

import pytest

from app.infra.db.users import SqlUserRepository
from app.infra.observability.logging import JsonFormatter, RequestIdFilter
from tests.support import bearer, login, make_settings, register, running_app


def _request_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "app.request"]


async def test_expected_401s_are_debug_outside_development_and_others_stay_visible(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_app(make_settings(sqlite_url, log_level="DEBUG")) as (_, client):
        assert (await client.get("/api/users/profile/me")).status_code == 401
        for path in ("/api/secure-auth/refresh", "/api/secure-auth/refresh-token"):
            assert (await client.post(path, json={"refresh_token": "stale"})).status_code == 401
        other = await client.patch("/api/admin/users/00000000-0000-0000-0000-000000000000/role", json={"role": "user"})
        assert other.status_code == 401

    levels = {record.path: record.levelno for record in _request_records(caplog)}  # type: ignore[attr-defined]
    assert levels["/api/users/profile/me"] == logging.DEBUG
    assert levels["/api/secure-auth/refresh"] == logging.DEBUG
    assert levels["/api/secure-auth/refresh-token"] == logging.DEBUG
    assert levels["/api/admin/users/00000000-0000-0000-0000-000000000000/role"] == logging.WARNING


async def test_expected_401s_stay_visible_in_development(sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_app(make_settings(sqlite_url, environment="development", log_level="DEBUG")) as (_, client):
        assert (await client.get("/api/users/profile/me")).status_code == 401
    [record] = _request_records(caplog)
    assert record.levelno == logging.WARNING


async def test_an_unexpected_error_is_a_generic_500_logged_with_its_traceback(
    sqlite_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def explode(*_args: object) -> None:
        raise RuntimeError("internal detail that must not leak")

    monkeypatch.setattr(SqlUserRepository, "get_credentials_by_email", explode)
    async with running_app(make_settings(sqlite_url)) as (_, client):
        response = await client.post("/api/secure-auth/login", json={"email": "a@example.com", "password": "x"})
    assert response.status_code == 500
    assert response.json() == {
        "title": "Internal Server Error",
        "status": 500,
        "code": "internal_error",
        "detail": "An unexpected error occurred.",
    }
    errors = [record for record in caplog.records if record.name == "app.errors"]
    assert errors
    assert errors[0].exc_info is not None
    assert "internal detail that must not leak" in str(errors[0].exc_info[1])


async def test_no_password_or_token_reaches_any_log_line(sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    password = "Sëcret€Pass9"
    async with running_app(make_settings(sqlite_url, log_requests=True, log_level="DEBUG")) as (_, client):
        await register(client, "ada", password)
        tokens = await login(client, "ada", password)
        refreshed = (
            await client.post("/api/secure-auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        ).json()
        await client.get("/api/users/profile/me", headers=bearer(refreshed))
        await client.post("/api/secure-auth/logout", json={"refresh_token": refreshed["refresh_token"]})

    formatter = JsonFormatter()
    request_id_filter = RequestIdFilter()
    lines = []
    for record in caplog.records:
        request_id_filter.filter(record)
        lines.append(formatter.format(record))
    text = "\n".join(lines)
    assert len(_request_records(caplog)) >= 5
    secrets = [password, tokens["access_token"], tokens["refresh_token"], refreshed["access_token"]]
    secrets.append(refreshed["refresh_token"])
    for secret in secrets:
        assert secret not in text


async def test_every_response_carries_a_request_id_and_a_good_incoming_one_is_kept(sqlite_url: str) -> None:
    async with running_app(make_settings(sqlite_url)) as (_, client):
        generated = await client.get("/health")
        assert len(generated.headers["x-request-id"]) == 32
        kept = await client.get("/health", headers={"X-Request-ID": "abc-123"})
        assert kept.headers["x-request-id"] == "abc-123"
        replaced = await client.get("/health", headers={"X-Request-ID": "bad id\nwith newline"})
        assert replaced.headers["x-request-id"] != "bad id\nwith newline"


def test_json_lines_carry_level_logger_message_request_id_and_extras() -> None:
    record = logging.LogRecord("app.request", logging.INFO, __file__, 1, "request", None, None)
    record.request_id = "r-1"
    record.status = 200
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "info"
    assert line["logger"] == "app.request"
    assert line["message"] == "request"
    assert line["request_id"] == "r-1"
    assert line["status"] == 200


async def test_responses_made_outside_the_routes_are_logged_with_their_real_status(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_app(make_settings(sqlite_url)) as (_, client):
        unknown = await client.get("/no/such/path")
        assert unknown.status_code == 404
        assert unknown.headers["x-request-id"]
        unauthenticated = await client.get("/api/admin/users/00000000-0000-0000-0000-000000000000/role")
        assert unauthenticated.headers["x-request-id"]
    statuses = {record.path: record.status for record in _request_records(caplog)}  # type: ignore[attr-defined]
    assert statuses["/no/such/path"] == 404
    assert statuses["/api/admin/users/00000000-0000-0000-0000-000000000000/role"] in {401, 405}
