"""Every transition and refusal of the conversation state machine, on a real Redis."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from gateway.message import InboundMessage, Refused, State
from tests.conftest import pending_timers, queued_jobs

_ids = itertools.count(1)


def inbound(text: str, customer: str = "42", channel: str = "telegram", platform_id: str | None = None,
            **extra) -> InboundMessage:
    return InboundMessage(channel=channel, customer_id=customer,
                          platform_id=platform_id or f"{customer}:{next(_ids)}", text=text,
                          name=extra.pop("name", "Ada Lovelace"), **extra)


async def customer_outbox(services, channel="telegram", customer="42") -> list[str]:
    import json

    raw = await services.store.redis.lrange(services.store.customer_outbox(channel, customer), 0, -1)
    return [json.loads(item)["text"] for item in raw]


async def new_chat(services, text="Where is my parcel?", customer="42") -> str:
    received = await services.conversations.receive(inbound(text, customer=customer))
    assert received.event == "created"
    return received.conversation_id


async def active_chat(services, agent="U1", **kwargs) -> str:
    cid = await new_chat(services, **kwargs)
    await services.conversations.accept(cid, agent)
    return cid


async def test_first_message_creates_a_new_tagged_conversation_in_the_inbox(services, redis_url):
    received = await services.conversations.receive(
        inbound("Hi, ORDER #1234 never arrived", phone="+441234", location="London"))
    assert received.event == "created"
    conversation = await services.store.get(received.conversation_id)
    assert conversation.state is State.NEW
    assert conversation.topic == "delivery"
    assert conversation.query == "Hi, ORDER #1234 never arrived"
    assert (conversation.name, conversation.phone, conversation.location) == ("Ada Lovelace", "+441234", "London")
    assert conversation.messages_in == 1 and conversation.messages_out == 0
    inbox = await services.store.inbox()
    assert [c.id for c in inbox.conversations] == [received.conversation_id]
    history = await services.store.history(received.conversation_id)
    assert [(h.direction, h.text) for h in history] == [("in", "Hi, ORDER #1234 never arrived")]
    # The agents' console is told through its outbox, listed as ready for a drain job.
    ready = await services.store.redis.lrange(services.store.key("ready"), 0, -1)
    assert services.store.console_outbox("fake", received.conversation_id).encode() in ready
    assert ("drain_ready", ("ready",)) in queued_jobs(redis_url)


async def test_unmatched_message_gets_topic_general(services):
    cid = await new_chat(services, "hello there")
    assert (await services.store.get(cid)).topic == "general"


async def test_same_platform_message_twice_is_stored_once(services):
    message = inbound("Hello", platform_id="42:7")
    first = await services.conversations.receive(message)
    second = await services.conversations.receive(message)
    assert second.event == "duplicate"
    assert second.conversation_id == first.conversation_id
    assert len(await services.store.history(first.conversation_id)) == 1
    assert (await services.store.get(first.conversation_id)).messages_in == 1


async def test_more_customer_messages_join_the_open_conversation(services):
    cid = await new_chat(services)
    again = await services.conversations.receive(inbound("Anyone there?"))
    assert (again.event, again.conversation_id) == ("message", cid)
    assert (await services.store.get(cid)).messages_in == 2
    # Another channel is another conversation, even with the same id.
    other = await services.conversations.receive(inbound("Hi", channel="sms"))
    assert other.event == "created" and other.conversation_id != cid


async def test_accept_assigns_and_moves_from_inbox_to_assigned(services):
    cid = await new_chat(services)
    await services.conversations.accept(cid, "U1")
    conversation = await services.store.get(cid)
    assert conversation.state is State.ACTIVE and conversation.assignee == "U1"
    assert (await services.store.inbox()).total == 0
    assert [c.id for c in (await services.store.assigned("U1")).conversations] == [cid]


async def test_ten_agents_accept_at_once_exactly_one_wins(services):
    cid = await new_chat(services)
    agents = [f"U{i}" for i in range(10)]
    results = await asyncio.gather(*(services.conversations.accept(cid, a) for a in agents),
                                   return_exceptions=True)
    winners = [a for a, r in zip(agents, results) if r is None]
    losers = [r for r in results if isinstance(r, Refused)]
    assert len(winners) == 1 and len(losers) == 9
    assert all(r.code == "taken" and winners[0] in r.reason for r in losers)
    conversation = await services.store.get(cid)
    assert conversation.assignee == winners[0]
    assigned_lists = [(await services.store.assigned(a)).total for a in agents]
    assert sorted(assigned_lists) == [0] * 9 + [1]


async def test_double_accept_by_the_same_agent_changes_nothing(services):
    cid = await active_chat(services, "U1")
    with pytest.raises(Refused) as refusal:
        await services.conversations.accept(cid, "U1")
    assert refusal.value.code == "already_yours"
    assert (await services.store.assigned("U1")).total == 1


async def test_reject_keeps_the_chat_in_the_inbox_and_remembers_who_declined(services):
    cid = await new_chat(services)
    await services.conversations.reject(cid, "U2")
    conversation = await services.store.get(cid)
    assert conversation.state is State.NEW and conversation.declined_by == ("U2",)
    assert (await services.store.inbox()).total == 1
    with pytest.raises(Refused) as again:
        await services.conversations.reject(cid, "U2")
    assert again.value.code == "already_declined"
    await services.conversations.accept(cid, "U3")
    with pytest.raises(Refused) as late:
        await services.conversations.reject(cid, "U4")
    assert late.value.code == "not_new"


async def test_controls_before_accept_are_refused(services):
    cid = await new_chat(services)
    for operation in (services.conversations.resolve, services.conversations.leave):
        with pytest.raises(Refused) as refusal:
            await operation(cid, "U1")
        assert refusal.value.code == "not_accepted"
    with pytest.raises(Refused) as refusal:
        await services.conversations.reply(cid, "U1", "hello")
    assert refusal.value.code == "not_accepted"
    assert (await services.store.get(cid)).state is State.NEW


async def test_only_the_assignee_may_reply_resolve_or_leave(services):
    cid = await active_chat(services, "U1")
    for operation in (services.conversations.resolve, services.conversations.leave):
        with pytest.raises(Refused) as refusal:
            await operation(cid, "U2")
        # The core names the assignee by id (each console renders it its own way), never in Slack markup.
        assert refusal.value.code == "not_assignee" and refusal.value.detail == "U1"
        assert "(U1)" in refusal.value.reason and "<@" not in refusal.value.reason
    with pytest.raises(Refused):
        await services.conversations.reply(cid, "U2", "let me help")
    conversation = await services.store.get(cid)
    assert conversation.state is State.ACTIVE and conversation.messages_out == 0
    assert await customer_outbox(services) == []


async def test_reply_is_queued_for_the_customer_and_sets_first_response(services, redis_url):
    cid = await active_chat(services, "U1")
    assert await services.conversations.reply(cid, "U1", "Hello Ada!", platform_id="C1:1.1")
    assert await services.conversations.reply(cid, "U1", "Let me check.", platform_id="C1:1.2")
    # Slack retried the event: nothing is sent twice.
    assert not await services.conversations.reply(cid, "U1", "Let me check.", platform_id="C1:1.2")
    assert await customer_outbox(services) == ["Hello Ada!", "Let me check."]
    conversation = await services.store.get(cid)
    assert conversation.messages_out == 2
    assert conversation.first_response is not None and conversation.first_response >= 0
    ready = await services.store.redis.lrange(services.store.key("ready"), 0, -1)
    assert services.store.customer_outbox("telegram", "42").encode() in ready


async def test_customer_message_to_active_chat_is_relayed(services):
    cid = await active_chat(services, "U1")
    received = await services.conversations.receive(inbound("Thanks!"))
    assert (received.event, received.conversation_id) == ("message", cid)
    assert (await services.store.get(cid)).state is State.ACTIVE


async def test_resolve_asks_for_a_rating_and_schedules_the_auto_close(services, redis_url):
    cid = await active_chat(services, "U1")
    await services.conversations.resolve(cid, "U1")
    conversation = await services.store.get(cid)
    assert conversation.state is State.RESOLVED and conversation.resolved_at
    assert await customer_outbox(services) == [services.config.conversation.rating_question]
    token, due = pending_timers(redis_url)[("auto_close", cid)]
    assert token == "1" and due == pytest.approx(conversation.resolved_at + services.config.conversation.auto_close_after)
    with pytest.raises(Refused) as again:
        await services.conversations.resolve(cid, "U1")
    assert again.value.code == "already_resolved"
    with pytest.raises(Refused) as reply:
        await services.conversations.reply(cid, "U1", "one more thing")
    assert reply.value.code == "resolved"


async def test_rating_is_stored_once_and_other_messages_reopen(services, redis_url):
    cid = await active_chat(services, "U1")
    await services.conversations.resolve(cid, "U1")
    rated = await services.conversations.receive(inbound(" 4 "))
    assert rated.event == "rated"
    conversation = await services.store.get(cid)
    assert conversation.rating == 4 and conversation.state is State.RESOLVED
    assert (await customer_outbox(services))[-1] == services.config.conversation.rating_thanks
    # Anything after that reopens the chat to the same agent and cancels the auto-close.
    reopened = await services.conversations.receive(inbound("Actually, one more question"))
    assert reopened.event == "reopened"
    conversation = await services.store.get(cid)
    assert conversation.state is State.ACTIVE and conversation.assignee == "U1" and conversation.rating == 4
    assert ("auto_close", cid) not in pending_timers(redis_url)


async def test_non_rating_answer_to_the_question_reopens(services):
    cid = await active_chat(services, "U1")
    await services.conversations.resolve(cid, "U1")
    assert (await services.conversations.receive(inbound("6"))).event == "reopened"
    assert (await services.store.get(cid)).rating is None


async def test_leave_an_active_chat_hands_it_back_to_the_inbox(services):
    cid = await active_chat(services, "U1")
    assert await services.conversations.leave(cid, "U1") == "new"
    conversation = await services.store.get(cid)
    assert conversation.state is State.NEW and conversation.assignee == "" and conversation.previous_agent == "U1"
    assert (await services.store.assigned("U1")).total == 0
    assert [c.id for c in (await services.store.inbox()).conversations] == [cid]
    await services.conversations.accept(cid, "U2")
    assert (await services.store.get(cid)).assignee == "U2"


async def test_leave_a_resolved_chat_closes_it_and_the_next_message_starts_anew(services):
    cid = await active_chat(services, "U1")
    await services.conversations.resolve(cid, "U1")
    assert await services.conversations.leave(cid, "U1") == "closed"
    closed = await services.store.get(cid)
    assert closed.state is State.CLOSED and closed.closed_at is not None
    assert (await services.store.assigned("U1")).total == 0
    assert (await services.store.closed()).total == 1
    for operation in (services.conversations.accept, services.conversations.reject,
                      services.conversations.resolve, services.conversations.leave):
        with pytest.raises(Refused) as refusal:
            await operation(cid, "U1")
        assert refusal.value.code == "closed"
    # The customer writes again: a new conversation that remembers the previous agent.
    again = await services.conversations.receive(inbound("Hello again"))
    assert again.event == "created" and again.conversation_id != cid
    new = await services.store.get(again.conversation_id)
    assert new.previous_agent == "U1" and new.name == "Ada Lovelace"


def scheduled_close_token(redis_url: str, cid: str) -> str:
    return pending_timers(redis_url)[("auto_close", cid)][0]


async def test_auto_close_closes_only_a_still_resolved_chat(services, redis_url):
    cid = await active_chat(services, "U1")
    await services.conversations.resolve(cid, "U1")
    stale = scheduled_close_token(redis_url, cid)
    await services.conversations.receive(inbound("wait, no"))  # reopened: the old token is stale
    assert ("auto_close", cid) not in pending_timers(redis_url)
    assert not await services.conversations.auto_close(cid, stale)
    assert (await services.store.get(cid)).state is State.ACTIVE
    await services.conversations.resolve(cid, "U1")
    token = scheduled_close_token(redis_url, cid)
    assert token != stale
    assert await services.conversations.auto_close(cid, token)
    assert (await services.store.get(cid)).state is State.CLOSED
    assert not await services.conversations.auto_close(cid, token)


async def test_unknown_conversation_is_refused(services):
    for operation in (services.conversations.accept, services.conversations.reject,
                      services.conversations.resolve, services.conversations.leave):
        with pytest.raises(Refused) as refusal:
            await operation("999", "U1")
        assert refusal.value.code == "unknown"


async def test_lists_are_ordered_by_last_activity_with_paging(services, clock):
    ids = []
    for i in range(5):
        clock.advance(1)
        ids.append(await new_chat(services, f"question {i}", customer=str(100 + i)))
    clock.advance(1)
    await services.conversations.receive(inbound("bump", customer="101"))  # ids[1] is now the latest
    first = await services.store.inbox(offset=0, limit=2)
    assert [c.id for c in first.conversations] == [ids[1], ids[4]]
    assert first.total == 5 and first.has_more
    last = await services.store.inbox(offset=4, limit=2)
    assert [c.id for c in last.conversations] == [ids[0]] and not last.has_more


async def test_profile_details_shared_later_reach_the_conversation(services):
    cid = await new_chat(services)
    await services.conversations.receive(inbound("Shared contact", phone="+15550001"))
    await services.conversations.receive(inbound("Shared location", location="52.52, 13.40"))
    conversation = await services.store.get(cid)
    assert (conversation.phone, conversation.location) == ("+15550001", "52.52, 13.40")


async def test_a_finally_failed_message_can_be_sent_again_by_the_assignee(services):
    cid = await active_chat(services, "U1")
    await services.conversations.reply(cid, "U1", "Your refund is on its way")
    seq = (await services.store.history(cid))[-1].seq
    with pytest.raises(Refused) as not_failed:
        await services.conversations.redeliver(cid, seq, "U1")
    assert not_failed.value.code == "not_failed"
    await services.conversations.record_delivery(cid, seq, "failed", "Telegram refused the message: chat not found")
    assert (await services.store.message(cid, seq)).status == "failed"
    assert (await services.store.get(cid)).undelivered == 1  # flagged in the consoles until retried
    with pytest.raises(Refused) as stranger:
        await services.conversations.redeliver(cid, seq, "U2")
    assert stranger.value.code == "not_assignee"
    await services.conversations.redeliver(cid, seq, "U1")
    entry = await services.store.message(cid, seq)
    assert (entry.status, entry.detail) == ("queued", "")
    assert (await services.store.get(cid)).undelivered == 0
    assert await customer_outbox(services) == ["Your refund is on its way", "Your refund is on its way"]
    with pytest.raises(Refused) as twice:  # a double click queues it once
        await services.conversations.redeliver(cid, seq, "U1")
    assert twice.value.code == "not_failed"
