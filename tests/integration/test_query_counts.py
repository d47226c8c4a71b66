"""H2 of QUALITY.md: no N+1 queries. Each list runs the same statements for a page of 1 as for a page of 20.

More than 20 rows stand behind every list, so both pages are full. The statements are
counted with ``tests.statement_counts.count_statements`` (SQLAlchemy's and the driver's).
"""

from __future__ import annotations

from typing import Any

import httpx
from litestar import Litestar

from tests.integration.task_harness import cast_of_users, moment, task_body
from tests.statement_counts import count_statements
from tests.support import bearer, login, make_settings, register, running_app

ROWS = 21  # one more than the larger page
LISTS = (
    "/api/tasks",
    "/api/experts",
    "/api/notifications/me",
    "/api/coupons/me",
    "/api/coupons/available",
    "/api/points/me/transactions",
    "/api/invitations/me",
)


async def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


async def _seed(client: httpx.AsyncClient, people: dict[str, Any]) -> None:
    """More than a page of everything that ada lists."""
    root, ada, bob = people["root"], people["ada"], people["bob"]
    for n in range(ROWS):
        grant = {"user_id": people["ids"]["ada"], "amount": 100, "reason": "seed", "idempotency_key": f"seed-{n}"}
        await _ok(await client.post("/api/admin/points/grant", json=grant, headers=root))
    for _ in range(ROWS):  # each taken by bob: a notification for ada
        task = await _ok(await client.post("/api/tasks", json=task_body(reward_points=10), headers=ada), 201)
        await _ok(await client.post(f"/api/tasks/{task['id']}/take", headers=bob))
    for n in range(ROWS):
        template = {
            "name": f"Bonus {n}",
            "kind": "points_bonus",
            "value": 5,
            "total_quantity": 10,
            "per_user_limit": 1,
            "valid_from": moment(hours=-1),
            "valid_until": moment(days=7),
            "coupon_valid_days": 14,
        }
        created = await _ok(await client.post("/api/admin/coupon-templates", json=template, headers=root), 201)
        await _ok(await client.post("/api/coupons/claim", json={"template_id": created["id"]}, headers=ada), 201)
    for _ in range(ROWS):
        await _ok(await client.post("/api/invitations", json={"max_uses": 1}, headers=ada), 201)
    for n in range(ROWS):
        name = f"expert{n}"
        await register(client, name)
        expert = bearer(await login(client, name))
        await _ok(await client.post("/api/experts/me", json={"skills": ["sanding"]}, headers=expert), 201)


async def _statements(app: Litestar, client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> list[str]:
    async with count_statements(app) as log:
        await _ok(await client.get(path, headers=headers))
    return log.statements


async def test_each_list_runs_the_same_statements_for_a_page_of_1_and_of_20(database_url: str) -> None:
    settings = make_settings(database_url, invitation_max_active_per_user=ROWS + 5)
    async with running_app(settings) as (app, client):
        people = await cast_of_users(client, database_url)
        await _seed(client, people)
        ada = people["ada"]
        counted: dict[str, tuple[int, int]] = {}
        for path in LISTS:
            one = await _statements(app, client, f"{path}?limit=1", ada)
            twenty = await _statements(app, client, f"{path}?limit=20", ada)
            page = await _ok(await client.get(f"{path}?limit=20", headers=ada))
            assert len(page["items"]) == 20, f"{path}: not a full page, the test proves nothing"
            counted[path] = (len(one), len(twenty))
            assert len(one) == len(twenty), f"{path}: {len(one)} vs {len(twenty)} statements\n" + "\n".join(twenty)
        # at most the caller's row, a page, its total and one summary (an unread count): nothing per row
        assert all(1 <= twenty <= 4 for _, twenty in counted.values()), counted


async def test_my_profile_is_one_statement(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (app, client):
        await register(client, "ada")
        ada = bearer(await login(client, "ada"))
        await _ok(await client.get("/api/users/profile/me", headers=ada))  # warm: nothing first-time counted
        async with count_statements(app) as log:
            profile = await _ok(await client.get("/api/users/profile/me", headers=ada))
        assert profile["username"] == "ada"
        assert len(log) == 1, log.statements
        assert "FROM users" in log.statements[0]


async def test_a_forged_token_is_refused_without_a_statement(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (app, client):
        async with count_statements(app) as log:
            forged = await client.get("/api/users/profile/me", headers={"Authorization": "Bearer not.a.token"})
        assert forged.status_code == 401
        assert len(log) == 0, log.statements
