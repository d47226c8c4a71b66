"""Shared set-up of the task API tests: a task body and a cast of users with points."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.support import bearer, login, register, set_role


def moment(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def task_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Assemble a bookshelf",
        "description": "Flat-pack, five shelves.",
        "category": "furniture",
        "reward_points": 100,
        "deadline": moment(days=2),
    }
    body.update(overrides)
    return body


async def cast_of_users(client: httpx.AsyncClient, database_url: str) -> dict[str, dict[str, str]]:
    """Authorization headers of root (admin), ada (250 points), bob and eve; and their ids under ``ids``."""
    ids = {}
    for name in ("root", "ada", "bob", "eve"):
        ids[name] = (await register(client, name))["id"]
    await set_role(database_url, "root", "admin")
    people = {name: bearer(await login(client, name)) for name in ids}
    grant = {"user_id": ids["ada"], "amount": 250, "reason": "welcome", "idempotency_key": "ada-1"}
    response = await client.post("/api/admin/points/grant", json=grant, headers=people["root"])
    assert response.status_code == 200, response.text
    return people | {"ids": ids}
