from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support import bearer, login, make_settings, register, running_app, set_role

SECRET = "test-secret-that-is-long-enough-0123456789"
SETTINGS = {"jwt_secret": SECRET, "jwt_issuer": "taskmarket", "jwt_audience": "taskmarket-api"}


def _claims(user_id: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": user_id,
        "iat": now,
        "exp": now + 600,
        "iss": "taskmarket",
        "aud": "taskmarket-api",
        "role": "admin",
    }
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


def _unsigned(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda uid: _unsigned(_claims(uid)), id="alg-none"),
        pytest.param(
            lambda uid: jwt.encode(_claims(uid), "another-key-" + "x" * 32, algorithm="HS256"), id="wrong-key"
        ),
        pytest.param(
            lambda uid: jwt.encode(_claims(uid, exp=int(time.time()) - 5), SECRET, algorithm="HS256"), id="expired"
        ),
        pytest.param(
            lambda uid: jwt.encode(_claims(uid, aud="someone-else"), SECRET, algorithm="HS256"), id="wrong-aud"
        ),
        pytest.param(
            lambda uid: jwt.encode(_claims(uid, iss="someone-else"), SECRET, algorithm="HS256"), id="wrong-iss"
        ),
        pytest.param(lambda uid: jwt.encode(_claims(uid, iat=None), SECRET, algorithm="HS256"), id="no-iat"),
        pytest.param(lambda uid: jwt.encode(_claims(uid, exp=None), SECRET, algorithm="HS256"), id="no-exp"),
        pytest.param(lambda uid: jwt.encode(_claims(uid), SECRET, algorithm="HS512"), id="other-alg"),
        pytest.param(lambda uid: jwt.encode(_claims("not-a-uuid"), SECRET, algorithm="HS256"), id="bad-sub"),
        pytest.param(lambda uid: "garbage", id="garbage"),
    ],
)
async def test_forged_or_stale_access_tokens_are_refused(sqlite_url: str, forge: Any) -> None:
    async with running_app(make_settings(sqlite_url, **SETTINGS)) as (_, client):
        ada = await register(client, "ada")
        response = await client.get("/api/users/profile/me", headers={"Authorization": f"Bearer {forge(ada['id'])}"})
        assert response.status_code == 401
        assert response.json()["code"] == "unauthenticated"


async def test_a_correctly_signed_token_is_accepted(sqlite_url: str) -> None:
    async with running_app(make_settings(sqlite_url, **SETTINGS)) as (_, client):
        ada = await register(client, "ada")
        token = jwt.encode(_claims(ada["id"]), SECRET, algorithm="HS256")
        response = await client.get("/api/users/profile/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        # the role comes from the database, not from the token's claim
        assert response.json()["role"] == "user"


async def test_only_admins_change_roles(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        await register(client, "root")
        bob = await register(client, "bob")
        await set_role(database_url, "root", "admin")
        admin = await login(client, "root")
        user = await login(client, "bob")

        forbidden = await client.patch(
            f"/api/admin/users/{bob['id']}/role", json={"role": "admin"}, headers=bearer(user)
        )
        assert forbidden.status_code == 403
        assert forbidden.json()["code"] == "forbidden"

        anonymous = await client.patch(f"/api/admin/users/{bob['id']}/role", json={"role": "admin"})
        assert anonymous.status_code == 401

        promoted = await client.patch(
            f"/api/admin/users/{bob['id']}/role", json={"role": "agent"}, headers=bearer(admin)
        )
        assert promoted.status_code == 200
        assert promoted.json()["role"] == "agent"
        me = await client.get("/api/users/profile/me", headers=bearer(user))
        assert me.json()["role"] == "agent"

        bad_role = await client.patch(
            f"/api/admin/users/{bob['id']}/role", json={"role": "king"}, headers=bearer(admin)
        )
        assert bad_role.status_code == 400
        assert bad_role.json()["errors"][0]["field"] == "role"

        missing = await client.patch(
            "/api/admin/users/00000000-0000-0000-0000-000000000000/role", json={"role": "user"}, headers=bearer(admin)
        )
        assert missing.status_code == 404


async def test_a_deactivated_users_tokens_stop_working(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        await register(client, "ada")
        tokens = await login(client, "ada")
        engine = create_async_engine(database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("UPDATE users SET is_active = false"))
        finally:
            await engine.dispose()
        assert (await client.get("/api/users/profile/me", headers=bearer(tokens))).status_code == 401
        refresh = await client.post("/api/secure-auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert refresh.status_code == 401
