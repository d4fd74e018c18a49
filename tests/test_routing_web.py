"""Routing in the web console's API: the Inbox by topic team, capacity refusals and who has
room, Transfer with a note and who held the chat when, escalated rows."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.test_web_console import post, signed_in
from tests.web_console_support import build

ROUTING = """
[routing]
max_active_per_agent = 1

[[topics]]
name = "vip"
keywords = ["vip"]
agents = ["bob"]
"""


@pytest.fixture
async def harness(redis_url, tmp_path):
    harness = build(tmp_path, redis_url, ROUTING)
    yield harness
    await harness.close()


async def client_of(harness):
    client = TestClient(TestServer(harness.app))
    await client.start_server()
    return client


async def inbox_ids(client) -> list[str]:
    data = await (await client.get("/console/api/lists?tab=inbox")).json()
    return [row["id"] for row in data["rows"]]


async def test_topic_team_capacity_transfer_and_escalation_in_the_web_console(harness):
    alice, bob = await client_of(harness), await client_of(harness)
    try:
        a_csrf, b_csrf = await signed_in(alice, "alice"), await signed_in(bob, "bob")
        vip = await harness.customer_writes("I am a VIP customer", customer="1")
        plain = await harness.customer_writes("Where is my parcel", customer="2")
        assert await inbox_ids(alice) == [plain]
        assert sorted(await inbox_ids(bob)) == sorted([vip, plain])
        refused = await post(alice, f"/console/api/chats/{vip}/accept", a_csrf)
        assert refused.status == 409 and (await refused.json())["error"] == "not_in_team"
        assert "topic (vip) is for its own team" in (await refused.json())["message"]
        assert (await post(bob, f"/console/api/chats/{vip}/accept", b_csrf)).status == 200
        # Bob is at capacity (1): a second accept is refused with the reason; the lists show the room.
        refused = await post(bob, f"/console/api/chats/{plain}/accept", b_csrf)
        assert refused.status == 409 and (await refused.json())["error"] == "at_capacity"
        assert "as many active chats as allowed" in (await refused.json())["message"]
        room = (await (await bob.get("/console/api/lists?tab=inbox")).json())["room"]
        assert {r["id"]: (r["active"], r["capacity"]) for r in room}["bob"] == (1, 1)
        # Bob transfers the VIP chat to Alice, with a note; the chat view keeps who held it when.
        chat = await (await bob.get(f"/console/api/chats/{vip}")).json()
        assert chat["controls"]["transfer"] and any(a["id"] == "alice" for a in chat["agents"])
        moved = await post(bob, f"/console/api/chats/{vip}/transfer", b_csrf, {"to": "alice", "note": "Call back"})
        assert moved.status == 200, await moved.text()
        chat = await (await alice.get(f"/console/api/chats/{vip}")).json()
        assert chat["assignee"] == "alice" and chat["mine"]
        assert [h["agent"] for h in chat["holders"]] == ["bob", "alice"] and chat["holders"][0]["to"]
        assert chat["history"][-1]["direction"] == "note" and chat["history"][-1]["text"] == "Call back"
        # Alice is full now: a transfer back to her from anyone is refused for room.
        refused = await post(alice, f"/console/api/chats/{vip}/transfer", a_csrf, {"to": "alice"})
        assert (await refused.json())["error"] == "transfer_self"
        # An escalated chat is flagged in the rows (the page highlights it and plays a sound).
        assert await harness.services.conversations.escalate(plain) == 1
        rows = (await (await alice.get("/console/api/lists?tab=inbox")).json())["rows"]
        assert [r["escalations"] for r in rows if r["id"] == plain] == [1]
    finally:
        await alice.close()
        await bob.close()
