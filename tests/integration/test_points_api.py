from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.support import bearer, login, make_settings, register, running_app, set_role


async def _admin_and_user(client: httpx.AsyncClient, database_url: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    await register(client, "root")
    user = await register(client, "ada")
    await set_role(database_url, "root", "admin")
    return await login(client, "root"), await login(client, "ada"), user["id"]


async def test_admin_grant_shows_in_balance_expiring_soon_and_ledger(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        admin, user, user_id = await _admin_and_user(client, database_url)
        grant = {"user_id": user_id, "amount": 120, "reason": "welcome", "idempotency_key": "g-1"}
        assert (await client.post("/api/admin/points/grant", json=grant, headers=bearer(admin))).status_code == 200
        short = {**grant, "amount": 30, "idempotency_key": "g-2", "expires_in_days": 7}
        assert (await client.post("/api/admin/points/grant", json=short, headers=bearer(admin))).status_code == 200

        me = (await client.get("/api/points/me", headers=bearer(user))).json()
        assert me["balance"] == 150
        assert me["expiring_soon"] == 30

        page = (await client.get("/api/points/me/transactions?limit=1", headers=bearer(user))).json()
        assert page["total"] == 2
        assert page["limit"] == 1
        assert [item["amount"] for item in page["items"]] == [30]  # newest first
        grants = (await client.get("/api/points/me/transactions?kind=grant&kind=spend", headers=bearer(user))).json()
        assert grants["total"] == 2
        none = (await client.get("/api/points/me/transactions?kind=expire", headers=bearer(user))).json()
        assert none == {"items": [], "total": 0, "limit": 20, "offset": 0}
        # the admin's own ledger is empty: /me is always the caller's
        assert (await client.get("/api/points/me", headers=bearer(admin))).json()["balance"] == 0


async def test_grant_is_idempotent_by_key_and_refuses_a_different_request(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        admin, user, user_id = await _admin_and_user(client, database_url)
        grant = {"user_id": user_id, "amount": 50, "reason": "bonus", "idempotency_key": "same"}
        first = await client.post("/api/admin/points/grant", json=grant, headers=bearer(admin))
        again = await client.post("/api/admin/points/grant", json=grant, headers=bearer(admin))
        assert first.json() == again.json()
        different = await client.post("/api/admin/points/grant", json={**grant, "amount": 51}, headers=bearer(admin))
        assert different.status_code == 409
        assert different.json()["code"] == "idempotency_key_reused"
        assert (await client.get("/api/points/me", headers=bearer(user))).json()["balance"] == 50


async def test_grant_is_for_admins_and_known_users_with_valid_amounts(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        admin, user, user_id = await _admin_and_user(client, database_url)
        grant = {"user_id": user_id, "amount": 5, "reason": "x", "idempotency_key": "k"}
        assert (await client.post("/api/admin/points/grant", json=grant, headers=bearer(user))).status_code == 403
        assert (await client.post("/api/admin/points/grant", json=grant)).status_code == 401
        unknown = {**grant, "user_id": "00000000-0000-0000-0000-000000000000"}
        missing = await client.post("/api/admin/points/grant", json=unknown, headers=bearer(admin))
        assert missing.status_code == 404
        for amount in (0, -5, 10**12, 2.5, "lots"):
            bad = await client.post("/api/admin/points/grant", json={**grant, "amount": amount}, headers=bearer(admin))
            assert bad.status_code == 400, amount
            assert bad.json()["errors"][0]["field"] == "amount"
        bad_kind = await client.get("/api/points/me/transactions?kind=gift", headers=bearer(user))
        assert bad_kind.status_code == 400
        assert (await client.get("/api/points/me/transactions?limit=1000", headers=bearer(user))).status_code == 400


async def test_twenty_concurrent_grants_with_one_key_answer_the_same(pg_url: str) -> None:
    async with running_app(make_settings(pg_url, database_pool_size=25)) as (_, client):
        admin, user, user_id = await _admin_and_user(client, pg_url)
        grant = {"user_id": user_id, "amount": 70, "reason": "race", "idempotency_key": "race-1"}
        replies = await asyncio.gather(
            *(client.post("/api/admin/points/grant", json=grant, headers=bearer(admin)) for _ in range(20))
        )
        assert {reply.status_code for reply in replies} == {200}
        assert len({reply.text for reply in replies}) == 1
        assert (await client.get("/api/points/me", headers=bearer(user))).json()["balance"] == 70
