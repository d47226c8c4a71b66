from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.support import bearer, login, make_settings, register, running_app

PASSWORD = "Secret€Pass9"


async def _register_with(client: httpx.AsyncClient, username: str, code: str) -> httpx.Response:
    return await client.post(
        "/api/users/register",
        json={"email": f"{username}@example.com", "username": username, "password": PASSWORD, "invitation_code": code},
    )


async def _balance(client: httpx.AsyncClient, tokens: dict[str, Any]) -> int:
    balance: int = (await client.get("/api/points/me", headers=bearer(tokens))).json()["balance"]
    return balance


async def test_registering_with_a_code_rewards_both_in_the_same_transaction(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        await register(client, "ada")
        ada = await login(client, "ada")
        created = await client.post("/api/invitations", json={"max_uses": 2}, headers=bearer(ada))
        assert created.status_code == 201
        invitation = created.json()
        assert invitation["status"] == "active"

        joined = await _register_with(client, "bob", invitation["code"].lower())
        assert joined.status_code == 201
        assert await _balance(client, ada) == 100
        assert await _balance(client, await login(client, "bob")) == 50

        mine = (await client.get("/api/invitations/me", headers=bearer(ada))).json()
        assert mine["total"] == 1
        assert mine["items"][0]["use_count"] == 1


async def test_an_invalid_code_refuses_the_registration_and_creates_no_account(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        refused = await _register_with(client, "bob", "NOSUCHCODE")
        assert refused.status_code == 422
        assert [error["code"] for error in refused.json()["errors"]] == ["invitation_not_found"]
        attempt = await client.post("/api/secure-auth/login", json={"email": "bob@example.com", "password": PASSWORD})
        assert attempt.status_code == 401
        # the same email registers fine afterwards: nothing was half-written
        await register(client, "bob", PASSWORD)


async def test_revoked_codes_refuse_registrations_and_only_the_owner_revokes(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        await register(client, "ada")
        await register(client, "eve")
        ada, eve = await login(client, "ada"), await login(client, "eve")
        invitation = (await client.post("/api/invitations", json={}, headers=bearer(ada))).json()
        stolen = await client.delete(f"/api/invitations/{invitation['id']}", headers=bearer(eve))
        assert stolen.status_code == 404
        assert (await client.delete(f"/api/invitations/{invitation['id']}", headers=bearer(ada))).status_code == 204
        refused = await _register_with(client, "bob", invitation["code"])
        assert refused.json()["errors"][0]["code"] == "invitation_revoked"
        revoked = (await client.get("/api/invitations/me?status=revoked", headers=bearer(ada))).json()
        assert revoked["total"] == 1
        assert (await client.get("/api/invitations/me?status=active", headers=bearer(ada))).json()["total"] == 0


async def test_active_code_limit_and_input_bounds(database_url: str) -> None:
    settings = make_settings(database_url, invitation_max_active_per_user=2)
    async with running_app(settings) as (_, client):
        await register(client, "ada")
        ada = await login(client, "ada")
        for _ in range(2):
            assert (await client.post("/api/invitations", json={}, headers=bearer(ada))).status_code == 201
        third = await client.post("/api/invitations", json={}, headers=bearer(ada))
        assert third.status_code == 409
        assert third.json()["code"] == "invitation_limit_reached"
        assert (await client.post("/api/invitations", json={"max_uses": 0}, headers=bearer(ada))).status_code == 400
        past = await client.post("/api/invitations", json={"expires_at": "2000-01-01T00:00:00Z"}, headers=bearer(ada))
        assert past.status_code == 422
        assert (await client.post("/api/invitations", json={})).status_code == 401


@pytest.mark.postgres
async def test_fifty_simultaneous_registrations_with_five_uses_reward_exactly_five(pg_url: str) -> None:
    async with running_app(make_settings(pg_url, database_pool_size=20, database_max_overflow=10)) as (_, client):
        await register(client, "ada")
        ada = await login(client, "ada")
        code = (await client.post("/api/invitations", json={"max_uses": 5}, headers=bearer(ada))).json()["code"]

        replies = await asyncio.gather(*(_register_with(client, f"user{n}", code) for n in range(50)))
        created = [reply for reply in replies if reply.status_code == 201]
        refused = [reply for reply in replies if reply.status_code == 422]
        assert len(created) == 5
        assert len(refused) == 45
        assert {reply.json()["errors"][0]["code"] for reply in refused} == {"invitation_used_up"}
        assert await _balance(client, ada) == 500
        mine = (await client.get("/api/invitations/me", headers=bearer(ada))).json()
        assert mine["items"][0]["use_count"] == 5
        assert mine["items"][0]["status"] == "used_up"
