"""Pacing: the platforms' rate limits kept in shared Redis token buckets, before anyone answers 429.

The fakes enforce the same limits as token buckets of their own and answer the
platform's real 429 when a request comes too soon; the tests turn both on and
check, on the times the fakes recorded, that nothing was refused and that no
second held more than the limit allows (the fakes tolerate a request up to
``TOLERANCE`` seconds early: the jitter between a paced sender and the server
on a busy machine). Nothing times chatgate's own code.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import subprocess
import sys
import time

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from channels.telegram import Telegram, TelegramConfig
from channels.twilio import Twilio, TwilioConfig
from gateway.config import Config, ConfigError
from gateway.events import AgentEvent, EventKind
from gateway.message import InboundMessage, OutboundMessage
from gateway.pacing import Pacer
from gateway.ports import DeliveryError, Runtime
from gateway.store import Store
from tests.conftest import CHANNEL, ROOT
from tests.fakes.server import TOLERANCE, Call
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.support import eventually

def most_in_one_second(calls: list[Call]) -> int:
    """The most calls any one-second window of the fake's record holds."""
    times = sorted(call.at for call in calls)
    return max((sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times)), default=0)


def timeline(calls: list[Call]) -> list[tuple[float, str, str]]:
    """The calls' times from the first, what they were and any limit they broke: for a failure's message."""
    start = min((call.at for call in calls), default=0.0)
    return sorted((round(call.at - start, 3), str(call.params.get("text") or call.params.get("Body") or "")[-20:],
                   call.params.get("limit", "")) for call in calls)


def allowed_per_second(rate: float, burst: int) -> int:
    """What a token bucket lets through in one second: the burst, then the rate (and the fake's tolerance)."""
    return int(burst + rate * (1 + TOLERANCE))


@pytest.fixture
async def store(redis_url):
    store = Store(aioredis.from_url(redis_url))
    yield store
    await store.redis.aclose()


# -- the bucket ---------------------------------------------------------------------------------------------

async def test_a_bucket_gives_its_burst_at_once_then_says_how_long_the_next_token_takes(store):
    pacer = Pacer.for_store(store)
    assert [await pacer.take("b", 2.0, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = await pacer.take("b", 2.0, 3)
    assert 0 < wait <= 0.5  # one token at 2 a second
    # Kept under the store's hash tag, and forgotten once it would be full again.
    assert await store.redis.exists(store.key("pace", "b"))
    assert 0 < await store.redis.pttl(store.key("pace", "b")) <= 3 / 2.0 * 1000 + 1000
    # Another bucket is another limit.
    assert await pacer.take("other", 2.0, 3) == 0.0


async def test_a_pacer_in_another_process_shares_the_bucket(store, redis_url):
    script = (
        "import asyncio, sys, redis.asyncio as r\n"
        "from gateway.pacing import Pacer\n"
        "async def main():\n"
        "    client = r.from_url(sys.argv[1])\n"
        f"    pacer = Pacer(client, {store.key('pace')!r})\n"
        "    print([await pacer.take('shared', 0.5, 2) for _ in range(2)])\n"
        "    await client.aclose()\n"
        "asyncio.run(main())\n"
    )
    other = subprocess.run([sys.executable, "-c", script, redis_url], cwd=ROOT, capture_output=True, text=True,
                           timeout=60)
    assert other.stdout.strip() == "[0.0, 0.0]", other.stderr
    # The other process took the whole burst: this one must wait (about 2 s for one token at 0.5 a second).
    assert await Pacer.for_store(store).take("shared", 0.5, 2) > 1.0


async def test_waiters_on_two_connections_together_keep_to_the_rate(store, redis_url):
    rate, burst = 5.0, 2
    second = aioredis.from_url(redis_url)
    granted: list[Call] = []

    async def sender(pacer: Pacer, name: str) -> None:
        for _ in range(6):
            await pacer.wait("together", rate, burst)
            granted.append(Call(name, {}))

    try:
        await asyncio.gather(sender(Pacer.for_store(store), "one"), sender(Pacer(second, store.key("pace")), "two"))
    finally:
        await second.aclose()
    assert len(granted) == 12
    assert most_in_one_second(granted) <= allowed_per_second(rate, burst)


async def test_rate_zero_means_no_limit_and_no_redis_call():
    nowhere = aioredis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.5)
    pacer = Pacer.for_store(Store(nowhere))
    try:
        for _ in range(100):
            await pacer.wait("anything", 0, 1)  # nothing listens on port 1: a call would raise
        with pytest.raises(redis.exceptions.ConnectionError):
            await pacer.wait("anything", 1.0, 1)
    finally:
        await nowhere.aclose()


# -- configuration ------------------------------------------------------------------------------------------

def test_defaults_and_configured_rates(make_config):
    config = make_config("")
    assert (config.section("slack").post_rate, config.section("slack").post_burst) == (1.0, 4)
    telegram = config.section("telegram")
    assert (telegram.rate_per_chat, telegram.burst_per_chat, telegram.rate_per_bot, telegram.burst_per_bot) == \
        (1.0, 3, 30.0, 30)
    twilio = config.section("twilio")
    assert (twilio.rate_per_sender, twilio.whatsapp_rate_per_sender) == (1.0, 10.0)
    config = make_config("[slack]\npost_rate = 0.5\npost_burst = 2\n[telegram]\nrate_per_chat = 0\n"
                         "[twilio]\nrate_per_sender = 3\n")
    assert (config.section("slack").post_rate, config.section("slack").post_burst) == (0.5, 2)
    assert config.section("telegram").rate_per_chat == 0.0 and config.section("twilio").rate_per_sender == 3.0


def test_a_bad_rate_names_the_key_the_file_and_what_is_expected(make_config):
    with pytest.raises(ConfigError) as raised:
        make_config('[slack]\npost_rate = -1\npost_burst = 0\n[telegram]\nrate_per_chat = "fast"\n'
                    "rate_per_bot = true\n[twilio]\nrate_per_sender = -0.5\nwhatsapp_burst_per_sender = 1.5\n")
    problems = "\n".join(raised.value.problems)
    for key, got in (("slack.post_rate", "-1"), ("telegram.rate_per_chat", "'fast'"),
                     ("telegram.rate_per_bot", "True"), ("twilio.rate_per_sender", "-0.5")):
        assert re.search(rf"config\.toml: {re.escape(key)}: expected a number of messages per second, 0 or more "
                         rf"\(0 turns this pacing off\), got {re.escape(got)}", problems), problems
    assert "config.toml: slack.post_burst: expected a whole number >= 1, got 0" in problems
    assert "config.toml: twilio.whatsapp_burst_per_sender: expected a whole number >= 1" in problems


# -- Telegram and Twilio, against the fakes enforcing the same limits -----------------------------------------

@pytest.fixture
def fake_telegram():
    fake = FakeTelegram().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_twilio():
    fake = FakeTwilio().start()
    yield fake
    fake.stop()


async def test_telegram_sends_keep_to_the_chat_and_bot_limits(store, fake_telegram):
    config = TelegramConfig(enabled=True, token=fake_telegram.token, api_url=fake_telegram.api_url,
                            rate_per_chat=2.0, burst_per_chat=2, rate_per_bot=4.0, burst_per_bot=2)
    fake_telegram.chat_limit, fake_telegram.bot_limit = (2.0, 2), (4.0, 2)
    telegram = Telegram(config, Runtime(Config(), store))

    async def customer(chat: int) -> None:
        for n in range(4):
            await telegram.send(OutboundMessage("telegram", str(chat), f"reply {n} to {chat}"))

    failed = [r for r in await asyncio.gather(customer(101), customer(102), return_exceptions=True) if r]
    assert not failed and fake_telegram.limited == [], (failed, timeline(fake_telegram.calls + fake_telegram.limited))
    for chat in (101, 102):
        assert fake_telegram.sent_texts(chat) == [f"reply {n} to {chat}" for n in range(4)]
        sends = [c for c in fake_telegram.calls_to("sendMessage") if c.params["chat_id"] == chat]
        assert most_in_one_second(sends) <= allowed_per_second(2.0, 2)
    assert most_in_one_second(fake_telegram.calls_to("sendMessage")) <= allowed_per_second(4.0, 2)
    assert fake_telegram.limited == []


async def test_twilio_sends_keep_to_the_sender_limit(store, fake_twilio):
    config = TwilioConfig(enabled=True, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, api_url=fake_twilio.api_url,
                          sms_from="+15005550006", rate_per_sender=2.0, burst_per_sender=2)
    fake_twilio.sender_limit = (2.0, 2)
    twilio = Twilio(config, Runtime(Config(), store))

    async def customer(number: str) -> None:
        for n in range(3):
            await twilio.send(OutboundMessage("sms", number, f"reply {n}"))

    failed = [r for r in await asyncio.gather(customer("+442079460958"), customer("+442079460959"),
                                              return_exceptions=True) if r]
    assert not failed and fake_twilio.limited == [], (failed, timeline(fake_twilio.calls + fake_twilio.limited))
    for number in ("+442079460958", "+442079460959"):
        assert fake_twilio.bodies(number) == ["reply 0", "reply 1", "reply 2"]
    assert most_in_one_second(fake_twilio.calls_to("Messages.create")) <= allowed_per_second(2.0, 2)
    assert fake_twilio.limited == []


# -- Slack, end to end: two workers posting to one channel ---------------------------------------------------

def test_a_burst_of_customer_messages_reaches_one_slack_channel_in_order_without_a_429(deployment):
    rate, burst = 2.0, 2
    started = deployment(workers=2, slack={"post_rate": rate, "post_burst": burst})
    started.slack.post_limit = (rate, burst)  # set before any traffic: the fake enforces what chatgate paces
    chats = (880001, 880002)
    update = iter(range(1, 100))
    for n in range(5):
        for chat in chats:
            assert started.customer_says(next(update), chat, f"message {n} from {chat}") == 200

    def shown(chat: int) -> list[str]:
        # A thread that fell behind gets the waiting messages in one post: count messages, not posts.
        texts = started.customer_texts_in_slack(started.conversation_of(chat) or "")
        return re.findall(r"message (\d) from", "\n".join(texts))

    eventually(lambda: all(len(shown(chat)) == 5 for chat in chats), timeout=60, what="10 messages in Slack")
    for chat in chats:
        assert shown(chat) == ["0", "1", "2", "3", "4"]
    posts = [c for c in started.slack.calls_to("chat.postMessage") if c.params.get("channel") == CHANNEL]
    assert 2 < len(posts) <= 10
    assert started.slack.limited == [], timeline(posts + started.slack.limited)
    assert most_in_one_second(posts) <= allowed_per_second(rate, burst)
    # Close to the configured rate: past the burst, posts follow each other about 1/rate apart, not much slower.
    gaps = [b.at - a.at for a, b in zip(posts[burst:], posts[burst + 1:])]
    assert not gaps or statistics.median(gaps) <= 2 / rate, gaps


# -- Slack: what a crashed worker already posted is not posted again -----------------------------------------

SLACK_TABLE = """
[slack]
enabled = true
bot_token = "xoxb-test"
signing_secret = "secret"
channel = "{channel}"
api_url = "{api_url}"
"""


async def test_a_combined_post_counts_as_delivered_for_every_message_it_carries(make_services, slack, clock):
    clock.now = time.time()
    services = make_services(SLACK_TABLE.format(channel=CHANNEL, api_url=slack.api_url))
    console, store = services.consoles["slack"], services.store

    async def write(text: str, platform_id: str) -> AgentEvent:
        received = await services.conversations.receive(InboundMessage(
            channel="fake", customer_id="c-2", platform_id=platform_id, text=text, name="Ada"))
        outbox = store.console_outbox("slack", received.conversation_id)
        return AgentEvent.from_json((await store.redis.lrange(outbox, -1, -1))[0])

    created = await write("Where is my parcel?", "q1")
    await console.deliver(created, services)
    card_ts = await store.get_ref("slack-card", created.conversation_id)
    first = await write("Hello?", "q2")
    # The thread fell behind: two more messages are stored before the first one's event is shown.
    second, third = await write("It was due on Monday", "q3"), await write("Order 4711", "q4")
    await console.deliver(first, services)
    posts = [c.params for c in slack.calls_to("chat.postMessage") if c.params.get("thread_ts") == card_ts]
    combined = [p for p in posts if "Order 4711" in p.get("text", "")]
    assert len(combined) == 1 and "It was due on Monday" in combined[0]["text"] and "Hello?" in combined[0]["text"]
    # The worker died after the post and before noting what it relayed: the drainer taking over asks Slack.
    await store.redis.hdel(store.key("ref", "slack-relayed"), second.conversation_id)
    assert await console.already_delivered(second, services)
    assert await console.already_delivered(third, services)
    later = AgentEvent(second.conversation_id, EventKind.MESSAGE, seq=third.seq + 1, at=third.at + 1)
    assert not await console.already_delivered(later, services)


async def test_already_delivered_finds_the_event_s_post_in_slack(make_services, slack, clock):
    clock.now = time.time()  # the fake Slack stamps messages with the real time
    services = make_services(SLACK_TABLE.format(channel=CHANNEL, api_url=slack.api_url))
    console, store = services.consoles["slack"], services.store

    async def write(text: str, platform_id: str) -> AgentEvent:
        received = await services.conversations.receive(InboundMessage(
            channel="fake", customer_id="c-1", platform_id=platform_id, text=text, name="Ada"))
        outbox = store.console_outbox("slack", received.conversation_id)
        event = AgentEvent.from_json((await store.redis.lrange(outbox, -1, -1))[0])
        return event

    created = await write("Where is my parcel?", "p1")
    assert created.kind is EventKind.CREATED
    assert not await console.already_delivered(created, services)
    await console.deliver(created, services)
    card_ts = await store.get_ref("slack-card", created.conversation_id)
    assert slack.messages[card_ts]["metadata"]["event_type"] == "chatgate_event"
    assert await console.already_delivered(created, services)

    clock.advance(1)
    message = await write("It was due on Monday", "p2")
    assert message.kind is EventKind.MESSAGE
    assert not await console.already_delivered(message, services)  # not posted yet
    await console.deliver(message, services)
    assert await console.already_delivered(message, services)  # in the card's thread now
    replies = slack.calls_to("conversations.replies")
    assert replies and replies[-1].params["include_all_metadata"] in ("1", "true")
    # Another event of the same chat (same kind, another time) was never posted.
    other = AgentEvent(created.conversation_id, EventKind.MESSAGE, seq=message.seq, at=message.at + 5)
    assert not await console.already_delivered(other, services)

    # A worker died after Slack took the card but before chatgate recorded it: the card is found in the
    # channel, recorded, and the next event goes to its thread instead of a second card.
    await store.redis.hdel(store.key("ref", "slack-card"), created.conversation_id)
    await store.redis.hdel(store.key("ref", "slack-caught-up"), created.conversation_id)
    assert await store.get_ref("slack-card", created.conversation_id) is None
    assert await console.already_delivered(created, services)
    assert await store.get_ref("slack-card", created.conversation_id) == card_ts
    clock.advance(1)
    await console.deliver(await write("Still waiting", "p3"), services)
    cards = [c for c in slack.calls_to("chat.postMessage") if "thread_ts" not in c.params]
    assert len(cards) == 1
    assert slack.thread_texts(card_ts)[-1].endswith("Still waiting")

    # Slack failing for now is for the drainer to retry; Slack refusing for good (a missing scope) means
    # there is nothing to find.
    slack.failures.append((500, {"ok": False, "error": "fatal_error"}, {}))
    with pytest.raises(DeliveryError) as failed:
        await console.already_delivered(message, services)
    assert not failed.value.permanent
    slack.failures.append((200, {"ok": False, "error": "missing_scope"}, {}))
    assert not await console.already_delivered(message, services)


def test_a_backlogged_thread_gets_the_customer_s_waiting_messages_in_one_post(deployment):
    """Messages that piled up while the thread was behind (Slack's pace, a backlog) go in one post, in order."""
    d = deployment()
    d.customer_says(1, 4242, "Where is my parcel?")
    conversation_id = eventually(lambda: d.card_ts("1") and "1", what="the card")
    card = d.card_ts(conversation_id)
    d.wait_idle()
    # The thread falls behind: the worker stops (cleanly: a killed one's connection could still take
    # the next job from the queue before Redis sees it is gone).
    d.workers[0].stop()
    for n, text in enumerate(("first & <more>", "second", "third"), start=2):
        d.customer_says(n, 4242, text)
    d.start_worker(0)
    eventually(lambda: any("third" in t for t in d.slack.thread_texts(card)), what="the messages in the thread")
    d.wait_idle()
    relayed = [t for t in d.slack.thread_texts(card) if "first" in t or "second" in t or "third" in t]
    assert len(relayed) == 1, relayed
    post = relayed[0]
    assert post.index("first &amp; &lt;more&gt;") < post.index("second") < post.index("third")
