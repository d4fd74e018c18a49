"""Business hours, queue position and saved replies in the core, on a real Redis and the test's clock."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import redis as redis_sync

from gateway.message import Refused
from tests.conftest import pending_timers, queued_jobs
from tests.test_machine import customer_outbox, inbound

PARIS = ZoneInfo("Europe/Paris")

HOURS_QUEUE_REPLIES = """
[business_hours]
timezone = "Europe/Paris"
monday = "09:00-17:00"
tuesday = "09:00-17:00"
wednesday = "09:00-17:00"
thursday = "09:00-17:00"
friday = "09:00-17:00"
holidays = ["2026-12-25"]
away_message = "We are closed; we open {next_opening}."
away_message_sms = "Closed (SMS). Back {next_opening}."
pause_auto_close = true

[routing]
queue_position = true
queue_position_step = 2

[[saved_replies]]
name = "Greeting"
text = "Hello {customer_name}, {agent_name} here. How can I help?"

[[saved_replies]]
name = "Refund policy"
text = "Refunds take 5 working days."

[[agents]]
id = "alice"
name = "Alice"
[[agents]]
id = "bob"
name = "Bob"
[[agents]]
id = "root"
name = "Root"
admin = true
"""


@pytest.fixture
async def configured(make_services):
    return make_services(HOURS_QUEUE_REPLIES)


def at(clock, *args) -> None:
    clock.now = datetime(*args, tzinfo=PARIS).timestamp()


async def test_outside_hours_the_first_message_gets_the_away_message_once(configured, clock):
    at(clock, 2026, 3, 6, 19, 0)  # Friday evening
    received = await configured.conversations.receive(inbound("Hello?", customer="1"))
    await configured.conversations.receive(inbound("Anyone there?", customer="1"))
    texts = await customer_outbox(configured, customer="1")
    assert texts[0] == "We are closed; we open Monday 9 March at 09:00 CET."
    assert sum("closed" in t for t in texts) == 1  # once per conversation, not per message
    # The chat still queues, and the away message is in its history.
    assert [c.id for c in (await configured.store.inbox()).conversations] == [received.conversation_id]
    history = await configured.store.history(received.conversation_id)
    assert [(h.direction, h.by) for h in history][:2] == [("in", "customer"), ("out", "system")]


async def test_per_channel_away_message_and_none_while_open(configured, clock):
    at(clock, 2026, 12, 25, 10, 0)  # a Friday, but Christmas
    await configured.conversations.receive(inbound("Hi", customer="2", channel="sms"))
    assert (await customer_outbox(configured, channel="sms", customer="2"))[0] == "Closed (SMS). Back Monday 28 December at 09:00 CET."
    at(clock, 2026, 3, 9, 10, 0)  # Monday morning: open
    await configured.conversations.receive(inbound("Hi", customer="3"))
    assert not any("closed" in t.lower() for t in await customer_outbox(configured, customer="3"))


async def test_queue_position_on_first_message_and_when_it_improves_by_the_step(configured, clock):
    at(clock, 2026, 3, 9, 10, 0)
    conversations = configured.conversations
    ids = []
    for n in range(6):
        clock.advance(1)
        ids.append((await conversations.receive(inbound(f"question {n}", customer=f"c{n}"))).conversation_id)
    assert (await customer_outbox(configured, customer="c0")) == ["You are number 1 in the queue."]
    assert (await customer_outbox(configured, customer="c5")) == ["You are number 6 in the queue."]
    # A second message tells nothing new.
    await conversations.receive(inbound("hello again", customer="c5"))
    assert len(await customer_outbox(configured, customer="c5")) == 1
    # Today's first response: 10 min for chat 0. Accept asks the workers for one pass.
    await conversations.accept(ids[0], "alice")
    clock.advance(600)
    await conversations.reply(ids[0], "alice", "Hi!")
    assert ("queue_positions", "") in pending_timers(configured.redis_url)
    assert queued_jobs(configured.redis_url).count(("fire_timers", ("now",))) == 1
    # One place up is less than the step (2): nobody is told.
    assert await conversations.tell_queue_positions() == 0
    await conversations.accept(ids[1], "bob")
    # Two accepts, one queued pass (requests coalesce while one is pending).
    assert queued_jobs(configured.redis_url).count(("fire_timers", ("now",))) == 1
    assert await conversations.tell_queue_positions() == 4  # c2..c5 each moved up two places
    assert (await customer_outbox(configured, customer="c5"))[-1] == \
        "You are number 4 in the queue. Typical wait today: about 10 minutes."
    assert (await customer_outbox(configured, customer="c2"))[-1] == \
        "You are number 1 in the queue. Typical wait today: about 10 minutes."
    # Nothing changed since: no second message.
    assert await conversations.tell_queue_positions() == 0
    # An accepted chat is never told again.
    await conversations.accept(ids[3], "alice")
    await conversations.leave(ids[3], "alice")
    await conversations.accept(ids[2], "bob")
    await conversations.accept(ids[4], "bob")
    before = await customer_outbox(configured, customer="c3")
    await conversations.tell_queue_positions()
    assert await customer_outbox(configured, customer="c3") == before


async def test_queue_position_off_sends_nothing(services, clock):
    await services.conversations.receive(inbound("Hi", customer="9"))
    assert await customer_outbox(services, customer="9") == []


async def test_auto_close_clock_pauses_outside_hours(configured, clock, redis_url):
    at(clock, 2026, 3, 6, 16, 55)  # Friday, 5 minutes before closing
    cid = (await configured.conversations.receive(inbound("Hi", customer="5"))).conversation_id
    await configured.conversations.accept(cid, "alice")
    await configured.conversations.resolve(cid, "alice")
    # 15 open minutes: 5 on Friday, 10 on Monday from 09:00.
    assert configured.conversations._auto_close_delay(900) == \
        datetime(2026, 3, 9, 9, 10, tzinfo=PARIS).timestamp() - clock.now
    assert pending_timers(redis_url)[("auto_close", cid)] == ("1", datetime(2026, 3, 9, 9, 10, tzinfo=PARIS).timestamp())


async def test_saved_replies_config_admin_edits_search_and_send(configured, clock):
    conversations = configured.conversations
    assert [r.name for r in await conversations.saved_replies()] == ["Greeting", "Refund policy"]
    assert [r.name for r in await conversations.saved_replies("refund")] == ["Refund policy"]
    assert [r.name for r in await conversations.saved_replies("help")] == ["Greeting"]  # matches the text
    with pytest.raises(Refused) as refused:
        await conversations.save_reply("Bye", "Goodbye!", by="alice")
    assert refused.value.code == "not_admin"
    with pytest.raises(Refused) as refused:
        await conversations.save_reply("Bye", "Goodbye {nickname}", by="root")
    assert refused.value.code == "bad_saved_reply" and "{nickname}" in refused.value.reason
    await conversations.save_reply("Bye", "Goodbye {customer_name}!", by="root")
    await conversations.save_reply("refund policy", "Refunds take 3 days.", by="root")  # edits the config's
    await conversations.delete_reply("Greeting", by="root")
    replies = await conversations.saved_replies()
    assert [(r.name, r.text, r.source) for r in replies] == [
        ("Bye", "Goodbye {customer_name}!", "team"), ("refund policy", "Refunds take 3 days.", "team")]
    with pytest.raises(Refused) as refused:
        await conversations.delete_reply("Greeting", by="root")
    assert refused.value.code == "no_saved_reply"

    at(clock, 2026, 3, 9, 10, 0)
    cid = (await conversations.receive(inbound("Hi", customer="7", name="Ada"))).conversation_id
    with pytest.raises(Refused) as refused:
        await conversations.send_saved_reply(cid, "alice", "Bye")
    assert refused.value.code == "not_accepted"
    await conversations.accept(cid, "alice")
    with pytest.raises(Refused) as refused:
        await conversations.send_saved_reply(cid, "bob", "Bye")
    assert refused.value.code == "not_assignee"
    with pytest.raises(Refused) as refused:
        await conversations.may("reply", cid, "bob")
    assert refused.value.code == "not_assignee"
    await conversations.may("reply", cid, "alice")
    assert await conversations.send_saved_reply(cid, "alice", "Bye")
    assert (await customer_outbox(configured, customer="7"))[-1] == "Goodbye Ada!"
    conversation = await configured.store.get(cid)
    assert conversation.messages_out == 1 and conversation.first_response_at == clock.now


async def test_the_sla_clock_counts_open_time_only(make_services, clock, redis_url):
    """``pause_sla`` (the default): a chat arriving at night is escalated ten open minutes after opening."""
    services = make_services(HOURS_QUEUE_REPLIES.replace("[routing]\n", '[routing]\nsla_first_response = "10m"\n'))
    at(clock, 2026, 3, 6, 19, 0)  # Friday evening, closed
    cid = (await services.conversations.receive(inbound("Hi", customer="s1"))).conversation_id
    assert pending_timers(redis_url)[("escalate", cid)] == ("1", datetime(2026, 3, 9, 9, 10, tzinfo=PARIS).timestamp())
    at(clock, 2026, 3, 9, 10, 0)  # open: wall time
    cid = (await services.conversations.receive(inbound("Hi", customer="s2"))).conversation_id
    assert pending_timers(redis_url)[("escalate", cid)] == ("1", clock.now + 600.0)
