"""The web console's saved replies (search, fill in, admin management, the reply box's
``/`` shortcut in Chromium) and the admins' Reports page (figures, CSV, the chart)."""

from __future__ import annotations

import csv
import io

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.test_browser_console import expect, sign_in
from tests.test_web_console import post, signed_in
from tests.web_console_support import build

SAVED = """
[[saved_replies]]
name = "Greeting"
text = "Hello {customer_name}, {agent_name} here."
"""


@pytest.fixture
async def harness(redis_url, tmp_path):
    """The config's saved replies reach the console through the composition root, as in production."""
    harness = build(tmp_path, redis_url, toml=SAVED)
    yield harness
    await harness.close()


@pytest.fixture
async def client(harness):
    async with TestClient(TestServer(harness.app)) as client:
        yield client


async def test_saved_replies_search_fill_and_admin_management(client, harness):
    cid = await harness.customer_writes("Hi there", name="Carla")
    csrf = await signed_in(client, "alice")
    data = await (await client.get(f"/console/api/saved-replies?q=hel&chat={cid}")).json()
    assert data["replies"] == [{"name": "Greeting", "text": "Hello {customer_name}, {agent_name} here.",
                                "source": "config", "filled": "Hello Carla, Alice here."}]
    assert data["admin"] is False
    # Agents may not manage them.
    response = await post(client, "/console/api/saved-replies", csrf, {"name": "Bye", "text": "Bye!"})
    assert response.status == 403 and (await response.json())["error"] == "not_admin"

    admin = TestClient(TestServer(harness.app))
    await admin.start_server()
    try:
        admin_csrf = await signed_in(admin, "ada")
        response = await post(admin, "/console/api/saved-replies", admin_csrf, {"name": "Bye", "text": "Bye {oops}"})
        assert response.status == 409 and (await response.json())["error"] == "bad_saved_reply"
        assert (await post(admin, "/console/api/saved-replies", admin_csrf,
                           {"name": "Bye", "text": "Bye {customer_name}!"})).status == 200
        # A rename: saved under the new name, the old one deleted.
        assert (await post(admin, "/console/api/saved-replies", admin_csrf,
                           {"name": "Welcome", "text": "Welcome, {customer_name}.", "previous": "Greeting"})).status == 200
        names = [r["name"] for r in (await (await admin.get("/console/api/saved-replies")).json())["replies"]]
        assert names == ["Bye", "Welcome"]
        assert (await post(admin, "/console/api/saved-replies/delete", admin_csrf, {"name": "Bye"})).status == 200
        response = await post(admin, "/console/api/saved-replies/delete", admin_csrf, {"name": "Bye"})
        assert response.status == 409 and (await response.json())["error"] == "no_saved_reply"
    finally:
        await admin.close()


async def test_reports_for_admins_only_with_days_agents_and_csv(client, harness):
    conversations = harness.services.conversations
    cid = await harness.customer_writes("Where is my parcel?", name="Carla")
    await conversations.accept(cid, "alice")
    await conversations.reply(cid, "alice", "On its way.")
    await harness.customer_writes("Invoice?", customer="1002", name="Dan")
    await signed_in(client, "alice")
    response = await client.get("/console/api/reports?since=7d")
    assert response.status == 403
    admin = TestClient(TestServer(harness.app))
    await admin.start_server()
    try:
        await signed_in(admin, "ada")
        data = await (await admin.get("/console/api/reports?since=7d")).json()
        assert data["conversations"] == 2
        assert [r["id"] for r in data["rows"]] == [str(int(cid) + 1), cid]  # newest first
        assert sum(d["chats"] for d in data["days"]) == 2
        assert [(a["agent"], a["chats"], a["messages_out"]) for a in data["agents"]] == [("alice", 1, 1)]
        assert (await admin.get("/console/api/reports?since=nonsense")).status == 400
        text = await (await admin.get("/console/api/reports.csv?since=7d")).text()
        rows = list(csv.reader(io.StringIO(text.split("\n\n")[0])))
        assert rows[0][0] == "id" and [r[0] for r in rows[1:]] == [cid, str(int(cid) + 1)]
    finally:
        await admin.close()


async def test_browser_slash_inserts_a_saved_reply_and_admins_see_the_chart(browser, harness):
    server = TestServer(harness.app)
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    try:
        cid = await harness.customer_writes("Hello, my parcel?", name="Carla Mendes")
        page = await browser.new_page()
        await sign_in(page, base, "alice")
        await page.goto(f"{base}/console#/chat/{cid}")
        await page.click("#ctl-accept")
        await expect(page.locator("#chat-state")).to_have_text("Active")
        await page.fill("#reply-text", "")
        await page.type("#reply-text", "/greet")
        await expect(page.locator("#saved-list li")).to_have_count(1)
        await expect(page.locator("#saved-list li")).to_contain_text("Hello Carla Mendes, Alice here.")
        await page.keyboard.press("Enter")  # picks, does not send
        await expect(page.locator("#reply-text")).to_have_value("Hello Carla Mendes, Alice here.")
        await page.keyboard.press("Enter")  # now sends
        await expect(page.locator("#history")).to_contain_text("Hello Carla Mendes, Alice here.")

        admin = await browser.new_page()
        await sign_in(admin, base, "ada")
        await admin.goto(f"{base}/console#/admin")
        await expect(admin.locator("#saved-rows tr")).to_have_count(1)
        await expect(admin.locator("#report-chart svg rect.bar")).to_have_count(1)
        await expect(admin.locator("#report-agents tr")).to_contain_text("Alice")
        await admin.fill("#saved-name", "Thanks")
        await admin.fill("#saved-text", "Thanks, {customer_name}!")
        await admin.click("#saved-form button[type=submit]")
        await expect(admin.locator("#saved-rows tr")).to_have_count(2)
    finally:
        await server.close()
