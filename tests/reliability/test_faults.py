"""Faults injected into a running deployment (2 web processes, 2 workers, 1 Redis, fake
Slack and Telegram); after each, every accepted message must have arrived exactly once
and in order, and every conversation must be consistent."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .harness import check_conversations
from tests.support import eventually

_updates = itertools.count(1)
_ts = itertools.count(1)


def token(chat: int, n: int, who: str = "c") -> str:
    return f"[{who}{chat}-m{n:03d}]"


def open_chats(deployment, chats: list[int], agent: str = "UAGENT1") -> dict[int, str]:
    """Each chat writes once and is accepted by ``agent``; chat -> conversation id."""
    for chat in chats:
        assert deployment.customer_says(next(_updates), chat, token(chat, 0)) == 200
    ids = {}
    for chat in chats:
        eventually(lambda: deployment.conversation_of(chat) and deployment.card_ts(deployment.conversation_of(chat)),
                   timeout=60, what=f"the card of chat {chat}")
        ids[chat] = deployment.conversation_of(chat)
        assert deployment.click("accept", ids[chat], agent) == 200
    eventually(lambda: all(deployment.store().hget(deployment.key("conv", c), "state") == b"active"
                           for c in ids.values()), timeout=60, what="the accepts")
    return ids


def agent_reply_ts() -> str:
    # A day ahead of the fake Slack's own ts, so a reply never shares its card's ts.
    return f"{int(time.time()) + 86400}.{next(_ts):06d}"


def test_order_with_two_workers_in_both_directions(deployment, tally):
    chats = [9100 + i for i in range(4)]
    ids = open_chats(deployment, chats)
    inbound = {chat: [token(chat, 0)] for chat in chats}
    outbound = {chat: [] for chat in chats}

    def customer(chat: int) -> None:
        for n in range(1, 13):
            text = token(chat, n)
            assert deployment.customer_says(next(_updates), chat, text, web=n % 2) == 200
            inbound[chat].append(text)

    def agent(chat: int) -> None:
        for n in range(1, 13):
            text = token(chat, n, "a")
            assert deployment.agent_says("UAGENT1", ids[chat], text, agent_reply_ts(), web=(n + 1) % 2) == 200
            outbound[chat].append(text)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(customer, chats))
        list(pool.map(agent, chats))
    eventually(lambda: all(len(deployment.telegram.sent_texts(c)) >= 12 for c in chats)
               and all(len(deployment.customer_texts_in_slack(ids[c])) >= 13 for c in chats),
               timeout=60, what="every message")
    deployment.wait_idle()  # anything extra (a duplicate) has arrived by now
    for chat in chats:
        tally.add(inbound[chat], deployment.customer_texts_in_slack(ids[chat]))
        tally.add(outbound[chat], deployment.telegram.sent_texts(chat))
    assert tally.clean, tally
    assert check_conversations(deployment.store()) == []


def test_worker_killed_with_sigkill_mid_delivery(deployment, tally):
    chat = 9200
    ids = open_chats(deployment, [chat])
    deployment.telegram.delay = 2.0
    first, second = token(chat, 1, "a"), token(chat, 2, "a")
    assert deployment.agent_says("UAGENT1", ids[chat], first, agent_reply_ts()) == 200
    eventually(lambda: deployment.telegram.in_flight > 0, timeout=60, what="the delivery to start")
    # Whichever worker is sending it dies, with its work horse, before Telegram answered.
    for index in range(len(deployment.workers)):
        deployment.kill_worker(index)
    assert deployment.agent_says("UAGENT1", ids[chat], second, agent_reply_ts()) == 200
    deployment.telegram.delay = 0.0
    eventually(lambda: deployment.telegram.in_flight == 0, timeout=60, what="the killed send to end")
    assert deployment.telegram.sent_texts(chat) == []  # nothing got through the crash
    deployment.start_worker(0)
    eventually(lambda: len(deployment.telegram.sent_texts(chat)) >= 2, timeout=40,
               what="delivery after the restart")
    deployment.wait_idle(crashed=True)
    tally.add([first, second], deployment.telegram.sent_texts(chat))
    assert tally.clean, tally
    assert check_conversations(deployment.store()) == []


def test_redis_stopped_and_restarted(deployment, tally):
    chat = 9300
    ids = open_chats(deployment, [chat])
    before = token(chat, 1)
    assert deployment.customer_says(next(_updates), chat, before) == 200
    deployment.redis_server.stop()
    # Webhooks now answer 503 so the platform retries, and health says why.
    refused = token(chat, 2)
    update = next(_updates)
    assert deployment.customer_says(update, chat, refused) == 503
    assert deployment.gateway.post("/healthz", b"", {})[0] in (405, 503)  # POST is not the health check
    import urllib.error
    import urllib.request
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{deployment.ports[0]}/healthz", timeout=5)
        raise AssertionError("healthz said ok without Redis")
    except urllib.error.HTTPError as error:
        # Not ok, and no error details for an anonymous caller.
        assert error.code == 503 and json.loads(error.read()) == {"ok": False}
    deployment.redis_server.start()
    # Telegram retries the refused update; chatgate has recovered by itself.
    eventually(lambda: deployment.customer_says(update, chat, refused, web=1) == 200, timeout=20,
               what="webhooks to work again")
    after = token(chat, 3)
    assert deployment.customer_says(next(_updates), chat, after) == 200
    reply = token(chat, 1, "a")
    assert deployment.agent_says("UAGENT1", ids[chat], reply, agent_reply_ts()) == 200
    eventually(lambda: len(deployment.customer_texts_in_slack(ids[chat])) >= 4
               and deployment.telegram.sent_texts(chat), timeout=40, what="delivery after Redis came back")
    deployment.wait_idle(crashed=True)  # a job Redis vanished under stays "started" until RQ cleans up
    tally.add([token(chat, 0), before, refused, after], deployment.customer_texts_in_slack(ids[chat]))
    tally.add([reply], deployment.telegram.sent_texts(chat))
    assert tally.clean, tally
    assert check_conversations(deployment.store()) == []


def test_platform_answers_500_then_429_then_200(deployment, tally):
    chat = 9400
    ids = open_chats(deployment, [chat])
    deployment.telegram.failures += [
        (500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}, {}),
        (429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1",
               "parameters": {"retry_after": 1}}, {"Retry-After": "1"}),
    ]
    deployment.slack.failures += [
        (500, {"ok": False, "error": "fatal_error"}, {}),
        (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}),
    ]
    replies = [token(chat, n, "a") for n in range(1, 4)]
    for text in replies:
        assert deployment.agent_says("UAGENT1", ids[chat], text, agent_reply_ts()) == 200
    messages = [token(chat, n) for n in range(1, 4)]
    for text in messages:
        assert deployment.customer_says(next(_updates), chat, text) == 200
    eventually(lambda: len(deployment.telegram.sent_texts(chat)) >= 3
               and len(deployment.customer_texts_in_slack(ids[chat])) >= 4, timeout=40,
               what="delivery after the failures")
    deployment.wait_idle()
    assert not deployment.telegram.failures and not deployment.slack.failures  # all were met
    tally.add(replies, deployment.telegram.sent_texts(chat))
    tally.add([token(chat, 0), *messages], deployment.customer_texts_in_slack(ids[chat]))
    assert tally.clean, tally


def test_duplicate_and_reordered_webhook_deliveries(deployment, tally):
    chat = 9500
    ids = open_chats(deployment, [chat])
    updates = [(next(_updates), token(chat, n)) for n in range(1, 7)]
    # Every update delivered twice, to both web processes at once, in a shuffled order.
    deliveries = updates * 2
    random.Random(5).shuffle(deliveries)
    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda u: deployment.customer_says(u[0], chat, u[1], web=u[0] % 2), deliveries))
    assert set(statuses) == {200}
    eventually(lambda: len(deployment.customer_texts_in_slack(ids[chat])) >= 7, timeout=60, what="the messages")
    deployment.wait_idle()
    arrived = deployment.customer_texts_in_slack(ids[chat])
    history = deployment.store().lrange(deployment.key("msgs", ids[chat]), 0, -1)
    stored_tokens = [json.loads(raw)["text"] for raw in history]
    # Stored once each; relayed exactly once, in the order chatgate accepted them.
    assert sorted(stored_tokens) == sorted([token(chat, 0)] + [t for _, t in updates])
    tally.add(stored_tokens, arrived)
    assert tally.clean, tally


def test_burst_of_concurrent_clicks_from_many_agents(deployment, tally):
    chats = [9600 + i for i in range(6)]
    for chat in chats:
        assert deployment.customer_says(next(_updates), chat, token(chat, 0)) == 200
    eventually(lambda: all(deployment.conversation_of(c) and deployment.card_ts(deployment.conversation_of(c))
                           for c in chats), timeout=60, what="the cards")
    ids = [deployment.conversation_of(c) for c in chats]
    agents = [f"UAGENT{i}" for i in range(1, 6)]
    clicks = [(action, cid, agent) for cid in ids for agent in agents
              for action in ("accept", "accept", "resolve", "leave", "reject")]
    random.Random(7).shuffle(clicks)
    statuses = []
    lock = threading.Lock()

    def click(entry):
        action, cid, agent = entry
        status = deployment.click(action, cid, agent, web=hash(entry) % 2)
        with lock:
            statuses.append(status)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(click, clicks))
    assert set(statuses) == {200}
    deployment.wait_idle()
    problems = check_conversations(deployment.store())
    tally.notes.extend(problems)
    tally.sent = len(clicks)
    tally.delivered = len(clicks) - len(problems)
    assert problems == []



async def _web_console_replies(deployment, ids: dict[int, str], per_chat: int) -> dict[int, list[str]]:
    """``per_chat`` replies to each chat from the web console, as the admin who accepts them there."""
    import aiohttp

    from tests.live_support import console_cookie, session

    base = deployment.gateway.base
    sent: dict[int, list[str]] = {chat: [] for chat in ids}
    async with session() as http:
        cookie = await console_cookie(http, base, deployment.redis_url)
        async with http.get(f"{base}/console/api/me", headers={"Cookie": cookie}) as me:
            headers = {"Cookie": cookie, "X-CSRF-Token": (await me.json())["csrf"]}
        for chat, conversation_id in ids.items():
            async with http.post(f"{base}/console/api/chats/{conversation_id}/accept", json={},
                                 headers=headers) as accepted:
                assert accepted.status == 200, await accepted.text()

        async def reply(chat: int, text: str) -> None:
            async with http.post(f"{base}/console/api/chats/{ids[chat]}/reply", json={"text": text},
                                 headers=headers) as answer:
                assert answer.status == 200, await answer.text()
            sent[chat].append(text)

        for n in range(1, per_chat + 1):
            await asyncio.gather(*(reply(chat, token(chat, n, "a")) for chat in ids))
    return sent


@pytest.mark.parametrize("deployment", [{"slack": {"post_rate": 1}}], indirect=True)
def test_web_console_replies_through_a_redis_restart_reach_customers_without_waiting_for_slack(deployment, tally):
    """Web-console replies are sent to the customers and echoed into the Slack threads, which Slack's pace
    (one post a second in the channel) makes slow. After a Redis restart every outbox is taken up again as
    left by a dead worker: the customers' deliveries must not wait behind the Slack echoes."""
    chats = [9600 + i for i in range(6)]
    for chat in chats:
        assert deployment.customer_says(next(_updates), chat, token(chat, 0)) == 200
    ids = {chat: eventually(lambda: deployment.conversation_of(chat), timeout=30, what=f"chat {chat}")
           for chat in chats}
    deployment.telegram.delay = 1.0  # the customers' deliveries are still under way when Redis stops
    sent = asyncio.run(_web_console_replies(deployment, ids, per_chat=4))
    deployment.redis_server.stop()
    deployment.telegram.delay = 0.0
    deployment.redis_server.start()
    back = time.monotonic()
    eventually(lambda: all(len(deployment.telegram.sent_texts(chat)) >= 4 for chat in chats), timeout=60,
               what="every reply at its customer")
    assert time.monotonic() - back <= 10, "the customers' deliveries waited behind Slack's pace"
    deployment.wait_idle(crashed=True, timeout=90)
    for chat in chats:
        tally.add(sent[chat], deployment.telegram.sent_texts(chat))
    assert tally.clean, tally
    assert check_conversations(deployment.store()) == []
