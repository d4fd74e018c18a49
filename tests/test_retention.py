"""Retention: closed conversations past ``[retention] closed_after`` go to JSON Lines files, then leave Redis."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

from chatgate.compose import connect, load_config, plugin_refs, run_retention
from gateway import retention
from gateway.config import ConfigError
from tests.conftest import CHANNEL, ROOT
from tests.fakes.slack import block_action, home_action, select_user_action
from tests.fakes.telegram import text_update
from tests.fakes.twilio import AUTH_TOKEN, signed
from tests.fakes.twilio import inbound as twilio_inbound
from tests.support import eventually, keys, slack_agents
from tests.test_machine import inbound
from workers.outbox import drain

DAY = 86400.0
# The store's keys (``Store.key``) under the default prefix, for plain Redis clients.
KEY = keys()


@pytest.fixture
def exports(tmp_path):
    return tmp_path / "exports"


@pytest.fixture
async def services(make_services, exports):
    return make_services(f'[retention]\nclosed_after = "30d"\nexport_dir = "{exports}"\n')


async def delivered(services) -> None:
    """Every outbox drained (a no-op send), as the workers would."""
    async def send(item: bytes, _maybe_sent: bool) -> None:
        return None

    for raw in await services.store.redis.zrange(services.store.key("dirty"), 0, -1):
        await drain(services.store, raw.decode(), send)


async def closed_chat(services, clock, customer: str = "42") -> str:
    """A whole chat: declined by bob, accepted by alice (sound off), a reply, resolved, rated 5, closed."""
    c = services.conversations
    cid = (await c.receive(inbound("Where is my parcel?", customer=customer))).conversation_id
    await c.reject(cid, "bob")
    clock.advance(60)
    await c.accept(cid, "alice")
    await c.set_sound(cid, "alice", False)
    clock.advance(60)
    await c.reply(cid, "alice", "Let me look.")
    await c.receive(inbound("Thanks", customer=customer))
    await c.resolve(cid, "alice")
    await c.receive(inbound("5", customer=customer))
    clock.advance(300)
    await c.leave(cid, "alice")
    await delivered(services)
    return cid


def lines(exports) -> list[dict]:
    return [json.loads(line) for path in sorted(exports.glob("*.jsonl")) for line in path.read_text().splitlines()]


async def keys_of(services, cid: str) -> list[str]:
    """The chat's own keys (platform message ids, remembered 7 days for deduplication, are not)."""
    return sorted(k.decode() for k in await services.store.redis.keys("*")
                  if k.decode().endswith(f":{cid}") and not k.decode().startswith(("rq:", services.store.key("seen", ""))))


async def test_a_closed_chat_past_retention_is_exported_whole_and_leaves_redis(services, clock, exports):
    store = services.store
    cid = await closed_chat(services, clock)
    await closed_chat(services, clock, customer="7")
    assert await store.redis.get(store.key("last", "telegram", "42")) == cid.encode()
    assert await keys_of(services, cid)

    done = await run_retention(services, now=clock() + 30 * DAY + 1)

    assert done.removed == 2 and done.directory == str(exports)
    [record] = [r for r in lines(exports) if r["id"] == cid]
    assert (exports / "conversations-2026-01-01.jsonl").exists()
    assert record["conversation"]["state"] == "closed" and record["conversation"]["customer_id"] == "42"
    assert [(m["dir"], m["text"]) for m in record["history"]] == [
        ("in", "Where is my parcel?"), ("out", "Let me look."), ("in", "Thanks"),
        ("out", services.config.conversation.rating_question), ("in", "5"),
        ("out", services.config.conversation.rating_thanks)]
    assert record["history"][0]["attachments"] == []
    assert record["declined_by"] == ["bob"]
    metrics = record["metrics"]
    assert metrics["first_response_seconds"] == 120 and metrics["duration_seconds"] == 420
    assert (metrics["messages_in"], metrics["messages_out"], metrics["rating"]) == (3, 1, 5)
    assert metrics["agents"] == "alice"
    # Gone: the chat's keys, its place in Closed, the customer's pointer to it (its refs: see below).
    assert await keys_of(services, cid) == []
    assert await store.redis.zscore(store.key("closed"), cid) is None
    assert await store.redis.get(store.key("last", "telegram", "42")) is None
    assert await store.get(cid) is None
    # Kept: the customer's profile.
    assert await store.redis.hget(store.key("customer", "telegram", "42"), "name") == b"Ada Lovelace"


async def test_open_recently_closed_and_undelivered_chats_stay(services, clock, exports):
    store = services.store
    old = await closed_chat(services, clock, customer="1")
    stuck = await closed_chat(services, clock, customer="4")
    unsent = await closed_chat(services, clock, customer="5")
    first = clock() + 30 * DAY + 1
    clock.advance(20 * DAY)
    recent = await closed_chat(services, clock, customer="2")
    waiting = (await services.conversations.receive(inbound("hello?", customer="3"))).conversation_id
    await store.redis.rpush(store.console_outbox("fake", stuck), "an event not shown yet")
    await store.redis.rpush(store.customer_outbox("telegram", "5"), "a message not sent yet")

    assert await retention.export_and_remove(store, 30 * DAY, exports, first, consoles=("fake",)) == 1

    assert [r["id"] for r in lines(exports)] == [old]
    for cid in (recent, waiting, stuck, unsent):
        assert await store.get(cid) is not None and await store.history(cid)
    assert await store.redis.zscore(store.key("closed"), recent) is not None
    assert (await store.open_conversation("telegram", "3")).id == waiting

    # Once delivered, they go too, on a later pass, with the one now old enough.
    await store.redis.delete(store.console_outbox("fake", stuck), store.customer_outbox("telegram", "5"))
    later = clock() + 30 * DAY + 1
    assert await retention.export_and_remove(store, 30 * DAY, exports, later, consoles=("fake",)) == 3
    assert sorted(r["id"] for r in lines(exports)) == sorted([old, recent, stuck, unsent])
    assert await store.get(waiting) is not None


async def test_batches_step_over_what_stays_and_a_limit_keeps_a_pass_short(services, clock, exports):
    store = services.store
    stuck, *others = [await closed_chat(services, clock, customer=str(n)) for n in range(4)]
    await store.redis.rpush(store.console_outbox("fake", stuck), "an event not shown yet")
    now = clock() + 31 * DAY

    assert await retention.export_and_remove(store, 30 * DAY, exports, now, batch=1, consoles=("fake",),
                                             limit=2) == 2
    assert await retention.export_and_remove(store, 30 * DAY, exports, now, batch=1, consoles=("fake",)) == 1
    assert sorted(r["id"] for r in lines(exports)) == sorted(others)
    assert await store.redis.zrange(store.key("closed"), 0, -1) == [stuck.encode()]


async def test_a_returning_customer_after_removal_starts_a_new_chat(services, clock):
    old = await closed_chat(services, clock)
    assert (await run_retention(services, now=clock() + 31 * DAY)).removed == 1

    clock.advance(31 * DAY)
    received = await services.conversations.receive(inbound("Hello again", customer="42"))

    assert received.event == "created" and received.conversation_id != old
    conversation = await services.store.get(received.conversation_id)
    assert conversation.state.value == "new" and conversation.previous_agent == ""
    assert conversation.head_start_for == "" and conversation.name == "Ada Lovelace"
    assert [c.id for c in (await services.store.inbox()).conversations] == [received.conversation_id]
    await services.conversations.accept(received.conversation_id, "bob")


async def test_a_crash_between_export_and_delete_loses_nothing(services, clock, exports, monkeypatch):
    cid = await closed_chat(services, clock)
    now = clock() + 31 * DAY
    monkeypatch.setattr(retention, "_REMOVE", "return redis.error_reply('the process died here')")
    with pytest.raises(Exception, match="died here"):
        await run_retention(services, now=now)
    assert [r["id"] for r in lines(exports)] == [cid]
    assert await services.store.get(cid) is not None and len(await services.store.history(cid)) == 6
    # A pass that died mid-line left half a record: the next line still starts whole.
    with open(exports / "conversations-2026-01-01.jsonl", "a") as file:
        file.write('{"id": "' + cid + '", "conv')
    monkeypatch.undo()

    assert (await run_retention(services, now=now)).removed == 1

    records = []
    for line in (exports / "conversations-2026-01-01.jsonl").read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pass  # the half line
    assert [r["id"] for r in records] == [cid, cid]  # exported twice: acceptable; lost: never
    assert records[0]["history"] == records[1]["history"]
    assert await services.store.get(cid) is None


async def test_closed_after_zero_keeps_everything(make_services, clock, exports):
    services = make_services(f'[retention]\nclosed_after = 0\nexport_dir = "{exports}"\n')
    cid = await closed_chat(services, clock)
    done = await run_retention(services, now=clock() + 365 * DAY)
    assert (done.removed, done.cutoff) == (0, None)
    assert await services.store.get(cid) is not None and not exports.exists()


def test_the_retention_table_is_checked(make_config, tmp_path):
    config = make_config('[redis]\ndata_dir = "somewhere"\n')
    assert config.retention.closed_after == 30 * DAY
    assert retention.export_dir(config) == "somewhere/exports"
    assert make_config('[retention]\nclosed_after = "15m"\n').retention.closed_after == 900
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ConfigError) as error:
        make_config(f'[retention]\nclosed_after = "soon"\nexport_dir = "{tmp_path / "a-file"}"\nkeep = 1\n')
    problems = "\n".join(error.value.problems)
    assert "config.toml: retention.closed_after: expected a duration" in problems
    assert "config.toml: retention.export_dir: expected a folder" in problems
    assert "config.toml: retention.keep: unknown key" in problems


async def test_the_command_runs_one_pass_and_says_where(services, clock, exports, tmp_path, redis_url):
    cid = await closed_chat(services, clock)  # closed on 2026-01-01 (the test clock), long before now
    config = tmp_path / "cli.toml"
    config.write_text(f'[retention]\nclosed_after = "30d"\nexport_dir = "{exports}"\n')
    done = subprocess.run([sys.executable, "-m", "chatgate", "retention", "-c", str(config), "--redis-url", redis_url],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "1 conversation(s) closed before" in done.stdout and str(exports) in done.stdout
    assert [r["id"] for r in lines(exports)] == [cid]


def test_the_memory_bench_runs(capsys):
    from bench.memory import main

    assert main(["--messages", "100", "--per-conversation", "5"]) == 0
    out = capsys.readouterr().out
    assert "(a) before delivery" in out and "used_memory beyond the text" in out and "msgs:*" in out
    assert main(["--soak", "1", "--every", "0.5", "--customers", "20", "--per-conversation", "2"]) == 0
    out = capsys.readouterr().out
    assert "used_memory" in out and "machine:" in out


# -- what the channels and consoles keep: gone with the chat, as each declares ---------------------

AGENT, OTHER, ADMIN = "UAGENT1", "UAGENT2", "UADMIN1"
BILLING, SMS_CUSTOMER, PUBLIC_URL = "C0BILLING", "+442079460077", "https://support.example.com"
TEAM = slack_agents(AGENT, OTHER, admins=(ADMIN,)) + """
[[topics]]
name = "billing"
keywords = ["refund"]
"""
# Over Slack's 3,000 characters a post: several posts, each remembered.
LONG = "\n".join(f"line {i} " + "x" * 60 for i in range(60))


class Desk:
    """A deployment with Telegram, SMS and Slack, driven as customers and agents would."""

    def __init__(self, deployment):
        self.d, self.slack, self.gateway = deployment, deployment.slack, deployment.gateway
        self.redis = deployment.store()
        self.updates = iter(range(1, 1000))

    def state(self, conversation_id: str) -> str:
        return (self.redis.hget(KEY("conv", conversation_id), "state") or b"").decode()

    def telegram(self, chat: int, text: str | None, **content) -> str:
        """The customer writes on Telegram; the id of their open chat."""
        assert self.gateway.telegram(text_update(next(self.updates), chat, text, **content))[0] == 200
        return eventually(lambda: self.d.conversation_of(chat), what="the chat")

    def sms(self, text: str) -> str:
        body, headers = signed(AUTH_TOKEN, PUBLIC_URL + "/webhooks/twilio",
                               twilio_inbound(f"SM{next(self.updates)}", SMS_CUSTOMER, text))
        assert self.gateway.post("/webhooks/twilio", body, headers)[0] == 200
        return eventually(lambda: (self.redis.get(KEY("open", "sms", SMS_CUSTOMER)) or b"").decode(),
                          what="the chat")

    def card(self, conversation_id: str) -> tuple[str, str]:
        """The chat card: (its channel, its ts)."""
        ts = eventually(lambda: self.d.card_ts(conversation_id), what="the card")
        return self.slack.messages[ts]["channel"], ts

    def click(self, action: str, conversation_id: str, user: str, state: str) -> None:
        channel, ts = self.card(conversation_id)
        assert self.gateway.slack_form(block_action(action, conversation_id, user, channel, ts,
                                                    self.slack.response_url))[0] == 200
        eventually(lambda: self.state(conversation_id) == state, what=f"{action}: {state}")

    def close(self, conversation_id: str, agent: str) -> None:
        self.click("resolve", conversation_id, agent, "resolved")
        self.click("leave", conversation_id, agent, "closed")

    def say(self, conversation_id: str, text: str) -> None:
        assert self.gateway.say(AGENT, text, self.card(conversation_id)[1])[0] == 200


def used_every_platform(desk: Desk) -> list[str]:
    """Chats that made every channel and console remember something, all closed: their ids."""
    desk.d.telegram.add_file("photo-1", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8, "photos/file_1.jpg")
    # Telegram: a card in slack.channel, its permalink once active, a long message and a photo in its
    # thread, a long reply in parts, a reassign, a long reply from another console.
    parcel = desk.telegram(600001, "Where is my parcel?")
    desk.click("accept", parcel, AGENT, "active")
    desk.telegram(600001, LONG)
    desk.telegram(600001, None, photo=[{"file_id": "photo-1", "file_unique_id": "p", "width": 8, "height": 8}])
    eventually(lambda: desk.slack.files, what="the photo in the thread")
    desk.say(parcel, "\n\n".join(f"Step {i}: " + "y" * 400 for i in range(12)))  # over Telegram's 4,096
    asyncio.run(reply_from_another_console(desk.d, parcel, LONG))
    admin = select_user_action("reassign", f"chat-{parcel}", OTHER, ADMIN, CHANNEL, desk.card(parcel)[1],
                               desk.slack.response_url)
    assert desk.gateway.slack_form(admin)[0] == 200
    eventually(lambda: desk.redis.hget(KEY("conv", parcel), "assignee") == OTHER.encode(), what="reassigned")
    desk.close(parcel, OTHER)
    # Back again: the previous agent's head start DM, a long message in its thread, then the card.
    again = desk.telegram(600001, "Me again")
    dm = eventually(lambda: [ts for ts, m in desk.slack.messages.items()
                             if m["channel"] == OTHER and "thread_ts" not in m], what="the head start DM")[0]
    desk.telegram(600001, LONG)
    eventually(lambda: len(desk.slack.thread_texts(dm)) >= 2, what="the long message in the DM's thread")
    assert desk.gateway.slack_form(block_action("accept", again, OTHER, OTHER, dm,
                                                desk.slack.response_url))[0] == 200
    eventually(lambda: desk.state(again) == "active", what="accepted in the DM")
    desk.close(again, OTHER)
    # A topic with a channel of its own.
    refund = desk.telegram(600002, "I want a refund")
    assert desk.card(refund)[0] == BILLING
    desk.click("accept", refund, AGENT, "active")
    desk.close(refund, AGENT)
    # SMS: a reply's sid, for Twilio's status callbacks.
    sms = desk.sms("Hello from my phone")
    desk.click("accept", sms, AGENT, "active")
    desk.say(sms, "On it")
    eventually(lambda: desk.d.twilio.bodies(SMS_CUSTOMER), what="the SMS reply")
    desk.close(sms, AGENT)
    # An agent's App Home tab (about no one chat).
    assert desk.gateway.slack_form(home_action("home_tab_assigned", AGENT))[0] == 200
    eventually(lambda: desk.redis.hget(KEY("ref", "slack-home"), AGENT), what="the Home's tab remembered")
    desk.d.wait_idle()
    return [parcel, again, refund, sms]


async def reply_from_another_console(deployment, conversation_id: str, text: str) -> None:
    services = connect(load_config(deployment.config), deployment.redis_url)
    try:
        await services.conversations.reply(conversation_id, AGENT, text, via="web")
    finally:
        await services.close()


def refs_in_redis(redis) -> dict[str, dict[str, str]]:
    """Every ref kind in Redis: its fields and values."""
    prefix = KEY("ref", "")
    return {key.decode()[len(prefix):]: {k.decode(): v.decode() for k, v in redis.hgetall(key).items()}
            for key in redis.scan_iter(prefix + "*")}


def naming(conversation_ids: list[str], refs: dict[str, dict[str, str]]) -> list[tuple[str, str, str]]:
    """The refs whose field or value names one of the conversations (its id, or "<id>:…")."""
    def names(text: str) -> bool:
        return any(text == cid or text.startswith(cid + ":") for cid in conversation_ids)

    return [(kind, field, value) for kind, fields in refs.items() for field, value in fields.items()
            if names(field) or names(value)]


async def retention_pass(deployment, now: float) -> int:
    services = connect(load_config(deployment.config), deployment.redis_url)
    try:
        return (await run_retention(services, now=now)).removed
    finally:
        await services.close()


def test_every_ref_a_plugin_keeps_goes_with_its_chat_and_every_ref_written_is_declared(deployment, tmp_path):
    started = deployment(tail=TEAM, server={"public_url": PUBLIC_URL}, retention={"export_dir": str(tmp_path)},
                         twilio={"enabled": True, "sms_from": "+15005550006"},
                         slack={"topic_channels": {"billing": BILLING}}, routing={"returning_head_start": "10m"})
    chats = used_every_platform(Desk(started))
    declared = set().union(*(refs.kinds() for refs in plugin_refs(load_config(started.config))))
    written = refs_in_redis(started.store())
    # A kind no plugin declares would outlive the chats; a declared one this test never writes goes unchecked.
    assert set(written) - declared == set(), "written but declared by no channel or console"
    assert declared - set(written) == set(), "declared but never written here"
    assert naming(chats, written)
    started.kill_worker(0)  # its own pass, now and then, would hold the lock

    assert asyncio.run(retention_pass(started, time.time() + 31 * DAY)) == len(chats)

    assert naming(chats, refs_in_redis(started.store())) == []
    assert refs_in_redis(started.store())["slack-home"]  # about an agent, not a chat: kept
