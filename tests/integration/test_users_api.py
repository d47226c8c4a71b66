from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support import bearer, login, make_settings, register, running_app


async def test_rejected_password_lists_every_broken_rule(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        response = await client.post(
            "/api/users/register", json={"email": "ada@example.com", "username": "ada", "password": "ada"}
        )
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert body["code"] == "validation_failed"
        codes = {error["code"] for error in body["errors"] if error["field"] == "password"}
        assert codes == {"too_short", "missing_digit", "missing_special", "contains_username", "contains_email"}
        assert all(error["message"] for error in body["errors"])


@pytest.mark.parametrize(
    "password", ["Pässwörd€2024", "yen¥Secret99", "pound£Secret99", "密码安全測試9€", "Пароль—2024секрет"]
)
async def test_unicode_passwords_register_and_log_in(sqlite_url: str, password: str) -> None:
    async with running_app(make_settings(sqlite_url)) as (_, client):
        username = f"u{abs(hash(password)) % 10**8}"
        await register(client, username, password)
        tokens = await login(client, username, password)
        assert tokens["access_token"]


async def test_invalid_email_and_username_are_reported_with_the_password_rules(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        response = await client.post(
            "/api/users/register", json={"email": "not-an-email", "username": "a b", "password": "short"}
        )
        assert response.status_code == 422
        fields = {error["field"] for error in response.json()["errors"]}
        assert fields == {"email", "username", "password"}


async def test_taken_email_or_username_is_409(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        await register(client, "ada")
        same_email = await client.post(
            "/api/users/register",
            json={"email": "ADA@example.com", "username": "other", "password": "Secret€Pass9"},
        )
        assert same_email.status_code == 409
        assert same_email.json()["code"] == "email_taken"
        same_username = await client.post(
            "/api/users/register",
            json={"email": "other@example.com", "username": "ADA", "password": "Secret€Pass9"},
        )
        assert same_username.status_code == 409
        assert same_username.json()["code"] == "username_taken"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": 1, "username": "ada", "password": "Secret€Pass9"}, "email"),
        ({"username": "ada", "password": "Secret€Pass9"}, "email"),
        ({"email": "a@example.com", "username": "ada", "password": "Secret€Pass9", "admin": True}, "admin"),
    ],
)
async def test_malformed_bodies_are_400_naming_the_field(sqlite_url: str, body: dict[str, object], field: str) -> None:
    async with running_app(make_settings(sqlite_url)) as (_, client):
        response = await client.post("/api/users/register", json=body)
        assert response.status_code == 400
        problem = response.json()
        assert problem["code"] == "invalid_request"
        assert field in {error["field"] for error in problem["errors"]} or field in problem["detail"]


async def test_invalid_json_is_400_without_internals(sqlite_url: str) -> None:
    async with running_app(make_settings(sqlite_url)) as (_, client):
        response = await client.post(
            "/api/users/register", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert "Traceback" not in response.text
        assert response.json()["code"] == "invalid_request"


async def test_unknown_email_and_wrong_password_get_the_same_answer(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        await register(client, "ada")
        wrong_password = await client.post(
            "/api/secure-auth/login", json={"email": "ada@example.com", "password": "Wrong€Pass9"}
        )
        unknown_email = await client.post(
            "/api/secure-auth/login", json={"email": "nobody@example.com", "password": "Wrong€Pass9"}
        )
        assert wrong_password.status_code == unknown_email.status_code == 401
        assert wrong_password.json() == unknown_email.json()


async def test_profile_update_and_public_profile_hides_private_fields(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        ada = await register(client, "ada")
        await register(client, "bob")
        tokens = await login(client, "ada")
        updated = await client.patch(
            "/api/users/profile/me", json={"display_name": "Ada L.", "bio": "maths"}, headers=bearer(tokens)
        )
        assert updated.status_code == 200
        assert updated.json()["display_name"] == "Ada L."

        taken = await client.patch("/api/users/profile/me", json={"username": "BOB"}, headers=bearer(tokens))
        assert taken.status_code == 409

        public = await client.get(f"/api/users/{ada['id']}")
        assert public.status_code == 200
        assert public.json()["display_name"] == "Ada L."
        assert "email" not in public.json()
        assert (await client.get("/api/users/00000000-0000-0000-0000-000000000000")).status_code == 404
        assert (await client.get("/api/users/not-a-uuid")).status_code in {400, 404}


async def test_change_password_applies_the_policy_and_signs_out_every_session(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        await register(client, "ada")
        tokens = await login(client, "ada")
        weak = await client.post(
            "/api/users/profile/me/password",
            json={"current_password": "Secret€Pass9", "new_password": "password"},
            headers=bearer(tokens),
        )
        assert weak.status_code == 422
        assert {e["field"] for e in weak.json()["errors"]} == {"new_password"}

        wrong_current = await client.post(
            "/api/users/profile/me/password",
            json={"current_password": "Nope€Pass9", "new_password": "Brand¥New2024"},
            headers=bearer(tokens),
        )
        assert wrong_current.status_code == 422

        changed = await client.post(
            "/api/users/profile/me/password",
            json={"current_password": "Secret€Pass9", "new_password": "Brand¥New2024"},
            headers=bearer(tokens),
        )
        assert changed.status_code == 204
        refresh = await client.post("/api/secure-auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert refresh.status_code == 401
        await login(client, "ada", "Brand¥New2024")


async def test_login_rehashes_the_password_when_argon2_parameters_change(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        await register(client, "ada")
    async with running_app(make_settings(database_url, argon2_time_cost=2)) as (_, client):
        await login(client, "ada")
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            stored = (await connection.execute(text("SELECT password_hash FROM users"))).scalar_one()
    finally:
        await engine.dispose()
    assert stored.startswith("$argon2id$")
    assert ",t=2," in stored


async def test_logout_revokes_the_refresh_family(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        await register(client, "ada")
        tokens = await login(client, "ada")
        assert (
            await client.post("/api/secure-auth/logout", json={"refresh_token": tokens["refresh_token"]})
        ).status_code == 204
        refresh = await client.post("/api/secure-auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert refresh.status_code == 401
        # idempotent, and silent about tokens it does not know
        assert (await client.post("/api/secure-auth/logout", json={"refresh_token": "unknown"})).status_code == 204
