"""The seams: a channel and a console that only this test knows carry a whole conversation.

``FakeChannel`` and ``FakeConsole`` (``tests/fakes/ports.py``) are registered from
here alone (``connect(..., channels=[...], consoles=[...])``), next to the real
Slack console talking to the fake Slack server. The web app runs in-process
(``gateway.app.create_app``); the jobs the core enqueues are run here, in order,
by calling the ``workers.jobs`` functions inside a ``WorkerContext``, as
``chatgate worker`` would. One agent accepts in the fake console, replies in
Slack, replies in the fake console too, resolves and leaves: each console sees
every event in order, and each shows what was done in the other.
"""

from __future__ import annotations

import json
import time

import pytest
import redis as redis_sync
from aiohttp.test_utils import TestClient, TestServer
from rq import Queue

import workers.jobs
from agent_console.slack import SlackConsole
from chatgate.compose import channel_classes, connect, console_classes
from gateway.app import create_app
from gateway.events import EventKind
from tests.fakes import ports
from tests.fakes.ports import FakeChannel, FakeConsole
from tests.fakes.slack import block_action, message_event, sign
from workers.context import WorkerContext, current_context
from gateway.jobs import QUEUE, SERIALIZER, TIMERS_QUEUE

SECRET = "seams-signing-secret"
CHANNEL = "C0SEAMS"
SLACK_USER, AGENT = "UALICE", "alice"
CUSTOMER = "customer-1"

# What the Slack console was given, in order (the real console, recording on its way through).
SLACK_SHOWN: list = []


class RecordingSlack(SlackConsole):
    async def deliver(self, event, services) -> None:
        await super().deliver(event, services)
        SLACK_SHOWN.append(event)


@pytest.fixture
async def deployment(redis_url, make_config, slack, monkeypatch):
    config = make_config(f"""
[slack]
enabled = true
bot_token = "xoxb-seams"
signing_secret = "{SECRET}"
channel = "{CHANNEL}"
api_url = "{slack.api_url}"
[fakechannel]
enabled = true
[fakeconsole]
enabled = true
[conversation]
auto_close = false
[[agents]]
id = "{AGENT}"
name = "Alice"
slack = "{SLACK_USER}"
""")
    channels = [*channel_classes(), FakeChannel]
    consoles = [RecordingSlack if cls is SlackConsole else cls for cls in console_classes()] + [FakeConsole]
    # The jobs build their services like the web app does: with the test's channels and consoles.
    monkeypatch.setattr(workers.jobs, "connect",
                        lambda config, url, **kw: connect(config, url, channels=channels, consoles=consoles))
    for shown in (ports.SENT, ports.SHOWN, SLACK_SHOWN):
        shown.clear()
    services = connect(config, redis_url, channels=channels, consoles=consoles)
    async with TestClient(TestServer(create_app(services))) as client:
        yield client, services, config


def run_jobs(config, redis_url: str) -> int:
    """Run every queued job, oldest first, as a worker would (scheduled jobs are not due); how many ran."""
    connection = redis_sync.Redis.from_url(redis_url)
    queues = [Queue(name, connection=connection, serializer=SERIALIZER) for name in (TIMERS_QUEUE, QUEUE)]
    context = WorkerContext(config=config, redis_url=redis_url)
    token = current_context.set(context)
    ran = 0
    try:
        while (job := Queue.dequeue_any(queues, None, connection=connection, serializer=SERIALIZER)) is not None:
            job, _ = job
            job.func(*job.args, **job.kwargs)
            ran += 1
    finally:
        current_context.reset(token)
        context.close()
    return ran


async def drain(config, redis_url: str) -> None:
    import asyncio

    # The jobs run on the worker context's own event loop, so not on the test's.
    await asyncio.to_thread(run_jobs, config, redis_url)


async def test_a_test_only_channel_and_console_carry_a_chat_with_slack_on_the_same_conversation(
        deployment, slack, redis_url):
    client, services, config = deployment

    async def fake_console(op: str, **body) -> dict:
        response = await client.post(f"/fake-console/{op}", json={"agent": AGENT, **body})
        assert response.status == 200, await response.text()
        return await response.json()

    async def signed(body: str, content_type: str) -> None:
        response = await client.post("/slack/events", data=body.encode(),
                                     headers={"Content-Type": content_type, **sign(SECRET, body)})
        assert response.status == 200, await response.text()

    # The customer writes on the test-only channel: both consoles show the new chat.
    response = await client.post("/webhooks/fake", json={"customer": CUSTOMER, "id": "m1",
                                                         "text": "Where is my parcel?", "name": "Ada"})
    received = await response.json()
    assert received["event"] == "created"
    cid = received["conversation_id"]
    await drain(config, redis_url)
    card_ts = await services.store.get_ref("slack-card", cid)
    assert card_ts and "Where is my parcel?" in json.dumps(slack.messages[card_ts])
    assert "Fake channel" in json.dumps(slack.messages[card_ts])  # the channel's own label

    # Accept in the fake console; reply in Slack's thread, as the same agent.
    await fake_console("accept", conversation_id=cid)
    await drain(config, redis_url)
    assert (await services.store.get(cid)).assignee == AGENT
    await signed(message_event(SLACK_USER, CHANNEL, "It left the depot today.", f"{time.time():.6f}", card_ts),
                 "application/json")
    await drain(config, redis_url)
    assert ports.SENT[CUSTOMER] == ["It left the depot today."]

    # A reply in the fake console reaches the customer and shows in the Slack thread.
    await fake_console("reply", conversation_id=cid, text="Anything else I can do?")
    await drain(config, redis_url)
    assert ports.SENT[CUSTOMER] == ["It left the depot today.", "Anything else I can do?"]
    assert any("Anything else I can do?" in text for text in slack.thread_texts(card_ts))

    # Resolve in the fake console (the customer is asked for a rating), leave in Slack: closed.
    await fake_console("resolve", conversation_id=cid)
    await drain(config, redis_url)
    assert ports.SENT[CUSTOMER][-1] == config.conversation.rating_question
    await signed(block_action("leave", cid, SLACK_USER, CHANNEL, card_ts, slack.response_url),
                 "application/x-www-form-urlencoded")
    await drain(config, redis_url)
    assert (await services.store.get(cid)).state.value == "closed"
    assert "Closed" in json.dumps(slack.messages[card_ts].get("blocks", []))

    # Every console got every event of the chat, in order, with where each action came from.
    expected = [(EventKind.CREATED, ""), (EventKind.ACCEPTED, "fake"), (EventKind.FIRST_RESPONSE, "slack"),
                (EventKind.REPLIED, "fake"), (EventKind.RESOLVED, "fake"), (EventKind.CLOSED, "slack")]
    for shown in (ports.SHOWN[cid], [e for e in SLACK_SHOWN if e.conversation_id == cid]):
        assert [(e.kind, e.console) for e in shown] == expected
        assert all(e.by == AGENT for e in shown[1:])
    # Nothing is left over for either console or the customer.
    for key in (services.store.console_outbox("fake", cid), services.store.console_outbox("slack", cid),
                services.store.customer_outbox("fake", CUSTOMER)):
        assert await services.store.redis.llen(key) == 0
