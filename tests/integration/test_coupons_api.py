"""The coupon endpoints: admin template management, claiming, listing, redeeming, and who may see what."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.support import bearer, login, make_settings, register, running_app, set_role

TEMPLATES = "/api/admin/coupon-templates"


def _moment(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def _template(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Welcome bonus",
        "kind": "points_bonus",
        "value": 30,
        "total_quantity": 10,
        "per_user_limit": 1,
        "valid_from": _moment(hours=-1),
        "valid_until": _moment(days=7),
        "coupon_valid_days": 14,
    }
    body.update(overrides)
    return body


async def _people(
    client: httpx.AsyncClient, database_url: str
) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(admin, ada, bob) authorization headers."""
    for name in ("root", "ada", "bob"):
        await register(client, name)
    await set_role(database_url, "root", "admin")
    return bearer(await login(client, "root")), bearer(await login(client, "ada")), bearer(await login(client, "bob"))


async def _publish(client: httpx.AsyncClient, admin: dict[str, str], **overrides: Any) -> str:
    response = await client.post(TEMPLATES, json=_template(**overrides), headers=admin)
    assert response.status_code == 201, response.text
    template_id: str = response.json()["id"]
    return template_id


async def _claim(client: httpx.AsyncClient, user: dict[str, str], template_id: str) -> httpx.Response:
    return await client.post("/api/coupons/claim", json={"template_id": template_id}, headers=user)


async def test_an_admin_publishes_lists_edits_and_closes_templates(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        admin, ada, _ = await _people(client, database_url)
        created = await client.post(TEMPLATES, json=_template(), headers=admin)
        assert created.status_code == 201, created.text
        template = created.json()
        assert template["status"] == "active"
        assert (template["claimed_count"], template["remaining"]) == (0, 10)
        assert (template["coupon_valid_days"], template["coupon_expires_at"], template["min_reward"]) == (
            14,
            None,
            None,
        )
        task_id = await _publish(client, admin, kind="task_discount", value=15, min_reward=100, name="Task helper")
        assert (await _claim(client, ada, template["id"])).status_code == 201

        page = (await client.get(f"{TEMPLATES}?limit=1", headers=admin)).json()
        assert (page["total"], page["limit"], [t["id"] for t in page["items"]]) == (2, 1, [task_id])  # newest first
        fixed_end = _moment(days=60)
        edit = {"name": "Bigger bonus", "value": 45, "total_quantity": 5, "coupon_expires_at": fixed_end}
        edited = await client.patch(f"{TEMPLATES}/{template['id']}", json=edit, headers=admin)
        assert edited.status_code == 200, edited.text
        body = edited.json()
        assert (body["name"], body["value"], body["claimed_count"], body["remaining"]) == ("Bigger bonus", 45, 1, 4)
        assert body["coupon_valid_days"] is None
        assert datetime.fromisoformat(body["coupon_expires_at"]) == datetime.fromisoformat(fixed_end)

        closed = await client.post(f"{TEMPLATES}/{template['id']}/close", headers=admin)
        assert (closed.status_code, closed.json()["status"]) == (200, "closed")
        again = await client.post(f"{TEMPLATES}/{template['id']}/close", headers=admin)
        assert again.json() == closed.json()
        after_close = await client.patch(f"{TEMPLATES}/{template['id']}", json={"name": "x"}, headers=admin)
        assert (after_close.status_code, after_close.json()["code"]) == (409, "template_closed")

        only_closed = (await client.get(f"{TEMPLATES}?status=closed", headers=admin)).json()
        assert [t["id"] for t in only_closed["items"]] == [template["id"]]
        tasks = (await client.get(f"{TEMPLATES}?kind=task_discount&status=active", headers=admin)).json()
        assert [t["id"] for t in tasks["items"]] == [task_id]
        # the coupon claimed before the edit keeps its terms
        mine = (await client.get("/api/coupons/me", headers=ada)).json()["items"]
        assert (mine[0]["value"], mine[0]["name"], mine[0]["status"]) == (30, "Welcome bonus", "claimed")


async def test_template_management_is_for_admins_only(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        admin, ada, _ = await _people(client, database_url)
        template_id = await _publish(client, admin)
        calls = [
            ("POST", TEMPLATES, _template()),
            ("GET", TEMPLATES, None),
            ("PATCH", f"{TEMPLATES}/{template_id}", {"name": "mine now"}),
            ("POST", f"{TEMPLATES}/{template_id}/close", None),
        ]
        for method, url, body in calls:
            as_user = await client.request(method, url, json=body, headers=ada)
            assert (as_user.status_code, as_user.json()["code"]) == (403, "forbidden"), (method, url)
            assert (await client.request(method, url, json=body)).status_code == 401, (method, url)
        templates = (await client.get(TEMPLATES, headers=admin)).json()
        assert [(t["name"], t["status"]) for t in templates["items"]] == [("Welcome bonus", "active")]
        missing = await client.post(f"{TEMPLATES}/00000000-0000-0000-0000-000000000000/close", headers=admin)
        assert (missing.status_code, missing.json()["code"]) == (404, "template_not_found")


async def test_a_bad_template_is_refused_with_a_code_per_broken_rule_never_a_500(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        admin, _, _ = await _people(client, database_url)
        broken = _template(
            kind="task_discount",
            valid_until=_moment(hours=-2),
            coupon_expires_at=_moment(days=30),
        )
        refused = await client.post(TEMPLATES, json=broken, headers=admin)
        assert refused.status_code == 422
        body = refused.json()
        assert body["code"] == "invalid_template"
        assert {(e["code"], e["field"]) for e in body["errors"]} == {
            ("window_order", "valid_until"),
            ("window_in_past", "valid_until"),
            ("validity_ambiguous", "coupon_valid_days"),
            ("min_reward_required", "min_reward"),
        }
        for bad in (
            {"value": 0},
            {"value": 2.5},
            {"total_quantity": 0},
            {"per_user_limit": 10_000},
            {"kind": "cashback"},
            {"valid_from": "2026-01-01T00:00:00"},  # no time zone
            {"coupon_valid_days": 0},
            {"surprise": 1},
        ):
            response = await client.post(TEMPLATES, json=_template(**bad), headers=admin)
            assert (response.status_code, response.json()["code"]) == (400, "invalid_request"), bad
        too_low = await client.post(TEMPLATES, json=_template(kind="task_discount", min_reward=30), headers=admin)
        assert [e["code"] for e in too_low.json()["errors"]] == ["min_reward_too_low"]
        template_id = await _publish(client, admin, total_quantity=3)
        lower = await client.patch(f"{TEMPLATES}/{template_id}", json={"valid_until": _moment(days=-1)}, headers=admin)
        assert lower.status_code == 422
        assert {e["code"] for e in lower.json()["errors"]} == {"window_order", "window_in_past"}


async def test_a_user_claims_lists_and_redeems_a_coupon_for_points(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        admin, ada, _ = await _people(client, database_url)
        bonus = await _publish(client, admin, value=25, valid_until=_moment(days=2))
        task = await _publish(client, admin, kind="task_discount", value=10, min_reward=50, per_user_limit=2)
        await _publish(client, admin, valid_from=_moment(days=1))  # not open yet: not listed

        available = (await client.get("/api/coupons/available", headers=ada)).json()
        assert [(a["template_id"], a["claimed_by_me"], a["can_claim"]) for a in available["items"]] == [
            (bonus, 0, True),
            (task, 0, True),
        ]
        claimed = await _claim(client, ada, bonus)
        assert claimed.status_code == 201, claimed.text
        coupon = claimed.json()
        assert (coupon["status"], coupon["kind"], coupon["value"], coupon["used_at"]) == (
            "claimed",
            "points_bonus",
            25,
            None,
        )
        assert (await _claim(client, ada, task)).status_code == 201
        available = (await client.get("/api/coupons/available?kind=points_bonus", headers=ada)).json()
        assert [(a["claimed_by_me"], a["can_claim"], a["remaining"]) for a in available["items"]] == [(1, False, 9)]

        redeemed = await client.post(f"/api/coupons/{coupon['id']}/redeem", headers=ada)
        assert redeemed.status_code == 200, redeemed.text
        assert redeemed.json()["coupon"]["status"] == "used"
        assert (redeemed.json()["transaction"]["amount"], redeemed.json()["transaction"]["kind"]) == (25, "grant")
        assert (await client.get("/api/points/me", headers=ada)).json()["balance"] == 25

        used = (await client.get("/api/coupons/me?status=used", headers=ada)).json()
        assert [c["id"] for c in used["items"]] == [coupon["id"]]
        claimed_only = (await client.get("/api/coupons/me?status=claimed", headers=ada)).json()
        assert [c["kind"] for c in claimed_only["items"]] == ["task_discount"]
        everything = (await client.get("/api/coupons/me?limit=1&offset=1", headers=ada)).json()
        assert (everything["total"], [c["id"] for c in everything["items"]]) == (2, [coupon["id"]])


async def test_refusals_carry_stable_codes(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        admin, ada, bob = await _people(client, database_url)
        pair = await _publish(client, admin, total_quantity=2)
        later = await _publish(client, admin, valid_from=_moment(days=1))
        task = await _publish(client, admin, kind="task_discount", value=10, min_reward=50)
        coupon = (await _claim(client, ada, pair)).json()
        task_coupon = (await _claim(client, ada, task)).json()

        def code(response: httpx.Response) -> tuple[int, str]:
            return response.status_code, response.json()["code"]

        assert code(await _claim(client, ada, pair)) == (409, "limit_reached")
        assert (await _claim(client, bob, pair)).status_code == 201  # ada's refused claim took no place
        assert code(await _claim(client, admin, pair)) == (409, "sold_out")
        assert code(await _claim(client, bob, later)) == (409, "not_claimable")
        unknown = "00000000-0000-0000-0000-000000000000"
        assert code(await _claim(client, bob, unknown)) == (404, "template_not_found")
        assert code(await client.post(f"/api/coupons/{task_coupon['id']}/redeem", headers=ada)) == (409, "wrong_kind")
        assert (await client.post(f"/api/coupons/{coupon['id']}/redeem", headers=ada)).status_code == 200
        assert code(await client.post(f"/api/coupons/{coupon['id']}/redeem", headers=ada)) == (409, "already_used")
        bad_claim = await client.post("/api/coupons/claim", json={"template_id": "nope"}, headers=ada)
        assert code(bad_claim) == (400, "invalid_request")
        assert (await client.get("/api/coupons/me?status=lost", headers=ada)).status_code == 400
        assert (await client.get("/api/coupons/available?limit=1000", headers=ada)).status_code == 400
        assert (await client.post("/api/coupons/not-a-uuid/redeem", headers=ada)).status_code == 404
        for path in ("/api/coupons/available", "/api/coupons/me"):
            assert (await client.get(path)).status_code == 401


async def test_a_user_never_sees_or_redeems_another_users_coupon(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        admin, ada, bob = await _people(client, database_url)
        template_id = await _publish(client, admin, value=20, per_user_limit=1)
        adas = (await _claim(client, ada, template_id)).json()

        foreign = await client.post(f"/api/coupons/{adas['id']}/redeem", headers=bob)
        unknown = await client.post("/api/coupons/7f2c1f4e-0000-4000-8000-000000000000/redeem", headers=bob)
        assert (foreign.status_code, foreign.json()["code"]) == (404, "coupon_not_found")
        assert foreign.json() == unknown.json()  # nothing tells a foreign id from an unknown one
        assert (await client.get("/api/coupons/me", headers=bob)).json() == {
            "items": [],
            "total": 0,
            "limit": 20,
            "offset": 0,
        }
        assert (await client.get("/api/points/me", headers=bob)).json()["balance"] == 0
        # ada's coupon is untouched and still hers to redeem
        assert (await client.post(f"/api/coupons/{adas['id']}/redeem", headers=ada)).status_code == 200
        assert (await client.get("/api/points/me", headers=ada)).json()["balance"] == 20
