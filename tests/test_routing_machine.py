"""Routing in the state machine, in-process on a real Redis: topic teams, capacity, transfer,
who held a chat when, and the first-response SLA escalation (on the scripted clock)."""

from __future__ import annotations

import pytest

from chatgate.compose import channel_classes, connect, console_classes
from gateway.events import AgentEvent, EventKind
from gateway.message import Refused, State
from tests.conftest import pending_timers
from tests.support import keys
from tests.test_machine import inbound

# The store's keys (``Store.key``) under the default prefix, for this module's plain Redis clients.
KEY = keys()

ROUTED = """
[routing]
max_active_per_agent = 2
topic_fallback_after = "2m"
sla_first_response = "5m"
sla_repeat = "5m"

[[agents]]
id = "ann"
[[agents]]
id = "bob"
max_active = 1
[[agents]]
id = "cat"
[[agents]]
id = "boss"
admin = true

[[topics]]
name = "billing"
keywords = ["invoice", "refund"]
agents = ["ann", "bob"]

[[topics]]
name = "delivery"
keywords = ["parcel"]

[[topics]]
name = "legal"
keywords = ["lawyer"]
group = "SNOBODY"  # a group nobody is in

[fakeconsole]
enabled = true
[fakechannel]
enabled = true
"""


@pytest.fixture
async def routed(redis_url, make_config, clock):
    from tests.fakes.ports import FakeChannel, FakeConsole

    config = make_config(ROUTED)
    services = connect(config, redis_url, channels=[*channel_classes(), FakeChannel],
                       consoles=[*console_classes(), FakeConsole], clock=clock)
    yield services
    await services.close()


async def chat(services, text: str, customer: str) -> str:
    received = await services.conversations.receive(inbound(text, customer=customer))
    assert received.event == "created"
    return received.conversation_id


async def events(services, conversation_id: str) -> list[AgentEvent]:
    raw = await services.store.redis.lrange(services.store.console_outbox("fake", conversation_id), 0, -1)
    return [AgentEvent.from_json(item) for item in raw]


async def test_topic_team_alone_may_accept_and_sees_it_in_the_inbox(routed, redis_url):
    c = routed.conversations
    billing = await chat(routed, "Where is my refund?", "1")
    other = await chat(routed, "My parcel is late", "2")
    assert (await routed.store.get(billing)).team_only
    with pytest.raises(Refused) as refused:
        await c.accept(billing, "cat")
    assert refused.value.code == "not_in_team" and "billing" in refused.value.reason
    assert (await routed.store.get(billing)).state is State.NEW
    # The Inbox: cat does not serve billing; ann does; everyone gets the untouched topic.
    for agent, expected in (("cat", [other]), ("ann", [other, billing])):
        served = await c.routes.served_topics(agent)
        page = await routed.store.inbox_for(agent, served=served)
        assert sorted(x.id for x in page.conversations) == sorted(expected), agent
    # The wait for the team is a scheduled job; when it runs nobody on the team had accepted.
    assert ("open_to_all", billing) in pending_timers(redis_url)  # a timer, not due yet
    assert await c.open_to_all(billing)
    assert not await c.open_to_all(billing)  # once
    assert EventKind.OPENED_TO_ALL in [e.kind for e in await events(routed, billing)]
    page = await routed.store.inbox_for("cat", served=await c.routes.served_topics("cat"))
    assert billing in [x.id for x in page.conversations]
    await c.accept(billing, "cat")
    assert (await routed.store.get(billing)).assignee == "cat"


async def test_a_team_with_no_one_holds_nothing_back(routed):
    legal = await chat(routed, "I need a lawyer", "3")
    assert (await routed.store.get(legal)).team_only  # offered to the (empty) group first...
    await routed.conversations.accept(legal, "cat")  # ...but nobody is refused for it
    assert (await routed.store.get(legal)).assignee == "cat"


async def test_capacity_default_and_per_agent(routed):
    c = routed.conversations
    ids = [await chat(routed, f"parcel {n}", f"c{n}") for n in range(4)]
    await c.accept(ids[0], "bob")
    with pytest.raises(Refused) as refused:
        await c.accept(ids[1], "bob")  # bob's own max_active = 1
    assert refused.value.code == "at_capacity"
    await c.accept(ids[1], "ann")
    await c.accept(ids[2], "ann")
    with pytest.raises(Refused):
        await c.accept(ids[3], "ann")  # the default: 2
    # A resolved chat leaves room.
    await c.resolve(ids[1], "ann")
    await c.accept(ids[3], "ann")
    assert await routed.store.active_counts(["ann", "bob", "cat"]) == {"ann": 2, "bob": 1, "cat": 0}
    # Reassign to a full agent is refused too; to one with room it works.
    with pytest.raises(Refused) as refused:
        await c.reassign(ids[2], "boss", "bob")
    assert refused.value.code == "at_capacity" and refused.value.detail == "bob"
    await c.reassign(ids[2], "boss", "cat")


async def test_transfer_with_a_note_keeps_who_held_the_chat_when(routed, clock):
    c = routed.conversations
    cid = await chat(routed, "parcel lost", "5")
    clock.advance(10)
    await c.accept(cid, "ann")
    clock.advance(60)
    for agent, target, code in (("bob", "cat", "not_assignee"), ("ann", "ann", "transfer_self"),
                                ("ann", "nobody", "not_agent_target"), ("ann", "", "no_target")):
        with pytest.raises(Refused) as refused:
            await c.transfer(cid, agent, target, "x")
        assert refused.value.code == code
    await c.accept(await chat(routed, "parcel 2", "6"), "bob")  # bob is full now
    with pytest.raises(Refused) as refused:
        await c.transfer(cid, "ann", "bob", "over to you")
    assert refused.value.code == "at_capacity"
    await c.transfer(cid, "ann", "cat", "Customer wants a callback")
    conversation = await routed.store.get(cid)
    assert conversation.assignee == "cat" and conversation.state is State.ACTIVE
    assert [x.id for x in (await routed.store.assigned("ann")).conversations] == []
    assert [x.id for x in (await routed.store.assigned("cat")).conversations] == [cid]
    t0 = 1_767_225_600.0
    assert [(h["agent"], h["from"], h["to"]) for h in conversation.holders] == [("ann", t0 + 10, t0 + 70),
                                                                                ("cat", t0 + 70, 0)]
    note = (await routed.store.history(cid))[-1]
    assert (note.direction, note.text, note.by) == ("note", "Customer wants a callback", "ann")
    transferred = [e for e in await events(routed, cid) if e.kind is EventKind.TRANSFERRED]
    assert [(e.by, e.to, e.seq) for e in transferred] == [("ann", "cat", note.seq)]
    # Only the new assignee works the chat now.
    with pytest.raises(Refused):
        await c.reply(cid, "ann", "hello")
    clock.advance(30)
    await c.leave(cid, "cat")  # back to the Inbox: the holding ends
    holders = (await routed.store.get(cid)).holders
    assert holders[-1]["to"] == t0 + 100


async def test_sla_escalates_until_accepted_and_counts(routed, redis_url):
    c = routed.conversations
    cid = await chat(routed, "parcel again", "7")

    def scheduled() -> set[str]:
        return {member.decode() for member in
                __import__("redis").Redis.from_url(redis_url).zrange(KEY("timers"), 0, -1)}

    assert f"escalate|{cid}|1" in scheduled()
    assert await c.escalate(cid) == 1
    assert f"escalate|{cid}|2" in scheduled()
    assert await c.escalate(cid) == 2
    assert (await routed.store.get(cid)).escalations == 2
    assert [e.kind for e in await events(routed, cid)].count(EventKind.ESCALATED) == 2
    await c.accept(cid, "cat")
    assert await c.escalate(cid) == 0  # accepted: no more escalations, none scheduled
    assert f"escalate|{cid}|4" not in scheduled()
    assert await routed.store.escalations_total() == 2
    # After Leave it waits again, but it was answered once: the first-response SLA is met.
    await c.leave(cid, "cat")
    assert await c.escalate(cid) == 0


async def test_check_config_names_the_new_keys(make_config):
    from gateway.config import ConfigError

    with pytest.raises(ConfigError) as error:
        make_config("""
[routing]
max_active_per_agent = -1
sla_first_response = "soon"
topic_fallback_after = "x"
[[agents]]
id = "ann"
max_active = "two"
[[topics]]
name = "billing"
keywords = ["refund"]
slack_channel = "billing"
agents = ["zed"]
group = "nope"
""")
    text = "\n".join(error.value.problems)
    for expected in ("routing.max_active_per_agent: expected a whole number >= 0",
                     "routing.sla_first_response: expected a duration",
                     "routing.topic_fallback_after: expected a duration",
                     "agents[0].max_active: expected a whole number >= 0",
                     "topics[0].slack_channel: expected nothing here: it moved to [slack] topic_channels = "
                     '{ billing = "billing" }',
                     "topics[0].agents: expected ids of [[agents]]",
                     "topics[0].group: expected a Slack user group id"):
        assert expected in text, text
    assert "config.toml" in text
