"""``litestar users create-admin``, run as an operator would, against SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from app.infra.db.tables import UserRecord
from tests.support import bearer, litestar_cli, login, make_settings, register, running_app

STRONG_PASSWORD = "Secret€Pass9"


def create_admin(database_url: str, email: str, username: str, password: str) -> tuple[int, str]:
    result = litestar_cli(
        "users",
        "create-admin",
        "--email",
        email,
        "--username",
        username,
        "--password",
        password,
        database_url=database_url,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


async def count_users(database_url: str) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(select(func.count()).select_from(UserRecord))).scalar_one()
    finally:
        await engine.dispose()


async def test_create_admin_creates_an_account_that_logs_in_as_admin(database_url: str) -> None:
    returncode, output = create_admin(database_url, "Root@Example.com", "root", STRONG_PASSWORD)

    assert returncode == 0, output
    assert re.search(r"created admin root \([0-9a-f-]{36}\)", output), output
    assert STRONG_PASSWORD not in output
    async with running_app(make_settings(database_url)) as (_, client):
        tokens = await login(client, "root", STRONG_PASSWORD)  # the email was normalised to lower case
        profile = await client.get("/api/users/profile/me", headers=bearer(tokens))
        assert profile.status_code == 200, profile.text
        assert profile.json()["role"] == "admin"
        assert profile.json()["username"] == "root"
        # the role is real: an admin-only endpoint accepts the token
        bob = await register(client, "bob", STRONG_PASSWORD)
        changed = await client.patch(
            f"/api/admin/users/{bob['id']}/role", json={"role": "expert"}, headers=bearer(tokens)
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["role"] == "expert"


@pytest.mark.parametrize(
    ("password", "broken_rules"),
    [
        ("abc", {"too_short", "missing_digit", "missing_special"}),
        ("grace123!x", {"contains_username", "contains_email"}),
    ],
)
async def test_create_admin_refuses_a_weak_password_naming_every_broken_rule(
    database_url: str, password: str, broken_rules: set[str]
) -> None:
    returncode, output = create_admin(database_url, "grace@example.com", "grace", password)

    assert returncode != 0, output
    for rule in broken_rules:
        assert rule in output, output
    assert "Traceback" not in output
    assert await count_users(database_url) == 0


async def test_create_admin_refuses_a_duplicate_email(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        await register(client, "ada", STRONG_PASSWORD)  # an ordinary user, ada@example.com

    # same address, other case, other username: must not create a second account nor promote the first
    returncode, output = create_admin(database_url, "ADA@example.com", "ada_admin", STRONG_PASSWORD)
    assert returncode != 0, output
    assert "already registered" in output, output
    assert "Traceback" not in output
    assert await count_users(database_url) == 1

    returncode, output = create_admin(database_url, "root@example.com", "root", STRONG_PASSWORD)
    assert returncode == 0, output
    returncode, output = create_admin(database_url, "root@example.com", "root2", STRONG_PASSWORD)
    assert returncode != 0, output
    assert "already registered" in output, output
    assert await count_users(database_url) == 2

    async with running_app(make_settings(database_url)) as (_, client):
        tokens = await login(client, "ada", STRONG_PASSWORD)
        profile = await client.get("/api/users/profile/me", headers=bearer(tokens))
        assert profile.json()["role"] == "user"


@pytest.mark.parametrize(
    "database",
    ["unmigrated-sqlite", "refused-postgres"],
)
async def test_create_admin_reports_a_database_failure_without_a_traceback(database: str, tmp_path: Path) -> None:
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}"
        if database == "unmigrated-sqlite"
        else "postgresql+asyncpg://postgres@127.0.0.1:1/x"
    )
    returncode, output = create_admin(url, "root@example.com", "root", STRONG_PASSWORD)

    assert returncode != 0, output
    assert "Database error" in output, output
    assert "Traceback" not in output
    # the failed INSERT's parameters (the password hash among them) are not echoed
    assert "$argon2" not in output
    assert "INSERT" not in output
