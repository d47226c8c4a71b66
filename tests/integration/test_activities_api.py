"""The activity endpoints: who may create and cancel, joining and leaving, states over time, the list and
the end job's rewards, on both databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import event, update
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.infra.db.activity_tables import ActivityRecord
from tests.integration.activity_harness import activity_service
from tests.integration.coupon_harness import FixedClock
from tests.integration.task_harness import moment
from tests.support import bearer, login, make_settings, register, running_app, set_role

ACTIVITIES = "/api/activities"


def activity_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Park clean-up",
        "description": "Bring gloves.",
        "starts_at": moment(hours=1),
        "ends_at": moment(hours=3),
        "capacity": 2,
        "reward_points": 40,
    }
    body.update(overrides)
    return body


async def _people(client: httpx.AsyncClient, database_url: str) -> dict[str, Any]:
    """Headers of root (admin), exa and exb (experts), ada, bob and eve (users); their ids under ``ids``."""
    ids = {}
    for name in ("root", "exa", "exb", "ada", "bob", "eve"):
        ids[name] = (await register(client, name))["id"]
    await set_role(database_url, "root", "admin")
    for expert in ("exa", "exb"):
        await set_role(database_url, expert, "expert")
    return {name: bearer(await login(client, name)) for name in ids} | {"ids": ids}


async def _create(client: httpx.AsyncClient, who: dict[str, str], **overrides: Any) -> dict[str, Any]:
    response = await client.post(ACTIVITIES, json=activity_body(**overrides), headers=who)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _shift(database_url: str, activity_id: str, starts: timedelta, ends: timedelta) -> None:
    """Move an activity's start and end relative to now, behind the API's back (time passing)."""
    now = datetime.now(UTC)
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(ActivityRecord)
                .where(ActivityRecord.id == uuid.UUID(activity_id))
                .values(starts_at=now + starts, ends_at=now + ends)
            )
    finally:
        await engine.dispose()


async def _end_due(database_url: str, when: datetime) -> int:
    """Run the end job (as the scheduler will) until it has nothing left."""
    engine = create_async_engine(database_url)
    total = 0
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            service = activity_service(session, FixedClock(when))
            while (count := await service.end_due(when, 3)) > 0:
                total += count
    finally:
        await engine.dispose()
    return total


async def _balance(client: httpx.AsyncClient, who: dict[str, str]) -> int:
    balance: int = (await client.get("/api/points/me", headers=who)).json()["balance"]
    return balance


async def _inbox_kinds(client: httpx.AsyncClient, who: dict[str, str]) -> list[tuple[str, str]]:
    items = (await client.get("/api/notifications/me", headers=who)).json()["items"]
    return [(item["kind"], item["payload"]["activity_id"]) for item in items]


async def test_experts_and_admins_create_users_join_and_leave(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        people = await _people(client, database_url)
        ada, bob, eve = people["ada"], people["bob"], people["eve"]
        refused = await client.post(ACTIVITIES, json=activity_body(), headers=ada)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
        assert (await client.post(ACTIVITIES, json=activity_body(), headers=people["root"])).status_code == 201
        activity = await _create(client, people["exa"], title="  Park clean-up  ")
        assert activity["title"] == "Park clean-up"
        assert (activity["state"], activity["participant_count"], activity["places_left"]) == ("scheduled", 0, 2)
        assert activity["creator_id"] == people["ids"]["exa"]
        path = f"{ACTIVITIES}/{activity['id']}"

        joined = await client.post(f"{path}/join", headers=ada)
        assert joined.status_code == 200, joined.text
        assert (joined.json()["participant_count"], joined.json()["places_left"]) == (1, 1)
        twice = await client.post(f"{path}/join", headers=ada)
        assert (twice.status_code, twice.json()["code"]) == (409, "already_joined")
        assert (await client.post(f"{path}/join", headers=bob)).status_code == 200
        full = await client.post(f"{path}/join", headers=eve)
        assert (full.status_code, full.json()["code"]) == (409, "full")
        # already in and full: the answer is about you
        assert (await client.post(f"{path}/join", headers=ada)).json()["code"] == "already_joined"

        not_in = await client.post(f"{path}/leave", headers=eve)
        assert (not_in.status_code, not_in.json()["code"]) == (409, "not_joined")
        left = await client.post(f"{path}/leave", headers=ada)
        assert left.status_code == 200, left.text
        assert left.json()["participant_count"] == 1
        assert (await client.post(f"{path}/leave", headers=ada)).json()["code"] == "not_joined"
        assert (await client.post(f"{path}/join", headers=eve)).status_code == 200
        fetched = await client.get(path, headers=bob)
        assert (fetched.status_code, fetched.json()["participant_count"]) == (200, 2)

        unknown = f"{ACTIVITIES}/{uuid.uuid4()}"
        for method, suffix in (("GET", ""), ("POST", "/join"), ("POST", "/leave"), ("POST", "/cancel")):
            response = await client.request(method, f"{unknown}{suffix}", headers=bob)
            assert (response.status_code, response.json()["code"]) == (404, "activity_not_found")
        for method, suffix in (("GET", ""), ("POST", "/join"), ("POST", "/leave"), ("POST", "/cancel")):
            assert (await client.request(method, f"{path}{suffix}")).status_code == 401
        assert (await client.get(ACTIVITIES)).status_code == 401
        assert (await client.post(ACTIVITIES, json=activity_body())).status_code == 401


async def test_creation_refusals_list_every_broken_rule(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        people = await _people(client, database_url)
        exa = people["exa"]
        bad = await client.post(
            ACTIVITIES,
            json=activity_body(title=" x ", starts_at=moment(hours=-1), ends_at=moment(hours=-2)),
            headers=exa,
        )
        assert (bad.status_code, bad.json()["code"]) == (422, "invalid_activity")
        assert {(e["field"], e["code"]) for e in bad.json()["errors"]} == {
            ("title", "invalid_length"),
            ("starts_at", "starts_in_past"),
            ("ends_at", "ends_before_start"),
        }
        same = await client.post(ACTIVITIES, json=activity_body(ends_at=activity_body()["starts_at"]), headers=exa)
        assert [e["code"] for e in same.json()["errors"]] == ["ends_before_start"]
        far = await client.post(
            ACTIVITIES, json=activity_body(starts_at=moment(days=400), ends_at=moment(days=401)), headers=exa
        )
        assert [e["code"] for e in far.json()["errors"]] == ["starts_too_far"]
        long = await client.post(ACTIVITIES, json=activity_body(ends_at=moment(days=370)), headers=exa)
        assert [e["code"] for e in long.json()["errors"]] == ["too_long"]
        # a start "now" that arrives a few seconds late is fine
        assert (
            await client.post(ACTIVITIES, json=activity_body(starts_at=moment(seconds=-5)), headers=exa)
        ).status_code == 201
        for body in (
            activity_body(capacity=0),
            activity_body(capacity=100_001),
            activity_body(reward_points=-1),
            activity_body(reward_points=100_001),
            activity_body(title=""),
            activity_body(extra=1),
            activity_body(starts_at="tomorrow"),
            activity_body(starts_at=(datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None).isoformat()),
        ):
            response = await client.post(ACTIVITIES, json=body, headers=exa)
            assert response.status_code == 400, (body, response.text)
        page = (await client.get(ACTIVITIES, headers=exa)).json()
        assert page["total"] == 1


async def test_only_the_creator_or_an_admin_cancels_and_everyone_is_released(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        people = await _people(client, database_url)
        ada, bob, exa, exb, root = people["ada"], people["bob"], people["exa"], people["exb"], people["root"]
        first = await _create(client, exa)
        path = f"{ACTIVITIES}/{first['id']}"
        for who in (ada, bob):
            assert (await client.post(f"{path}/join", headers=who)).status_code == 200
        for stranger in (ada, exb):
            refused = await client.post(f"{path}/cancel", headers=stranger)
            assert (refused.status_code, refused.json()["code"]) == (403, "not_creator")

        cancelled = await client.post(f"{path}/cancel", headers=exa)
        assert cancelled.status_code == 200, cancelled.text
        body = cancelled.json()
        assert (body["state"], body["participant_count"], body["places_left"]) == ("cancelled", 0, 2)
        assert body["cancelled_at"] is not None
        for who in (ada, bob):
            assert await _inbox_kinds(client, who) == [("activity_cancelled", first["id"])]
        again = await client.post(f"{path}/cancel", headers=exa)
        assert (again.status_code, again.json()["code"]) == (409, "invalid_transition")
        assert "cancelled" in again.json()["detail"]
        for action in ("join", "leave"):
            response = await client.post(f"{path}/{action}", headers=ada)
            assert (response.status_code, response.json()["code"]) == (409, "invalid_transition")

        second = await _create(client, exa)
        by_admin = await client.post(f"{ACTIVITIES}/{second['id']}/cancel", headers=root)
        assert (by_admin.status_code, by_admin.json()["state"]) == (200, "cancelled")


async def test_the_state_follows_the_clock_and_the_end_job_pays_each_participant_once(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        people = await _people(client, database_url)
        ada, bob, eve, exa = people["ada"], people["bob"], people["eve"], people["exa"]
        activity = await _create(client, exa, capacity=5, reward_points=40)
        path = f"{ACTIVITIES}/{activity['id']}"
        for who in (ada, bob):
            assert (await client.post(f"{path}/join", headers=who)).status_code == 200

        await _shift(database_url, activity["id"], timedelta(minutes=-5), timedelta(hours=1))
        assert (await client.get(path, headers=ada)).json()["state"] == "active"
        assert (await client.post(f"{path}/join", headers=eve)).status_code == 200  # joining while active
        assert (await client.post(f"{path}/leave", headers=eve)).status_code == 200

        await _shift(database_url, activity["id"], timedelta(hours=-2), timedelta(minutes=-1))
        shown = (await client.get(path, headers=ada)).json()
        assert (shown["state"], shown["ended_at"], shown["rewards_paid_at"]) == ("ended", None, None)
        for action, who in (("join", eve), ("leave", ada), ("cancel", exa)):
            response = await client.post(f"{path}/{action}", headers=who)
            assert (response.status_code, response.json()["code"]) == (409, "invalid_transition"), action
            assert "ended" in response.json()["detail"]

        now = datetime.now(UTC)
        assert await _end_due(database_url, now) == 1 + 2  # the activity, its two participants
        assert await _end_due(database_url, now) == 0
        for who in (ada, bob):
            assert await _balance(client, who) == 40
            assert await _inbox_kinds(client, who) == [("activity_ended", activity["id"])]
        assert await _balance(client, eve) == 0
        assert await _inbox_kinds(client, eve) == []
        ended = (await client.get(path, headers=ada)).json()
        assert ended["state"] == "ended"
        assert ended["ended_at"] is not None
        assert ended["rewards_paid_at"] is not None
        transactions = (await client.get("/api/points/me/transactions", headers=ada)).json()["items"]
        assert [(t["kind"], t["amount"], t["reference"]) for t in transactions] == [
            ("earn", 40, f"activity:{activity['id']}")
        ]


@contextmanager
def _statements() -> Iterator[list[str]]:
    """Every SQL statement any engine of this process sends while the block runs."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", count)


async def test_the_list_filters_by_shown_state_pages_and_asks_a_fixed_number_of_queries(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        people = await _people(client, database_url)
        ada, exa, exb = people["ada"], people["exa"], people["exb"]
        created = [
            await _create(client, exa, starts_at=moment(hours=h), ends_at=moment(hours=h + 2)) for h in range(1, 7)
        ]
        by_exb = await _create(client, exb, starts_at=moment(hours=10), ends_at=moment(hours=12))
        ids = [item["id"] for item in created]
        # two running, one over (the end job has not run yet), one cancelled, two still scheduled
        await _shift(database_url, ids[0], timedelta(hours=-1), timedelta(hours=1))
        await _shift(database_url, ids[1], timedelta(minutes=-30), timedelta(minutes=30))
        await _shift(database_url, ids[2], timedelta(hours=-3), timedelta(minutes=-1))
        assert (await client.post(f"{ACTIVITIES}/{ids[3]}/cancel", headers=exa)).status_code == 200

        async def listed(query: str) -> tuple[list[tuple[str, str]], int]:
            response = await client.get(f"{ACTIVITIES}?{query}", headers=ada)
            assert response.status_code == 200, response.text
            body = response.json()
            return [(item["id"], item["state"]) for item in body["items"]], body["total"]

        assert await listed("state=active") == ([(ids[0], "active"), (ids[1], "active")], 2)
        assert await listed("state=ended") == ([(ids[2], "ended")], 1)
        assert await listed("state=cancelled") == ([(ids[3], "cancelled")], 1)
        assert await listed("state=scheduled") == (
            [(ids[4], "scheduled"), (ids[5], "scheduled"), (by_exb["id"], "scheduled")],
            3,
        )
        items, total = await listed("state=active&state=ended")
        assert total == 3
        assert {state for _, state in items} == {"active", "ended"}
        everything, total = await listed("")
        assert total == 7
        assert [item for item, _ in everything] == [ids[2], ids[0], ids[1], ids[3], ids[4], ids[5], by_exb["id"]]
        assert await listed("limit=2&offset=1") == (everything[1:3], 7)
        assert await listed("limit=5&offset=5") == (everything[5:], 7)
        assert await listed(f"creator_id={people['ids']['exb']}") == ([(by_exb["id"], "scheduled")], 1)
        assert (await client.get(f"{ACTIVITIES}?state=nonsense", headers=ada)).status_code == 400
        assert (await client.get(f"{ACTIVITIES}?limit=0", headers=ada)).status_code == 400
        assert (await client.get(f"{ACTIVITIES}?limit=101", headers=ada)).status_code == 400

        counts = []
        for limit in (1, 20):
            with _statements() as seen:
                response = await client.get(f"{ACTIVITIES}?limit={limit}", headers=ada)
            assert len(response.json()["items"]) == min(limit, 7)
            counts.append(len(seen))
        assert counts[0] == counts[1], counts
        # the caller's row, the page and its count (SQLite adds a BEGIN per connection)
        assert counts[0] <= 5, counts
