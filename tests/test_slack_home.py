"""The Slack App Home: Inbox / Assigned tabs, team figures, filters, paging, refusals,
the admins' auto-close switch and the paced Home refresh.

In-process tests run the real bolt app (signed requests through its aiohttp
handler) on the real Redis, with a scripted clock; the fake Slack records every
``views.publish``. The auto-close switch and the refresh under a burst need the
workers, so they run ``chatgate web`` and ``chatgate worker`` as processes.
"""

from __future__ import annotations

import calendar
import itertools
import json
import time

import pytest
import redis as redis_sync
from aiohttp.test_utils import TestClient, TestServer

from agent_console.slack.deliver import deliver_event
from chatgate.compose import connect
from gateway.app import create_app
from gateway.events import AgentEvent
from gateway.message import InboundMessage
from tests import conftest
from tests.fakes.slack import FakeSlack, block_action, home_action, home_opened, sign
from tests.fakes.telegram import text_update
from tests.conftest import pending_timers
from tests.support import eventually, eventually_async, keys
from workers.outbox import drain

# The store's keys (``Store.key``) under the default prefix, for this module's plain Redis clients.
KEY = keys()

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0SUPPORT"
AGENT1, AGENT2, ADMIN, OUTSIDER = "UAGENT1", "UAGENT2", "UADMIN1", "UOUTSIDE1"

# A Monday in March, UTC: the scripted day starts at 09:00.
DAY = calendar.timegm((2026, 3, 2, 0, 0, 0))


def at(hours: int, minutes: int = 0) -> float:
    return DAY + hours * 3600 + minutes * 60


def team(agents: tuple[str, ...] = (AGENT1, AGENT2)) -> str:
    """The agents (their chatgate ids are their Slack ids) and the admin, as [[agents]] tables."""
    return "".join(f'[[agents]]\nid = "{a}"\nslack = "{a}"\n' for a in agents) + \
        f'[[agents]]\nid = "{ADMIN}"\nslack = "{ADMIN}"\nadmin = true\n' + TOPICS


def config_text(slack: FakeSlack, extra: str = "", agents: tuple[str, ...] = (AGENT1, AGENT2)) -> str:
    return f"""
[slack]
enabled = true
bot_token = "xoxb-test"
signing_secret = "{SECRET}"
channel = "{CHANNEL}"
api_url = "{slack.api_url}"
# The fake enforces no rate limit: no pacing either (tests/test_pacing.py covers it).
post_rate = 0
{extra}
[telegram]
enabled = true
token = "123456:home-token"
secret_token = "home-secret"
api_url = "http://127.0.0.1:9/bot"
[twilio]
enabled = true
account_sid = "AC00000000000000000000000000000000"
auth_token = "home-twilio-token"
sms_from = "+15005550006"
whatsapp_from = "whatsapp:+14155238886"
api_url = "http://127.0.0.1:9"
{team(agents)}"""


TOPICS = conftest.TOPICS + """
[[topics]]
name = "account"
keywords = ["password"]
"""


class Console:
    """The real bolt app in-process: Slack requests signed as Slack signs them."""

    def __init__(self, http: TestClient, slack: FakeSlack, conversations, services, clock):
        self.http = http
        self.slack = slack
        self.conversations = conversations
        self.services = services
        self.store = services.store
        self.clock = clock
        self._ids = itertools.count(1)

    async def _post(self, body: str, content_type: str) -> int:
        response = await self.http.post("/slack/events", data=body.encode(),
                                        headers={"Content-Type": content_type, **sign(SECRET, body)})
        return response.status

    async def open_home(self, user: str) -> dict:
        """``app_home_opened``; the view Slack got (bolt answers events first, then publishes)."""
        before = len(self.slack.calls_to("views.publish"))
        assert await self._post(home_opened(user), "application/json") == 200
        await self.published(before)
        return self.slack.home_views[user]

    async def click(self, user: str, action_id: str, value: str = "", selected: str = "") -> dict:
        before = len(self.slack.calls_to("views.publish"))
        assert await self._post(home_action(action_id, user, value, selected), "application/x-www-form-urlencoded") == 200
        await self.published(before)
        return self.slack.home_views[user]

    async def published(self, before: int) -> None:
        await eventually_async(lambda: len(self.slack.calls_to("views.publish")) > before, timeout=4,
                               what=f"a views.publish after the first {before}")

    async def customer(self, name: str, text: str, channel: str = "telegram", when: float | None = None) -> str:
        if when is not None:
            self.clock.now = when
        received = await self.conversations.receive(InboundMessage(
            channel=channel, customer_id=f"{channel}-{name}", platform_id=f"p{next(self._ids)}", text=text, name=name))
        return received.conversation_id

    async def cards(self) -> None:
        """What the workers do with the agent outboxes: post and update the cards in Slack."""
        console = self.services.consoles["slack"]
        for key in await self.store.redis.keys(self.store.console_outbox("slack", "*")):
            if await self.store.redis.type(key) != b"list":
                continue  # an outbox's lock or job mark
            await drain(self.store, key.decode(),
                        lambda item, _maybe_sent: deliver_event(console, AgentEvent.from_json(item), self.services))


@pytest.fixture
async def console(redis_url, make_config, clock):
    slack = FakeSlack().start()
    config = make_config(config_text(slack))
    clock.now = at(9)
    services = connect(config, redis_url, clock=clock)
    http = TestClient(TestServer(create_app(services)))  # closes the services on cleanup
    await http.start_server()
    try:
        yield Console(http, slack, services.conversations, services, clock)
    finally:
        await http.close()
        slack.stop()


# -- reading a published view -------------------------------------------------------


def texts(view: dict) -> str:
    return json.dumps(view["blocks"], ensure_ascii=False)


def rows(view: dict) -> list[dict]:
    """Each listed chat: its id, headline, columns and buttons."""
    found = []
    blocks = view["blocks"]
    for index, block in enumerate(blocks):
        if not block.get("block_id", "").startswith("home-row-") or block["type"] != "section":
            continue
        conversation_id = block["block_id"].removeprefix("home-row-")
        columns = {}
        for f in block["fields"]:
            title, value = f["text"].split("\n", 1)
            columns[title.strip("*")] = value
        actions = {}
        follower = blocks[index + 1] if index + 1 < len(blocks) else {}
        if follower.get("block_id") == f"home-row-actions-{conversation_id}":
            actions = {e["action_id"]: e for e in follower["elements"]}
        found.append({"id": conversation_id, "headline": block["text"]["text"], "columns": columns,
                      "actions": actions})
    return found


def names(view: dict) -> list[str]:
    return [r["headline"].split("*")[1] for r in rows(view)]


def figures(view: dict) -> dict[str, str]:
    block = next(b for b in view["blocks"] if b.get("block_id") == "home-figures")
    return dict(f["text"].strip("*").split("*\n", 1) for f in block["fields"])


def action_ids(view: dict) -> set[str]:
    return {e.get("action_id") for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]}


def notice(view: dict) -> str:
    block = next((b for b in view["blocks"] if b.get("block_id") == "home-notice"), None)
    return block["text"]["text"] if block else ""


# -- a scripted day ------------------------------------------------------------------


async def scripted_day(c: Console) -> dict[str, str]:
    """Five customers on three channels, accepts, replies, a resolve with rating, a close, a decline."""
    ids = {}
    ids["ada"] = await c.customer("Ada", "My parcel is late", when=at(9, 0))
    ids["bob"] = await c.customer("Bob", "I want a refund for invoice 12", channel="sms", when=at(9, 5))
    ids["cy"] = await c.customer("Cy", "hello there", channel="whatsapp", when=at(9, 10))
    ids["dee"] = await c.customer("Dee", "order #55 is missing", when=at(9, 12))
    conv = c.conversations
    c.clock.now = at(9, 20)
    await conv.accept(ids["ada"], AGENT1)
    c.clock.now = at(9, 21)
    await conv.reply(ids["ada"], AGENT1, "Hi Ada, checking")  # first response 21 min
    c.clock.now = at(9, 30)
    await conv.accept(ids["bob"], AGENT1)
    c.clock.now = at(9, 31)
    await conv.reply(ids["bob"], AGENT1, "Refund on its way")  # 26 min
    c.clock.now = at(9, 40)
    await conv.resolve(ids["bob"], AGENT1)
    await c.customer("Bob", "4", channel="sms", when=at(9, 41))  # rating
    c.clock.now = at(9, 45)
    await conv.accept(ids["cy"], AGENT2)
    c.clock.now = at(9, 46)
    await conv.reply(ids["cy"], AGENT2, "Hello Cy")  # 36 min
    c.clock.now = at(9, 50)
    await conv.resolve(ids["cy"], AGENT2)
    await c.customer("Cy", "5", channel="whatsapp", when=at(9, 51))
    c.clock.now = at(9, 52)
    assert await conv.leave(ids["cy"], AGENT2) == "closed"
    c.clock.now = at(9, 55)
    await conv.reject(ids["dee"], AGENT2)
    await c.customer("Ada", "Any news?", when=at(10, 0))
    ids["eve"] = await c.customer("Eve", "I forgot my password", when=at(10, 5))
    c.clock.now = at(10, 30)
    await c.cards()
    return ids


async def test_tabs_show_the_right_rows_order_columns_and_figures_after_a_day(console):
    c = console
    ids = await scripted_day(c)

    inbox = await c.open_home(AGENT1)
    assert figures(inbox) == {"Chats waiting": "2", "Median first response today": "26m 00s",
                              "Average rating this week": "4.5/5 (2 ratings)"}
    # Inbox: the new chats, most recent activity first, each with Open chat and Accept.
    assert names(inbox) == ["Eve", "Dee"]
    eve, dee = rows(inbox)
    assert eve["columns"] == {"First Response": "–", "Duration": "25m 00s · 1 message", "Rating": "–",
                              "Channel": "Telegram", "Topic": "account"}
    assert dee["columns"]["Topic"] == "delivery" and dee["columns"]["Duration"] == "1h 18m · 1 message"
    assert set(eve["actions"]) == {"home_open_chat", "accept"}
    assert eve["actions"]["accept"]["value"] == ids["eve"]
    card_ts = await c.store.get_ref("slack-card", ids["eve"])
    assert eve["actions"]["home_open_chat"]["url"] == \
        f"https://example.slack.com/archives/{CHANNEL}/p{card_ts.replace('.', '')}"

    # The agent who declined Dee does not see her; the same figures for everyone.
    inbox2 = await c.open_home(AGENT2)
    assert names(inbox2) == ["Eve"]
    assert figures(inbox2) == figures(inbox)

    # Assigned: the agent's own open chats, Ada (wrote again at 10:00) before Bob (rated at 9:41).
    assigned = await c.click(AGENT1, "home_tab_assigned", "assigned")
    assert names(assigned) == ["Ada", "Bob"]
    ada, bob = rows(assigned)
    assert "*Active chat*" in ada["headline"] and "Resolved" in bob["headline"]
    assert ada["columns"] == {"First Response": "21m 00s", "Duration": "1h 30m · 3 messages", "Rating": "–",
                              "Channel": "Telegram", "Topic": "delivery"}
    assert bob["columns"] == {"First Response": "26m 00s", "Duration": "1h 25m · 3 messages", "Rating": "4/5",
                              "Channel": "SMS", "Topic": "billing"}
    assert set(ada["actions"]) == {"home_open_chat"}  # no Accept outside the Inbox
    # Agent 2's only chat is closed, so their Assigned tab is empty.
    assert rows(await c.click(AGENT2, "home_tab_assigned", "assigned")) == []
    assert "No chats assigned to you" in texts(c.slack.home_views[AGENT2])

    # The tab is remembered: opening Home again shows Assigned.
    assert names(await c.open_home(AGENT1)) == ["Ada", "Bob"]
    # Only admins see the auto-close switch.
    assert "home_auto_close" not in action_ids(assigned)
    admin_home = await c.open_home(ADMIN)
    assert {"home_auto_close", "home_auto_close_after"} <= action_ids(admin_home)


async def test_accept_from_the_inbox_calls_the_core_and_a_second_agent_is_told(console):
    c = console
    ids = await scripted_day(c)
    await c.open_home(AGENT1)
    view = await c.click(AGENT1, "accept", ids["eve"])
    assert "You accepted the chat with *Eve*" in notice(view)
    assert names(view) == ["Dee"]
    conversation = await c.store.get(ids["eve"])
    assert conversation.state.value == "active" and conversation.assignee == AGENT1

    # Agent 2 clicks Accept on a stale Home: refused in their Home, nothing changes.
    view = await c.click(AGENT2, "accept", ids["eve"])
    assert "Too late" in notice(view) and f"<@{AGENT1}>" in notice(view)
    assert (await c.store.get(ids["eve"])).assignee == AGENT1
    # The first agent's Assigned tab now lists Eve first.
    assert names(await c.click(AGENT1, "home_tab_assigned", "assigned"))[0] == "Eve"


async def test_paging_and_filters(console):
    c = console
    for n in range(23):
        channel = ("telegram", "sms", "whatsapp")[n % 3]
        text = "refund please" if n % 4 == 0 else "hello"
        await c.customer(f"C{n:02d}", text, channel=channel, when=at(9, n))
    c.clock.now = at(11)

    first = await c.open_home(AGENT1)
    assert names(first) == [f"C{n:02d}" for n in range(22, 12, -1)]
    assert "1–10 of 23" in texts(first)
    assert "home_page_previous" not in action_ids(first)
    second = await c.click(AGENT1, "home_page_next", "10")
    assert names(second) == [f"C{n:02d}" for n in range(12, 2, -1)]
    assert {"home_page_previous", "home_page_next"} <= action_ids(second)
    third = await c.click(AGENT1, "home_page_next", "20")
    assert names(third) == ["C02", "C01", "C00"] and "home_page_next" not in action_ids(third)
    assert "21–23 of 23" in texts(third)
    assert names(await c.click(AGENT1, "home_page_previous", "10")) == names(second)

    # A channel filter starts again at page one and keeps only that channel.
    sms = await c.click(AGENT1, "home_filter_channel", selected="sms")
    assert names(sms) == [f"C{n:02d}" for n in range(22, -1, -1) if n % 3 == 1][:10]
    assert all(r["columns"]["Channel"] == "SMS" for r in rows(sms))
    # Topic on top of channel: SMS and billing.
    both = await c.click(AGENT1, "home_filter_topic", selected="billing")
    assert names(both) == [f"C{n:02d}" for n in range(22, -1, -1) if n % 3 == 1 and n % 4 == 0]
    # The filters are kept across a refresh (opening Home again).
    assert names(await c.open_home(AGENT1)) == names(both)
    # "All channels" keeps the topic.
    billing = await c.click(AGENT1, "home_filter_channel", selected="any")
    assert names(billing) == [f"C{n:02d}" for n in range(22, -1, -1) if n % 4 == 0]
    # A forged filter value changes nothing.
    view = await c.click(AGENT1, "home_filter_topic", selected="no-such-topic")
    assert "no topic" in notice(view) and names(view) == names(billing)


async def test_a_non_agent_gets_the_refusal_view_and_changes_nothing(console):
    c = console
    ids = await scripted_day(c)
    view = await c.open_home(OUTSIDER)
    assert "You are not on the support team" in texts(view)
    assert f"<@{ADMIN}>" in texts(view) and rows(view) == []
    assert OUTSIDER.encode() not in await c.store.redis.smembers(c.store.key("home", "viewers"))
    # A forged Accept from their Home: the same refusal view, the chat still waits.
    view = await c.click(OUTSIDER, "accept", ids["eve"])
    assert "You are not on the support team" in texts(view)
    assert (await c.store.get(ids["eve"])).state.value == "new"


async def test_only_admins_can_flip_auto_close(console):
    c = console
    before = await c.conversations.auto_close_setting()
    view = await c.click(AGENT1, "home_auto_close", "off")
    assert "Only a chatgate admin" in notice(view)
    assert await c.conversations.auto_close_setting() == before
    assert await c.store.redis.exists(c.store.key("settings")) == 0

    await c.open_home(ADMIN)
    view = await c.click(ADMIN, "home_auto_close_after", selected=str(30 * 60))
    assert "Auto-close is on" in notice(view)
    setting = await c.conversations.auto_close_setting()
    assert setting.enabled and setting.after == 1800
    assert "on, 30m 00s after resolve" in texts(view)


# -- through the real web and worker processes ----------------------------------------


@pytest.fixture
def processes(deployment):
    """Start chatgate web + worker with extra [slack] and [conversation] settings; yields a starter."""

    def start(slack: dict | None = None, conversation: dict | None = None,
              agents: tuple[str, ...] = (AGENT1, AGENT2)) -> "Remote":
        started = deployment(slack=slack or {}, conversation=conversation or {}, tail=team(agents))
        return Remote(started)

    return start


class Remote(conftest.Gateway):
    """The running chatgate processes, reached over HTTP like Slack and Telegram reach them."""

    def __init__(self, started: conftest.Deployment):
        super().__init__(started.ports[0], started.slack, redis_url=started.redis_url)
        self.deployment = started
        self.fake_telegram = started.telegram
        self._updates = itertools.count(1)

    def slack_form(self, body: str) -> int:
        return super().slack_form(body)[0]

    def open_home(self, user: str) -> None:
        assert self.slack_event(home_opened(user))[0] == 200

    def customer(self, chat_id: int, text: str) -> None:
        assert self.telegram(text_update(next(self._updates), chat_id, text))[0] == 200

    def card_ts(self, conversation_id: str) -> str:
        """The chat card's ts, as chatgate noted it when the worker posted the card."""
        refs = self.store()
        found = eventually(lambda: refs.hget(KEY("ref", "slack-card"), conversation_id),
                           what=f"the card of chat {conversation_id}")
        return found.decode()

    def card_click(self, action: str, conversation_id: str, user: str) -> None:
        ts = self.card_ts(conversation_id)
        assert self.slack_form(block_action(action, conversation_id, user, CHANNEL, ts, self.slack.response_url)) == 200


def state(redis_url: str, conversation_id: str) -> str:
    return redis_sync.Redis.from_url(redis_url).hget(KEY("conv", conversation_id), "state").decode()


def scheduled_auto_closes(redis_url: str) -> set[str]:
    """The chats with an auto-close pending."""
    return {subject for kind, subject in pending_timers(redis_url) if kind == "auto_close"}


def test_auto_close_switch_both_ways_with_chats_pending(processes):
    remote = processes(conversation={"auto_close": True, "auto_close_after": 4})
    redis_url = remote.redis_url
    for chat_id, text in ((9001, "My parcel is late"), (9002, "Refund please, invoice 7")):
        remote.customer(chat_id, text)
    ids = ["1", "2"]
    for conversation_id in ids:
        remote.card_click("accept", conversation_id, AGENT1)
        eventually(lambda: state(redis_url, conversation_id) == "active", what="the accept")
        remote.card_click("resolve", conversation_id, AGENT1)
        eventually(lambda: state(redis_url, conversation_id) == "resolved", what="the resolve")
    # Bolt answers a click before its handler is done: the schedule follows the resolve.
    eventually(lambda: scheduled_auto_closes(redis_url) == set(ids),
               what="both auto-closes scheduled")

    # Off: the pending auto-closes are gone, and the chats stay resolved past the delay.
    remote.open_home(ADMIN)
    eventually(lambda: ADMIN in remote.slack.home_views, what="the admin's Home")
    assert remote.slack_form(home_action("home_auto_close", ADMIN, "off")) == 200
    eventually(lambda: "Auto-close is off" in json.dumps(remote.slack.home_views[ADMIN]), what="the switch")
    assert scheduled_auto_closes(redis_url) == set()
    remote.deployment.wait_idle(scheduled=True)  # nothing is left that could close them
    assert [state(redis_url, i) for i in ids] == ["resolved", "resolved"]
    # A chat resolved while it is off is not scheduled either.
    remote.customer(9003, "hello")
    remote.card_click("accept", "3", AGENT2)
    eventually(lambda: state(redis_url, "3") == "active", what="the accept")
    remote.card_click("resolve", "3", AGENT2)
    eventually(lambda: state(redis_url, "3") == "resolved", what="the resolve")
    remote.deployment.wait_idle(scheduled=True)  # the resolve's work is done and scheduled nothing
    assert scheduled_auto_closes(redis_url) == set()

    # On: every resolved chat is scheduled (4 s from now) and closes.
    switched_at = time.time()
    assert remote.slack_form(home_action("home_auto_close", ADMIN, "on")) == 200
    eventually(lambda: scheduled_auto_closes(redis_url) or
               all(state(redis_url, i) == "closed" for i in ("1", "2", "3")), what="the schedule")
    eventually(lambda: all(state(redis_url, i) == "closed" for i in ("1", "2", "3")), timeout=20,
               what="the auto-close")
    # Counted from the switch, not from the resolve (then they would close at once); RQ keeps
    # schedule times in whole seconds, which can take up to one second off.
    assert time.time() - switched_at >= 2.9
    assert scheduled_auto_closes(redis_url) == set()


def test_home_refresh_under_a_burst_stays_within_the_publish_pace(processes):
    per_second, interval = 2, 2.0
    agents = [AGENT1, AGENT2, ADMIN, "UAGENT3", "UAGENT4", "UAGENT5", "UAGENT6"]
    remote = processes({"home_refresh_interval": interval, "home_publishes_per_second": per_second},
                       agents=tuple(a for a in agents if a != ADMIN))
    for agent in agents:
        remote.open_home(agent)
    eventually(lambda: all(a in remote.slack.home_views for a in agents), what="the Homes")
    remote.deployment.wait_idle(scheduled=True)  # the Homes' own refreshes are done
    burst_start = time.time()

    # A burst over a few seconds: 15 customers write, and three chats are accepted as they come.
    for n in range(15):
        remote.customer(7000 + n, f"question {n}")
        time.sleep(0.2)
        if n in (4, 8, 12):
            remote.card_click("accept", str(n - 2), AGENT1)

    def settled(s: FakeSlack) -> bool:
        return all(json.loads(json.dumps(s.home_views.get(a, {}))).get("blocks") and
                   figures(s.home_views[a])["Chats waiting"] == "12" for a in agents)

    eventually(lambda: settled(remote.slack), timeout=40, what="every Home showing the 12 waiting chats")
    remote.deployment.wait_idle(scheduled=True)  # any late refresh lands too

    publishes = [c for c in remote.slack.calls_to("views.publish") if c.at >= burst_start]
    times = sorted(c.at for c in publishes)
    # The workspace pace: never more than `per_second` in a second (one extra for timing jitter
    # at the window's edges).
    for i, start in enumerate(times):
        assert sum(1 for t in times[i:] if t < start + 1.0) <= per_second + 1, times
    # Per agent: refreshes at least `interval` apart (a burst coalesces), so far fewer than the
    # ~20 changes each agent's Home went through.
    for agent in agents:
        mine = sorted(c.at for c in publishes if c.params["user_id"] == agent)
        assert mine, agent
        assert all(b - a >= interval - 0.5 for a, b in zip(mine, mine[1:])), (agent, mine)  # 0.5: HTTP jitter
        assert len(mine) <= (times[-1] - burst_start) / interval + 2
    # Agent 1's Assigned tab would show their accepts; their Inbox shows the waiting chats.
    assert len(rows(remote.slack.home_views[AGENT2])) == 10
