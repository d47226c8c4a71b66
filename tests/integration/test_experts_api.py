"""The expert endpoints: one profile per user, the public directory and the refreshed figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.domain.experts.service import ExpertService
from app.infra.db.experts import SqlExpertRepository
from app.infra.db.unit_of_work import SessionUnitOfWork
from tests.integration.coupon_harness import FixedClock
from tests.support import bearer, login, make_settings, register, running_app, set_role

EXPERTS = "/api/experts"


async def _people(client: httpx.AsyncClient, database_url: str) -> dict[str, Any]:
    """Authorization headers of ada (500 points, posts tasks), bob, eve and max; their ids under ``ids``."""
    ids = {}
    for name in ("root", "ada", "bob", "eve", "max"):
        ids[name] = (await register(client, name))["id"]
    await set_role(database_url, "root", "admin")
    people = {name: bearer(await login(client, name)) for name in ids}
    grant = {"user_id": ids["ada"], "amount": 500, "reason": "welcome", "idempotency_key": "ada-1"}
    response = await client.post("/api/admin/points/grant", json=grant, headers=people["root"])
    assert response.status_code == 200, response.text
    return people | {"ids": ids}


async def _create(client: httpx.AsyncClient, who: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post(f"{EXPERTS}/me", json={"skills": ["sanding"], **body}, headers=who)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _complete(
    client: httpx.AsyncClient, poster: dict[str, str], taker: dict[str, str], category: str, rating: int | None
) -> None:
    deadline = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    body = {"title": "A job", "description": "Do it.", "category": category, "reward_points": 10, "deadline": deadline}
    task = (await client.post("/api/tasks", json=body, headers=poster)).json()
    assert (await client.post(f"/api/tasks/{task['id']}/take", headers=taker)).status_code == 200
    done = await client.post(f"/api/tasks/{task['id']}/complete", json={"rating": rating}, headers=poster)
    assert done.status_code == 200, done.text


async def _refresh(database_url: str, batch_size: int) -> int:
    engine = create_async_engine(database_url)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            service = ExpertService(
                SqlExpertRepository(session), SessionUnitOfWork(session), FixedClock(datetime.now(UTC))
            )
            return await service.refresh_auto_bios(batch_size)
    finally:
        await engine.dispose()


async def test_create_update_and_refusals(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        people = await _people(client, database_url)
        bob = people["bob"]
        body = {"skills": [" Sanding ", "paint"], "categories": ["Furniture", "furniture", "Design"], "bio": " Hi "}
        created = await client.post(f"{EXPERTS}/me", json=body, headers=bob)
        assert created.status_code == 201, created.text
        profile = created.json()
        assert profile["user_id"] == people["ids"]["bob"]
        assert (profile["username"], profile["skills"], profile["categories"]) == (
            "bob",
            ["Sanding", "paint"],
            ["furniture", "design"],
        )
        assert (profile["bio"], profile["completed_count"], profile["average_rating"]) == ("Hi", 0, None)

        again = await client.post(f"{EXPERTS}/me", json=body, headers=bob)
        assert (again.status_code, again.json()["code"]) == (409, "expert_profile_exists")
        me = (await client.get("/api/users/profile/me", headers=bob)).json()
        assert me["role"] == "user"  # creating a profile changes no role

        patched = await client.patch(f"{EXPERTS}/me", json={"bio": "New words"}, headers=bob)
        assert patched.status_code == 200, patched.text
        assert (patched.json()["bio"], patched.json()["skills"]) == ("New words", ["Sanding", "paint"])

        too_many = await client.post(
            f"{EXPERTS}/me", json={"skills": [f"s{i}" for i in range(21)]}, headers=people["eve"]
        )
        assert (too_many.status_code, too_many.json()["code"]) == (422, "invalid_expert_profile")
        blank = await client.patch(f"{EXPERTS}/me", json={"categories": ["   "]}, headers=bob)
        assert (blank.status_code, blank.json()["code"]) == (422, "invalid_expert_profile")
        for bad in ({"skills": "sanding"}, {"skills": ["x"], "extra": 1}, {"skills": ["x" * 81]}, {"skills": [""]}):
            assert (await client.post(f"{EXPERTS}/me", json=bad, headers=people["eve"])).status_code == 400
        none_yet = await client.patch(f"{EXPERTS}/me", json={"bio": "x"}, headers=people["max"])
        assert (none_yet.status_code, none_yet.json()["code"]) == (404, "expert_not_found")
        assert (await client.post(f"{EXPERTS}/me", json=body)).status_code == 401

        public = await client.get(f"{EXPERTS}/{profile['id']}")
        assert (public.status_code, public.json()["bio"]) == (200, "New words")
        unknown = await client.get(f"{EXPERTS}/00000000-0000-4000-8000-000000000000")
        assert (unknown.status_code, unknown.json()["code"]) == (404, "expert_not_found")


async def test_refresh_computes_figures_from_completed_tasks_and_the_list_sorts_filters_and_pages(
    database_url: str,
) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        people = await _people(client, database_url)
        ada, bob, eve, max_ = people["ada"], people["bob"], people["eve"], people["max"]
        experts = {
            "bob": await _create(client, bob, categories=["design"], bio="Bob's own"),
            "eve": await _create(client, eve, categories=["writing", "design"], bio="Eve's own"),
            "max": await _create(client, max_, categories=["garden"], bio="Max's own"),
        }
        await _complete(client, ada, bob, "design", 5)
        await _complete(client, ada, bob, "design", 4)
        await _complete(client, ada, bob, "writing", None)
        await _complete(client, ada, eve, "writing", 5)
        # a taken but not completed task counts for nothing
        task = {"title": "Open", "description": "x", "category": "garden", "reward_points": 10}
        task["deadline"] = (datetime.now(UTC) + timedelta(days=2)).isoformat()
        open_task = (await client.post("/api/tasks", json=task, headers=ada)).json()
        assert (await client.post(f"/api/tasks/{open_task['id']}/take", headers=max_)).status_code == 200

        assert await _refresh(database_url, batch_size=2) == 3

        async def page(query: str) -> tuple[list[str], int]:
            response = await client.get(f"{EXPERTS}?{query}")
            assert response.status_code == 200, response.text
            return [item["username"] for item in response.json()["items"]], response.json()["total"]

        assert await page("") == (["eve", "bob", "max"], 3)  # 5.0, then 4.5, then unrated
        assert await page("sort=completed") == (["bob", "eve", "max"], 3)
        assert await page("sort=completed&limit=1&offset=1") == (["eve"], 3)
        assert await page("sort=completed&offset=5") == ([], 3)
        assert await page("category=Design") == (["eve", "bob"], 2)
        assert await page("category=cooking") == ([], 0)
        assert (await client.get(f"{EXPERTS}?sort=nonsense")).status_code == 400
        assert (await client.get(f"{EXPERTS}?limit=0")).status_code == 400

        bob_profile = (await client.get(f"{EXPERTS}/{experts['bob']['id']}")).json()
        assert (bob_profile["completed_count"], bob_profile["average_rating"]) == (3, 4.5)
        assert bob_profile["auto_bio"] == "3 tasks completed · average rating 4.5 · mostly design, writing"
        assert bob_profile["bio"] == "Bob's own"
        max_profile = (await client.get(f"{EXPERTS}/{experts['max']['id']}")).json()
        assert (max_profile["auto_bio"], max_profile["bio"]) == ("No completed tasks yet", "Max's own")

        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as connection:
                bios = (await connection.execute(text("SELECT bio FROM experts ORDER BY bio"))).scalars().all()
        finally:
            await engine.dispose()
        assert bios == ["Bob's own", "Eve's own", "Max's own"]
