"""A control declared once works from both consoles, and each console shows what the core makes available.

The test declares a control of its own, Flag (``Operation`` + a Lua file written here), and removes it
afterwards. chatgate runs in this process with the real Slack console (against the fake Slack server)
and the real web console; the jobs the core queues are run here as a worker would
(``tests.test_seams.drain``). Nothing in the consoles names Flag: the web page shows it as a plain
button from the chat's ``available`` controls, the Slack card as a plain button with its declared label,
both run it through ``Conversations.perform``, and both hear of it by ``EventKind.CHANGED``.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer

import workers.jobs
from agent_console.slack.cards import ELSEWHERE
from agent_console.web.passwords import hash_password
from chatgate.compose import channel_classes, connect, console_classes
from gateway.app import create_app
from gateway.events import EventKind
from gateway.message import State
from gateway.operations import OPERATIONS, Operation, Who, available, controls, register
from tests.fakes.ports import FakeChannel
from tests.fakes.slack import block_action, sign
from tests.test_seams import drain
from tests.test_web_console import post, signed_in

SECRET = "controls-signing-secret"
CHANNEL = "C0CONTROLS"
PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-2", "ada": "ada-secret-3"}
SLACK_USERS = {"alice": "UALICE", "bob": "UBOB", "ada": "UADA"}
_HASHES = {user: hash_password(password, n=2**12) for user, password in PASSWORDS.items()}

FLAG_LUA = """
-- Flag: the assignee marks an active chat for a second look (a control only this test declares).
OPS.flag = function(A, chat)
  redis.call('SET', key('flagged', chat.id), A.agent)
  to_agents(chat.id, 'changed', 0, A.agent, '', A.via)
  return reply({event = 'flagged', id = chat.id})
end
"""

# How the Slack card shows a control besides a button named after it (cards.CARD), as the test expects it.
SLACK_WAYS = {"sound": {"sound_on", "sound_off"}, "reply": {"open_chat", "saved_reply"}}


@pytest.fixture
async def deployment(redis_url, make_config, slack, monkeypatch, tmp_path):
    script = tmp_path / "flag.lua"
    script.write_text(FLAG_LUA)
    flag = Operation("flag", Who.ASSIGNEE, (EventKind.CHANGED,),
                     ("unknown", "closed", "not_accepted", "not_assignee", "not_active"), frozenset({State.ACTIVE}),
                     {State.RESOLVED: "not_active"}, label="Flag", script=script)
    monkeypatch.setitem(OPERATIONS, "flag", flag)  # undone after the test
    register(flag)
    agents = "".join(f"""
[[agents]]
id = "{agent}"
name = "{agent.title()}"
slack = "{SLACK_USERS[agent]}"
password_hash = "{_HASHES[agent]}"
admin = {"true" if agent == "ada" else "false"}
""" for agent in PASSWORDS)
    config = make_config(f"""
[slack]
enabled = true
bot_token = "xoxb-controls"
signing_secret = "{SECRET}"
channel = "{CHANNEL}"
api_url = "{slack.api_url}"
post_rate = 0
[web]
enabled = true
[fakechannel]
enabled = true
[conversation]
auto_close = false
{agents}""")
    channels = [*channel_classes(), FakeChannel]
    consoles = console_classes()
    monkeypatch.setattr(workers.jobs, "connect",
                        lambda config, url, **kw: connect(config, url, channels=channels, consoles=consoles))
    services = connect(config, redis_url, channels=channels, consoles=consoles)
    server = TestServer(create_app(services))
    async with TestClient(server) as alice, TestClient(server) as bob, TestClient(server) as ada:
        clients = {"alice": alice, "bob": bob, "ada": ada}
        csrf = {user: await signed_in(client, user) for user, client in clients.items()}
        yield Deployment(services, config, redis_url, slack, clients, csrf)
    await services.close()


class Deployment:
    def __init__(self, services, config, redis_url, slack, clients, csrf):
        self.services, self.config, self.redis_url, self.slack = services, config, redis_url, slack
        self.clients, self.csrf = clients, csrf
        self.customers = 0

    async def drain(self) -> None:
        await drain(self.config, self.redis_url)

    async def new_chat(self) -> str:
        self.customers += 1
        response = await self.clients["alice"].post("/webhooks/fake", json={
            "customer": f"customer-{self.customers}", "id": f"m{self.customers}", "text": "Where is my parcel?",
            "name": "Carla"})
        received = await response.json()
        assert received["event"] == "created", received
        return received["conversation_id"]

    async def chat(self, agent: str, cid: str) -> dict:
        response = await self.clients[agent].get(f"/console/api/chats/{cid}")
        assert response.status == 200, await response.text()
        return await response.json()

    async def web(self, agent: str, cid: str, control: str, body: dict | None = None):
        return await post(self.clients[agent], f"/console/api/chats/{cid}/{control}", self.csrf[agent], body)

    async def card_ts(self, cid: str) -> str:
        ts = await self.services.store.get_ref("slack-card", cid)
        assert ts, f"no card for chat {cid}"
        return ts

    async def card_elements(self, cid: str) -> list[dict]:
        blocks = self.slack.messages[await self.card_ts(cid)].get("blocks", [])
        return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]

    async def click(self, agent: str, cid: str, action: str) -> None:
        body = block_action(action, cid, SLACK_USERS[agent], CHANNEL, await self.card_ts(cid), self.slack.response_url)
        response = await self.clients["alice"].post("/slack/events", data=body.encode(), headers={
            "Content-Type": "application/x-www-form-urlencoded", **sign(SECRET, body)})
        assert response.status == 200, await response.text()

    async def flagged_by(self, cid: str) -> str:
        return ((await self.services.store.redis.get(self.services.store.key("flagged", cid))) or b"").decode()

    async def web_events(self, cid: str) -> list[tuple[str, str]]:
        stream = await self.services.store.redis.xrange(self.services.store.key("web", "events"))
        events = [json.loads(fields[b"d"]) for _, fields in stream]
        return [(e["kind"], e["by"]) for e in events if e["conversation_id"] == cid]


async def test_a_control_declared_once_is_shown_and_run_by_both_consoles(deployment):
    d = deployment
    cid = await d.new_chat()
    await d.drain()
    assert "flag" not in [e["action_id"] for e in await d.card_elements(cid)]  # a new chat: Accept, Reject
    assert (await d.web("alice", cid, "accept")).status == 200
    await d.drain()

    # The web chat JSON lists it, as declared, for the assignee only.
    mine = await d.chat("alice", cid)
    assert mine["controls"]["flag"] is True
    assert {"name": "flag", "label": "Flag", "arguments": []} in mine["available"]
    for other in ("bob", "ada"):
        theirs = await d.chat(other, cid)
        assert theirs["controls"]["flag"] is False and "flag" not in [c["name"] for c in theirs["available"]]

    # The shared Slack card shows it while the chat is active: a plain button with its declared label.
    button = next(e for e in await d.card_elements(cid) if e["action_id"] == "flag")
    assert (button["type"], button["text"]["text"], button["value"]) == ("button", "Flag", cid)

    # Anyone else is refused, in each console's words, and nothing changes.
    refused = await d.web("bob", cid, "flag")
    assert refused.status == 409
    assert await refused.json() == {"error": "not_assignee",
                                    "message": "Only the agent who accepted this chat (Alice) can do that."}
    before = len(d.slack.ephemerals())
    await d.click("bob", cid, "flag")
    assert d.slack.ephemerals()[before:] == ["Only the agent who accepted this chat (<@UALICE>) can do that."]
    assert await d.flagged_by(cid) == ""

    # The page's API runs it for the assignee; both consoles hear of it (CHANGED): the thread says who used what.
    ran = await d.web("alice", cid, "flag")
    assert ran.status == 200, await ran.text()
    assert await d.flagged_by(cid) == "alice"
    await d.drain()
    thread = d.slack.thread_texts(await d.card_ts(cid))
    assert thread[-1] == "<@UALICE> used Flag on this chat."
    assert (EventKind.CHANGED.value, "alice") in await d.web_events(cid)

    # A click on the card runs it too.
    await d.services.store.redis.delete(d.services.store.key("flagged", cid))
    await d.click("alice", cid, "flag")
    assert await d.flagged_by(cid) == "alice"
    await d.drain()
    assert d.slack.thread_texts(await d.card_ts(cid)).count("<@UALICE> used Flag on this chat.") == 2
    assert [kind for kind, _ in await d.web_events(cid)].count(EventKind.CHANGED.value) == 2

    # Resolved, it is gone from both consoles, and refused with the declared reason.
    assert (await d.web("alice", cid, "resolve")).status == 200
    await d.drain()
    assert (await d.chat("alice", cid))["controls"]["flag"] is False
    assert "flag" not in [e["action_id"] for e in await d.card_elements(cid)]
    refused = await d.web("alice", cid, "flag")
    assert (refused.status, (await refused.json())["error"]) == (409, "not_active")


async def chat_in(d, state: State) -> str:
    """A chat that alice brought to ``state``."""
    cid = await d.new_chat()
    perform = d.services.conversations.perform
    if state is not State.NEW:
        await perform("accept", cid, "alice")
    if state in (State.RESOLVED, State.CLOSED):
        await perform("resolve", cid, "alice")
    if state is State.CLOSED:
        await perform("leave", cid, "alice")
    return cid


async def test_every_console_shows_exactly_what_the_core_makes_available(deployment):
    d = deployment
    chats = {state: await chat_in(d, state) for state in State}
    await d.drain()
    # Slack shows these elsewhere than on the card (thread messages, the Retry of a failure note), and no other.
    assert set(ELSEWHERE) == {"reply", "note", "redeliver"}
    for state, cid in chats.items():
        conversation = await d.services.store.get(cid)
        assert conversation.state is state
        for agent in ("alice", "bob", "ada"):
            chat = await d.chat(agent, cid)
            expected = available(conversation, agent, await d.services.team.role(agent))
            assert [c["name"] for c in chat["available"]] == [op.name for op in expected], (state, agent)
            assert {name for name, on in chat["controls"].items() if on and name != "back"} == \
                {op.name for op in expected}, (state, agent)
            assert set(chat["controls"]) == {"back", *(op.name for op in controls())}
            assert chat["controls"]["back"] == ("leave" in {op.name for op in expected})
        # The shared card: every control of the state, on the card or (ELSEWHERE) in the thread.
        shown = {e["action_id"] for e in await d.card_elements(cid)}
        for op in available(conversation):
            ways = SLACK_WAYS.get(op.name, set()) | {op.name}
            assert ways & shown or op.name in ELSEWHERE, (state, op.name, shown)
        offered = {op.name for op in available(conversation)}
        for action in shown:
            owner = next((name for name, ways in SLACK_WAYS.items() if action in ways), action)
            assert owner in offered, (state, action)  # nothing the state does not offer


async def test_the_page_shows_a_control_it_has_no_ui_of_its_own_for(deployment, browser):
    d = deployment
    cid = await d.new_chat()
    await d.services.conversations.perform("accept", cid, "alice")
    base = str(d.clients["alice"].server.make_url("")).rstrip("/")
    pages = {}
    for agent in ("alice", "bob"):
        page = await browser.new_page()
        await page.goto(f"{base}/console/login")
        await page.fill("#username", agent)
        await page.fill("#password", PASSWORDS[agent])
        await page.click("button[type=submit]")
        await page.wait_for_selector("body[data-ready='1']")
        await page.goto(f"{base}/console#/chat/{quote(cid)}")
        await page.wait_for_selector("#chat:not([hidden])")
        pages[agent] = page
    from playwright.async_api import expect

    await expect(pages["alice"].locator("#chat-state")).to_have_text("Active")
    await expect(pages["bob"].locator("#chat-state")).to_have_text("Active")
    flag = pages["alice"].locator("#ctl-op-flag")
    await expect(flag).to_have_text("Flag")
    await expect(pages["bob"].locator("#ctl-op-flag")).to_have_count(0)  # not his chat
    await flag.click()
    await expect(pages["alice"].locator("#notice")).to_have_text("Flag: done.")  # the API answered: it ran
    assert await d.flagged_by(cid) == "alice"
    for page in pages.values():
        await page.close()
