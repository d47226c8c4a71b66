from __future__ import annotations

import asyncio

import pytest

from tests.support import bearer, login, make_settings, register, running_app


async def test_register_login_and_read_own_profile(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        created = await register(client, "ada", "Pässwörd€2024")
        assert created["username"] == "ada"
        assert created["role"] == "user"
        assert set(created) == {"id", "email", "username", "role", "created_at"}

        tokens = await login(client, "ada", "Pässwörd€2024")
        assert tokens["token_type"] == "bearer"
        assert tokens["expires_in"] == 900

        profile = await client.get("/api/users/profile/me", headers=bearer(tokens))
        assert profile.status_code == 200
        assert profile.json()["email"] == "ada@example.com"


async def test_refresh_rotates_and_reuse_revokes_the_family(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        await register(client, "ada")
        first = await login(client, "ada")
        second = (await client.post("/api/secure-auth/refresh", json={"refresh_token": first["refresh_token"]})).json()
        assert second["refresh_token"] != first["refresh_token"]

        reuse = await client.post("/api/secure-auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert reuse.status_code == 401
        assert reuse.json()["code"] == "token_reused"

        # the thief's reuse also killed the legitimate holder's newer token
        after = await client.post("/api/secure-auth/refresh-token", json={"refresh_token": second["refresh_token"]})
        assert after.status_code == 401


@pytest.mark.postgres
async def test_concurrent_refreshes_of_one_token_at_most_one_succeeds(pg_url: str) -> None:
    async with running_app(make_settings(pg_url)) as (_, client):
        await register(client, "ada")
        tokens = await login(client, "ada")
        replies = await asyncio.gather(
            *(
                client.post("/api/secure-auth/refresh", json={"refresh_token": tokens["refresh_token"]})
                for _ in range(10)
            )
        )
        winners = [r for r in replies if r.status_code == 200]
        losers = [r for r in replies if r.status_code != 200]
        assert len(winners) == 1
        assert {r.status_code for r in losers} == {401}
        # the first loser detects the reuse and revokes the family; later ones find it revoked
        codes = [r.json()["code"] for r in losers]
        assert "token_reused" in codes
        assert set(codes) <= {"token_reused", "invalid_refresh_token"}
        # the losers presented a rotated token: theft detection revoked the winner's new token too
        rotated = winners[0].json()["refresh_token"]
        assert (await client.post("/api/secure-auth/refresh", json={"refresh_token": rotated})).status_code == 401
