"""The customer-service endpoints: chats, messages, read markers, agents, and who may see and do what."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import Engine, event

from tests.integration.support_harness import support_on
from tests.support import bearer, login, make_settings, register, running_app, set_role

CHATS = "/api/support/chats"
AGENTS = "/api/support/agents"
ADMIN = "/api/admin/support"


async def _cast(client: httpx.AsyncClient, database_url: str) -> dict[str, Any]:
    """Headers of root (admin), ada and bob (users), ann and art (agents); their ids under ``ids``."""
    ids = {name: (await register(client, name))["id"] for name in ("root", "ada", "bob", "ann", "art")}
    await set_role(database_url, "root", "admin")
    await set_role(database_url, "ann", "agent")
    await set_role(database_url, "art", "agent")
    return {name: bearer(await login(client, name)) for name in ids} | {"ids": ids}


async def _assign(database_url: str) -> int:
    async with support_on(database_url) as support:
        return await support.run(lambda s: s.assign_waiting(datetime.now(UTC)))


async def _open(client: httpx.AsyncClient, who: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post(CHATS, json=body, headers=who)
    assert response.status_code == 201, response.text
    opened: dict[str, Any] = response.json()
    return opened


async def _say(client: httpx.AsyncClient, who: dict[str, str], chat_id: str, body: str) -> dict[str, Any]:
    response = await client.post(f"{CHATS}/{chat_id}/messages", json={"body": body}, headers=who)
    assert response.status_code == 201, response.text
    said: dict[str, Any] = response.json()
    return said


async def test_a_user_and_an_agent_talk_and_unread_counts_follow(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        people = await _cast(client, database_url)
        ada, ann = people["ada"], people["ann"]
        went_online = await client.put(f"{AGENTS}/me/status", json={"status": "online"}, headers=ann)
        assert went_online.status_code == 200, went_online.text
        assert (went_online.json()["status"], went_online.json()["max_chats"]) == ("online", 5)

        chat = await _open(client, ada, subject="  Payout missing ", message="  Where is my payout?  ")
        assert (chat["status"], chat["subject"], chat["message_count"], chat["unread_count"]) == (
            "waiting",
            "Payout missing",
            1,
            0,
        )
        assert await _assign(database_url) == 1

        mine = (await client.get(f"{AGENTS}/me/chats", headers=ann)).json()
        assert [item["id"] for item in mine["items"]] == [chat["id"]]
        assert mine["items"][0]["unread_count"] == 1
        assert mine["items"][0]["last_message"]["body"] == "Where is my payout?"
        assert (await client.get(f"{AGENTS}/me", headers=ann)).json()["active_chats"] == 1

        reply = await _say(client, ann, chat["id"], "Let me check.")
        assert (reply["seq"], reply["sender_role"], reply["sender_id"]) == (2, "agent", people["ids"]["ann"])
        await _say(client, ann, chat["id"], "It was sent today.")
        listed = (await client.get(f"{CHATS}/me", headers=ada)).json()
        assert listed["total"] == 1
        assert (listed["items"][0]["unread_count"], listed["items"][0]["last_message"]["body"]) == (
            2,
            "It was sent today.",
        )
        # read up to the first reply only, then all; the marker never moves back
        partly = await client.post(f"{CHATS}/{chat['id']}/read", json={"up_to_seq": 2}, headers=ada)
        assert partly.status_code == 200, partly.text
        assert partly.json()["unread_count"] == 1
        fully = await client.post(f"{CHATS}/{chat['id']}/read", headers=ada)
        assert fully.json()["unread_count"] == 0
        back = await client.post(f"{CHATS}/{chat['id']}/read", json={"up_to_seq": 1}, headers=ada)
        assert back.json()["unread_count"] == 0
        beyond = await client.post(f"{CHATS}/{chat['id']}/read", json={"up_to_seq": 99}, headers=ada)
        assert beyond.json()["unread_count"] == 0

        closed = await client.post(f"{CHATS}/{chat['id']}/close", headers=ann)
        assert closed.status_code == 200, closed.text
        assert (closed.json()["status"], closed.json()["close_reason"]) == ("closed", "agent")
        late = await client.post(f"{CHATS}/{chat['id']}/messages", json={"body": "Thanks!"}, headers=ada)
        assert (late.status_code, late.json()["code"]) == (409, "chat_closed")
        assert {"code": "closed", "field": "status"}.items() <= late.json()["errors"][0].items()
        again = await client.post(f"{CHATS}/{chat['id']}/close", headers=ada)
        assert (again.status_code, again.json()["code"]) == (409, "chat_closed")
        history = (await client.get(f"{CHATS}/{chat['id']}/messages", headers=ada)).json()
        assert [(m["seq"], m["sender_role"]) for m in history["items"]] == [
            (4, "system"),
            (3, "agent"),
            (2, "agent"),
            (1, "user"),
        ]
        assert history["next_cursor"] is None
        # a closed chat makes room for a new one
        assert (await _open(client, ada))["status"] == "waiting"


async def test_only_the_chats_user_its_agent_and_admins_see_it(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        people = await _cast(client, database_url)
        ada, bob, ann, art, root = (people[name] for name in ("ada", "bob", "ann", "art", "root"))
        await client.put(f"{AGENTS}/me/status", json={"status": "online"}, headers=ann)
        chat = await _open(client, ada, message="Hello")
        assert await _assign(database_url) == 1
        path = f"{CHATS}/{chat['id']}"

        for who in (bob, art):  # another user; an agent it is not assigned to
            for method, url, body in (
                ("GET", path, None),
                ("GET", f"{path}/messages", None),
                ("POST", f"{path}/messages", {"body": "Hi"}),
                ("POST", f"{path}/read", None),
                ("POST", f"{path}/close", None),
            ):
                response = await client.request(method, url, json=body, headers=who)
                assert (response.status_code, response.json()["code"]) == (404, "chat_not_found"), (method, url)
        assert (await client.get(f"{CHATS}/me", headers=bob)).json()["total"] == 0
        assert (await client.get(f"{AGENTS}/me/chats", headers=art)).json()["total"] == 0

        # admins read everything; they do not write in other people's chats
        assert (await client.get(path, headers=root)).json()["unread_count"] is None
        assert (await client.get(f"{path}/messages", headers=root)).json()["items"][0]["body"] == "Hello"
        everything = (await client.get(f"{ADMIN}/chats", params={"status": "assigned"}, headers=root)).json()
        assert [item["id"] for item in everything["items"]] == [chat["id"]]
        butting_in = await client.post(f"{path}/messages", json={"body": "Hi"}, headers=root)
        assert (butting_in.status_code, butting_in.json()["code"]) == (403, "not_participant")
        assert (await client.post(f"{path}/read", headers=root)).status_code == 403

        # the role guards
        for who in (ada, root):
            refused = await client.put(f"{AGENTS}/me/status", json={"status": "online"}, headers=who)
            assert refused.status_code == 403
            assert (await client.get(f"{AGENTS}/me/chats", headers=who)).status_code == 403
            assert (await client.get(f"{AGENTS}/me", headers=who)).status_code == 403
        for who in (ada, ann):
            assert (await client.get(f"{ADMIN}/chats", headers=who)).status_code == 403
            assert (
                await client.put(f"{ADMIN}/agents/{people['ids']['ann']}", json={"max_chats": 9}, headers=who)
            ).status_code == 403
        for method, url in (("GET", f"{CHATS}/me"), ("POST", CHATS), ("GET", path), ("GET", f"{AGENTS}/me")):
            assert (await client.request(method, url)).status_code == 401

        # an admin closes any chat
        closed = await client.post(f"{path}/close", headers=root)
        assert (closed.status_code, closed.json()["close_reason"]) == (200, "admin")


async def test_one_open_chat_per_user_and_the_rules_of_a_message(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        people = await _cast(client, database_url)
        ada = people["ada"]
        chat = await _open(client, ada)
        assert chat["message_count"] == 0
        second = await client.post(CHATS, json={}, headers=ada)
        assert (second.status_code, second.json()["code"]) == (409, "chat_already_open")

        for body in ("", "   \n ", "x" * 4001):
            refused = await client.post(f"{CHATS}/{chat['id']}/messages", json={"body": body}, headers=ada)
            assert (refused.status_code, refused.json()["code"]) == (422, "invalid_message"), body[:10]
            assert refused.json()["errors"][0]["field"] == "body"
        assert (await _say(client, ada, chat["id"], " " + "x" * 4000 + " "))["body"] == "x" * 4000
        missing = await client.post(f"{CHATS}/{chat['id']}/messages", json={}, headers=ada)
        assert missing.status_code == 400
        bad_subject = await client.post(CHATS, json={"subject": "  "}, headers=people["bob"])
        assert (bad_subject.status_code, bad_subject.json()["code"]) == (422, "invalid_chat")
        for cursor in ("nonsense", "czE6MA", "czE6LTE"):  # garbage, seq 0, seq -1
            paged = await client.get(f"{CHATS}/{chat['id']}/messages", params={"cursor": cursor}, headers=ada)
            assert (paged.status_code, paged.json()["code"]) == (422, "invalid_cursor"), cursor
        too_many = await client.get(f"{CHATS}/{chat['id']}/messages", params={"limit": 101}, headers=ada)
        assert too_many.status_code == 400
        unknown = await client.get(f"{CHATS}/00000000-0000-4000-8000-000000000000", headers=ada)
        assert (unknown.status_code, unknown.json()["code"]) == (404, "chat_not_found")


async def test_history_pages_newest_first_without_gaps_or_repeats_while_messages_arrive(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        people = await _cast(client, database_url)
        ada = people["ada"]
        chat = await _open(client, ada)
        for n in range(1, 11):
            await _say(client, ada, chat["id"], f"m{n}")
        seen: list[str] = []
        cursor = None
        extra = 0
        while True:
            params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
            page = (await client.get(f"{CHATS}/{chat['id']}/messages", params=params, headers=ada)).json()
            seen += [item["body"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            extra += 1
            await _say(client, ada, chat["id"], f"late{extra}")  # arrives between two pages
        assert seen == [f"m{n}" for n in range(10, 0, -1)]
        newest = (await client.get(f"{CHATS}/{chat['id']}/messages", params={"limit": 2}, headers=ada)).json()
        assert [item["body"] for item in newest["items"]] == [f"late{extra}", f"late{extra - 1}"]


async def test_agents_status_and_an_admins_override_of_their_maximum(database_url: str) -> None:
    async with running_app(make_settings(database_url, support_max_chats_per_agent=3)) as (_, client):
        people = await _cast(client, database_url)
        ann, root, ids = people["ann"], people["root"], people["ids"]
        fresh = (await client.get(f"{AGENTS}/me", headers=ann)).json()
        assert (fresh["status"], fresh["max_chats"], fresh["max_chats_override"]) == ("offline", 3, None)
        raised = await client.put(f"{ADMIN}/agents/{ids['ann']}", json={"max_chats": 8}, headers=root)
        assert raised.status_code == 200, raised.text
        assert (raised.json()["max_chats"], raised.json()["max_chats_override"], raised.json()["status"]) == (
            8,
            8,
            "offline",
        )
        online = (await client.put(f"{AGENTS}/me/status", json={"status": "online"}, headers=ann)).json()
        assert (online["status"], online["max_chats"]) == ("online", 8)
        cleared = await client.put(f"{ADMIN}/agents/{ids['ann']}", json={"max_chats": None}, headers=root)
        assert (cleared.json()["max_chats"], cleared.json()["status"]) == (3, "online")
        for value in (0, 101):
            refused = await client.put(f"{ADMIN}/agents/{ids['ann']}", json={"max_chats": value}, headers=root)
            assert (refused.status_code, refused.json()["errors"][0]["code"]) == (422, "out_of_range")
        not_agent = await client.put(f"{ADMIN}/agents/{ids['ada']}", json={"max_chats": 4}, headers=root)
        assert (not_agent.status_code, not_agent.json()["code"]) == (404, "agent_not_found")
        bad_status = await client.put(f"{AGENTS}/me/status", json={"status": "away"}, headers=ann)
        assert bad_status.status_code == 400


@contextmanager
def _statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.strip().upper() != "BEGIN":  # SQLite's explicit transaction start is no query
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", count)


async def test_chat_lists_take_a_fixed_number_of_statements_whatever_the_page_size(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, client):
        people = await _cast(client, database_url)
        ada, ann, root = people["ada"], people["ann"], people["root"]
        await client.put(f"{AGENTS}/me/status", json={"status": "online"}, headers=ann)
        await client.put(f"{ADMIN}/agents/{people['ids']['ann']}", json={"max_chats": 100}, headers=root)
        for n in range(25):
            chat = await _open(client, ada, message=f"question {n}")
            await _assign(database_url)
            await _say(client, ann, chat["id"], f"answer {n}")
            await client.post(f"{CHATS}/{chat['id']}/close", headers=ada)
        for who, url in ((ada, f"{CHATS}/me"), (ann, f"{AGENTS}/me/chats"), (root, f"{ADMIN}/chats")):
            counts = []
            for limit in (1, 20):
                with _statements() as seen:
                    response = await client.get(url, params={"limit": limit}, headers=who)
                assert response.status_code == 200, response.text
                assert len(response.json()["items"]) == limit
                assert all(item["last_message"] is not None for item in response.json()["items"])
                counts.append(len(seen))
            assert counts[0] == counts[1], (url, counts)
            assert counts[1] <= 4, (url, counts)  # the caller's row, the page, the total, the newest messages
