"""The task endpoints: posting with a held reward, listing, the state machine and who may do what."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.integration.task_harness import cast_of_users, moment, task_body
from tests.support import make_settings, running_app

TASKS = "/api/tasks"


async def _balance(client: httpx.AsyncClient, who: dict[str, str]) -> int:
    balance: int = (await client.get("/api/points/me", headers=who)).json()["balance"]
    return balance


async def _post(client: httpx.AsyncClient, who: dict[str, str], **overrides: Any) -> dict[str, Any]:
    response = await client.post(TASKS, json=task_body(**overrides), headers=who)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_post_take_complete_moves_the_reward_to_the_taker(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        people = await cast_of_users(client, database_url)
        ada, bob = people["ada"], people["bob"]
        task = await _post(client, ada)
        assert (task["status"], task["held_points"], task["taker_id"]) == ("open", 100, None)
        assert await _balance(client, ada) == 150
        fetched = await client.get(f"{TASKS}/{task['id']}", headers=bob)
        assert fetched.status_code == 200
        assert fetched.json()["title"] == "Assemble a bookshelf"

        taken = await client.post(f"{TASKS}/{task['id']}/take", headers=bob)
        assert taken.status_code == 200, taken.text
        assert taken.json()["taker_id"] == people["ids"]["bob"]  # type: ignore[index]
        done = await client.post(f"{TASKS}/{task['id']}/complete", json={"rating": 5}, headers=ada)
        assert done.status_code == 200, done.text
        assert (done.json()["status"], done.json()["rating"]) == ("completed", 5)
        assert await _balance(client, bob) == 100
        assert await _balance(client, ada) == 150

        again = await client.post(f"{TASKS}/{task['id']}/complete", headers=ada)
        assert again.status_code == 409
        assert again.json()["code"] == "invalid_transition"
        assert "completed" in again.json()["detail"]


async def test_only_the_right_people_change_atask_body(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        people = await cast_of_users(client, database_url)
        ada, bob, eve, root = people["ada"], people["bob"], people["eve"], people["root"]
        task = await _post(client, ada)
        path = f"{TASKS}/{task['id']}"

        own = await client.post(f"{path}/take", headers=ada)
        assert (own.status_code, own.json()["code"]) == (403, "own_task")
        not_taken = await client.post(f"{path}/complete", headers=ada)
        assert (not_taken.status_code, not_taken.json()["code"]) == (409, "invalid_transition")
        stranger = await client.post(f"{path}/cancel", headers=eve)
        assert (stranger.status_code, stranger.json()["code"]) == (403, "not_poster")

        assert (await client.post(f"{path}/take", headers=bob)).status_code == 200
        second = await client.post(f"{path}/take", headers=eve)
        assert (second.status_code, second.json()["code"]) == (409, "invalid_transition")
        assert "taken" in second.json()["detail"]
        by_taker = await client.post(f"{path}/complete", headers=bob)
        assert (by_taker.status_code, by_taker.json()["code"]) == (403, "not_poster")
        by_poster = await client.post(f"{path}/cancel", headers=ada)
        assert (by_poster.status_code, by_poster.json()["code"]) == (403, "taker_consent_required")

        by_admin = await client.post(f"{path}/cancel", headers=root)
        assert by_admin.status_code == 200, by_admin.text
        assert (by_admin.json()["status"], by_admin.json()["cancel_reason"]) == ("cancelled", "admin")
        assert await _balance(client, ada) == 250

        unknown = "00000000-0000-4000-8000-000000000000"
        for method, suffix in (("GET", ""), ("POST", "/take"), ("POST", "/complete"), ("POST", "/cancel")):
            response = await client.request(method, f"{TASKS}/{unknown}{suffix}", headers=bob)
            assert (response.status_code, response.json()["code"]) == (404, "task_not_found")
        assert (await client.get(TASKS)).status_code == 401


async def test_the_poster_cancels_an_open_task_and_gets_points_and_coupon_back(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        people = await cast_of_users(client, database_url)
        ada, root = people["ada"], people["root"]
        template = {
            "name": "Task helper",
            "kind": "task_discount",
            "value": 30,
            "min_reward": 100,
            "total_quantity": 5,
            "valid_from": moment(hours=-1),
            "valid_until": moment(days=7),
            "coupon_valid_days": 14,
        }
        created = await client.post("/api/admin/coupon-templates", json=template, headers=root)
        assert created.status_code == 201, created.text
        claimed = await client.post("/api/coupons/claim", json={"template_id": created.json()["id"]}, headers=ada)
        coupon_id = claimed.json()["id"]

        task = await _post(client, ada, coupon_id=coupon_id)
        assert (task["held_points"], task["discount"], task["coupon_id"]) == (70, 30, coupon_id)
        assert await _balance(client, ada) == 180
        reused = await client.post(TASKS, json=task_body(coupon_id=coupon_id), headers=ada)
        assert (reused.status_code, reused.json()["code"]) == (409, "already_used")

        cancelled = await client.post(f"{TASKS}/{task['id']}/cancel", headers=ada)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["cancel_reason"] == "poster"
        assert await _balance(client, ada) == 250
        coupons = (await client.get("/api/coupons/me", headers=ada)).json()["items"]
        assert [(c["id"], c["status"]) for c in coupons] == [(coupon_id, "claimed")]
        twice = await client.post(f"{TASKS}/{task['id']}/cancel", headers=ada)
        assert (twice.status_code, twice.json()["code"]) == (409, "invalid_transition")


async def test_posting_refusals_create_nothing(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        people = await cast_of_users(client, database_url)
        ada, bob = people["ada"], people["bob"]
        poor = await client.post(TASKS, json=task_body(), headers=bob)
        assert (poor.status_code, poor.json()["code"]) == (409, "insufficient_points")
        too_much = await client.post(TASKS, json=task_body(reward_points=251), headers=ada)
        assert (too_much.status_code, too_much.json()["code"]) == (409, "insufficient_points")

        past = await client.post(TASKS, json=task_body(deadline=moment(hours=-1)), headers=ada)
        assert (past.status_code, past.json()["code"]) == (422, "invalid_task")
        blank = await client.post(TASKS, json=task_body(title="   "), headers=ada)
        assert (blank.status_code, blank.json()["code"]) == (422, "invalid_task")
        for bad in (
            task_body(reward_points=0),
            task_body(reward_points=2_000_000),
            task_body(title=""),
            task_body(extra=1),
        ):
            assert (await client.post(TASKS, json=bad, headers=ada)).status_code == 400
        naive = task_body(deadline=(datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None).isoformat())
        assert (await client.post(TASKS, json=naive, headers=ada)).status_code == 400

        page = (await client.get(TASKS, headers=ada)).json()
        assert page["total"] == 0
        assert await _balance(client, ada) == 250


async def test_listing_filters_sorts_and_pages(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        people = await cast_of_users(client, database_url)
        ada, bob = people["ada"], people["bob"]
        ids = people["ids"]
        first = await _post(client, ada, reward_points=30, category="Garden", deadline=moment(days=5))
        second = await _post(client, ada, reward_points=10, deadline=moment(days=9))
        third = await _post(client, ada, reward_points=20, deadline=moment(days=1))
        assert (await client.post(f"{TASKS}/{third['id']}/take", headers=bob)).status_code == 200

        async def ids_of(query: str) -> tuple[list[str], int]:
            response = await client.get(f"{TASKS}?{query}", headers=bob)
            assert response.status_code == 200, response.text
            body = response.json()
            return [item["id"] for item in body["items"]], body["total"]

        assert await ids_of("") == ([third["id"], second["id"], first["id"]], 3)
        assert await ids_of("sort=reward&order=asc&limit=2&offset=1") == ([third["id"], first["id"]], 3)
        assert await ids_of("sort=deadline&order=asc") == ([third["id"], first["id"], second["id"]], 3)
        assert await ids_of("status=open") == ([second["id"], first["id"]], 2)
        assert await ids_of("status=taken&status=completed") == ([third["id"]], 1)
        assert await ids_of("category=garden") == ([first["id"]], 1)
        assert await ids_of(f"taker_id={ids['bob']}") == ([third["id"]], 1)
        assert await ids_of(f"poster_id={ids['bob']}") == ([], 0)
        assert (await client.get(f"{TASKS}?sort=nonsense", headers=bob)).status_code == 400
        assert (await client.get(f"{TASKS}?limit=0", headers=bob)).status_code == 400
