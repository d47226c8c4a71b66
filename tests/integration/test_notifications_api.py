"""Notifications of task events and the taker's consent to a cancel, through the API on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.domain.coupons.service import CouponService
from app.domain.points.service import PointsService
from app.domain.tasks.service import TaskService
from app.infra.db.coupons import SqlCouponRepository
from app.infra.db.notifications import SqlNotifications
from app.infra.db.points import SqlPointsLedger
from app.infra.db.tasks import SqlTaskRepository
from app.infra.db.unit_of_work import SessionUnitOfWork
from tests.integration.coupon_harness import POLICY, FixedClock
from tests.integration.task_harness import cast_of_users, task_body
from tests.support import make_settings, running_app

TASKS = "/api/tasks"
MINE = "/api/notifications/me"


async def _post(client: httpx.AsyncClient, who: dict[str, str], **overrides: Any) -> dict[str, Any]:
    response = await client.post(TASKS, json=task_body(**overrides), headers=who)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _inbox(client: httpx.AsyncClient, who: dict[str, str], query: str = "") -> dict[str, Any]:
    response = await client.get(f"{MINE}{query}", headers=who)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _kinds(page: dict[str, Any]) -> list[tuple[str, str]]:
    return [(item["kind"], item["payload"]["task_id"]) for item in page["items"]]


async def test_task_events_notify_the_right_user_only(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        people = await cast_of_users(client, database_url)
        ada, bob, eve = people["ada"], people["bob"], people["eve"]
        task = await _post(client, ada)
        assert (await client.post(f"{TASKS}/{task['id']}/take", headers=bob)).status_code == 200
        assert (await client.post(f"{TASKS}/{task['id']}/complete", json={"rating": 5}, headers=ada)).status_code == 200

        mine = await _inbox(client, ada)
        assert _kinds(mine) == [("task_taken", task["id"])]
        assert (mine["total"], mine["unread_count"], mine["limit"], mine["offset"]) == (1, 1, 20, 0)
        assert mine["items"][0]["payload"]["title"] == "Assemble a bookshelf"
        assert mine["items"][0]["read_at"] is None
        bobs = await _inbox(client, bob)
        assert _kinds(bobs) == [("task_completed", task["id"])]
        assert (bobs["items"][0]["payload"]["points"], bobs["items"][0]["payload"]["rating"]) == (100, 5)
        assert (await _inbox(client, eve))["total"] == 0
        assert (await client.get(MINE)).status_code == 401


async def test_unread_filter_count_mark_read_and_read_all(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        people = await cast_of_users(client, database_url)
        ada, bob = people["ada"], people["bob"]
        tasks = [await _post(client, ada, reward_points=50) for _ in range(3)]
        for task in tasks:
            assert (await client.post(f"{TASKS}/{task['id']}/take", headers=bob)).status_code == 200

        page = await _inbox(client, ada)
        assert [payload for _, payload in _kinds(page)] == [task["id"] for task in reversed(tasks)]  # newest first
        assert (page["total"], page["unread_count"]) == (3, 3)
        paged = await _inbox(client, ada, "?limit=1&offset=1")
        assert (_kinds(paged), paged["total"]) == ([("task_taken", tasks[1]["id"])], 3)

        newest = page["items"][0]["id"]
        for _ in range(2):  # idempotent
            read = await client.post(f"/api/notifications/{newest}/read", headers=ada)
            assert read.status_code == 204, read.text
        unread = await _inbox(client, ada, "?unread=true")
        assert [item["id"] for item in unread["items"]] == [item["id"] for item in page["items"][1:]]
        assert (unread["total"], unread["unread_count"]) == (2, 2)
        everything = await _inbox(client, ada)
        assert (everything["total"], everything["unread_count"]) == (3, 2)
        assert everything["items"][0]["read_at"] is not None

        foreign = await client.post(f"/api/notifications/{newest}/read", headers=bob)
        unknown = await client.post("/api/notifications/00000000-0000-4000-8000-000000000000/read", headers=ada)
        for response in (foreign, unknown):
            assert (response.status_code, response.json()["code"]) == (404, "notification_not_found")
        assert (await client.post("/api/notifications/not-a-uuid/read", headers=ada)).status_code == 404

        assert (await client.post(f"{MINE}/read-all", headers=ada)).status_code == 204
        after = await _inbox(client, ada, "?unread=true")
        assert (after["items"], after["total"], after["unread_count"]) == ([], 0, 0)
        assert (await _inbox(client, ada))["total"] == 3


async def test_the_taker_consents_and_the_poster_cancels_a_takentask_body(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        people = await cast_of_users(client, database_url)
        ada, bob, eve = people["ada"], people["bob"], people["eve"]
        task = await _post(client, ada)
        path = f"{TASKS}/{task['id']}"
        early = await client.post(f"{path}/cancel/consent", headers=bob)
        assert (early.status_code, early.json()["code"]) == (403, "not_taker")
        assert (await client.post(f"{path}/take", headers=bob)).status_code == 200
        assert (await client.get("/api/points/me", headers=ada)).json()["balance"] == 150

        without = await client.post(f"{path}/cancel", headers=ada)
        assert (without.status_code, without.json()["code"]) == (403, "taker_consent_required")
        for who in (ada, eve):
            refused = await client.post(f"{path}/cancel/consent", headers=who)
            assert (refused.status_code, refused.json()["code"]) == (403, "not_taker")

        consent = await client.post(f"{path}/cancel/consent", headers=bob)
        assert consent.status_code == 200, consent.text
        assert (consent.json()["status"], consent.json()["cancel_consented_at"] is not None) == ("taken", True)
        assert (await client.post(f"{path}/cancel/consent", headers=bob)).status_code == 200  # again: no change
        assert _kinds(await _inbox(client, ada)) == [("task_cancel_consented", task["id"]), ("task_taken", task["id"])]

        cancelled = await client.post(f"{path}/cancel", headers=ada)
        assert cancelled.status_code == 200, cancelled.text
        assert (cancelled.json()["status"], cancelled.json()["cancel_reason"]) == ("cancelled", "poster")
        assert (await client.get("/api/points/me", headers=ada)).json()["balance"] == 250
        assert (await client.get("/api/points/me", headers=bob)).json()["balance"] == 0
        bobs = await _inbox(client, bob)
        assert _kinds(bobs) == [("task_cancelled", task["id"])]
        assert bobs["items"][0]["payload"]["reason"] == "poster"
        late = await client.post(f"{path}/cancel/consent", headers=bob)
        assert (late.status_code, late.json()["code"]) == (409, "invalid_transition")
        missing = await client.post(f"{TASKS}/00000000-0000-4000-8000-000000000000/cancel/consent", headers=bob)
        assert (missing.status_code, missing.json()["code"]) == (404, "task_not_found")


async def test_an_admin_cancels_a_taken_task_without_consent_and_the_taker_is_told(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        people = await cast_of_users(client, database_url)
        ada, bob, root = people["ada"], people["bob"], people["root"]
        task = await _post(client, ada)
        assert (await client.post(f"{TASKS}/{task['id']}/take", headers=bob)).status_code == 200
        by_admin = await client.post(f"{TASKS}/{task['id']}/cancel", headers=root)
        assert by_admin.status_code == 200, by_admin.text
        assert by_admin.json()["cancel_consented_at"] is None
        assert _kinds(await _inbox(client, bob)) == [("task_cancelled", task["id"])]


async def test_expiry_notifies_each_poster_once_per_expiredtask_body(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        people = await cast_of_users(client, database_url)
        ada, bob = people["ada"], people["bob"]
        soon = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
        due = [await _post(client, ada, reward_points=50, deadline=soon) for _ in range(2)]
        later = await _post(client, ada, reward_points=50)

        engine = create_async_engine(database_url)
        try:
            clock = FixedClock(datetime.now(UTC) + timedelta(hours=1))
            async with async_sessionmaker(engine, expire_on_commit=False)() as session:
                uow = SessionUnitOfWork(session)
                points = PointsService(SqlPointsLedger(session), uow, clock, POLICY)
                coupons = CouponService(SqlCouponRepository(session), points, uow, clock)
                notifier = SqlNotifications(session, clock)
                service = TaskService(SqlTaskRepository(session), points, coupons, notifier, uow, clock)
                assert await service.cancel_expired(clock.now(), 10) == 2
                assert await service.cancel_expired(clock.now(), 10) == 0
        finally:
            await engine.dispose()

        page = await _inbox(client, ada)
        assert sorted(_kinds(page)) == sorted(("task_expired", task["id"]) for task in due)
        assert later["id"] not in {task_id for _, task_id in _kinds(page)}
        assert (page["total"], page["unread_count"]) == (2, 2)
        assert (await _inbox(client, bob))["total"] == 0
        assert (await client.get("/api/points/me", headers=ada)).json()["balance"] == 200
