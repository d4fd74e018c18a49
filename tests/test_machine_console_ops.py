"""The console's extra state-machine operations on a real Redis: sound, notes, reassign, offer."""

from __future__ import annotations

import pytest

from gateway.message import Refused, State
from tests.test_machine import active_chat, customer_outbox, inbound, new_chat


async def test_sound_is_per_agent_and_chat_and_only_the_assignee_may_switch_it(services):
    cid = await active_chat(services, agent="U1")
    other = await active_chat(services, agent="U1", customer="43")
    assert await services.store.sound(cid, "U1")  # on until turned off
    await services.conversations.set_sound(cid, "U1", False)
    assert not await services.store.sound(cid, "U1")
    assert await services.store.sound(other, "U1")  # another chat keeps its own setting
    with pytest.raises(Refused) as refusal:
        await services.conversations.set_sound(cid, "U1", False)
    assert refusal.value.code == "sound_already_off"
    with pytest.raises(Refused) as refusal:
        await services.conversations.set_sound(cid, "U2", True)
    assert refusal.value.code == "not_assignee"
    assert not await services.store.sound(cid, "U1")

    await services.conversations.resolve(cid, "U1")
    with pytest.raises(Refused) as refusal:
        await services.conversations.set_sound(cid, "U1", True)
    assert refusal.value.code == "not_active"
    fresh = await new_chat(services, customer="44")
    with pytest.raises(Refused) as refusal:
        await services.conversations.set_sound(fresh, "U1", True)
    assert refusal.value.code == "not_accepted"


async def test_a_note_is_kept_but_never_queued_and_is_not_a_reply(services):
    cid = await active_chat(services, agent="U1")
    assert await services.conversations.note(cid, "U1", "note: VIP customer", platform_id="C1:1.1")
    assert not await services.conversations.note(cid, "U1", "note: VIP customer", platform_id="C1:1.1")
    history = await services.store.history(cid)
    assert [(h.direction, h.by, h.text) for h in history][-1] == ("note", "U1", "note: VIP customer")
    assert len([h for h in history if h.direction == "note"]) == 1
    conversation = await services.store.get(cid)
    assert conversation.first_response_at is None and conversation.messages_out == 0
    assert await customer_outbox(services) == []
    with pytest.raises(Refused) as refusal:
        await services.conversations.note(cid, "U2", "note: mine")
    assert refusal.value.code == "not_assignee"


@pytest.fixture
async def team_services(make_services):
    """Services with a declared team: agents U1-U3 and the admin UADMIN."""
    agents = "".join(f'\n[[agents]]\nid = "{a}"\n' for a in ("U1", "U2", "U3"))
    return make_services(agents + '[[agents]]\nid = "UADMIN"\nadmin = true\n')


async def test_reassign_moves_the_chat_between_assigned_lists_at_once(team_services):
    services = team_services
    cid = await active_chat(services, agent="U1")
    previous = await services.conversations.reassign(cid, "UADMIN", "U2")
    assert previous == "U1"
    conversation = await services.store.get(cid)
    assert conversation.assignee == "U2" and conversation.state is State.ACTIVE
    assert [c.id for c in (await services.store.assigned("U1")).conversations] == []
    assert [c.id for c in (await services.store.assigned("U2")).conversations] == [cid]
    # The new assignee works the chat; the old one no longer can.
    await services.conversations.reply(cid, "U2", "Taking over")
    with pytest.raises(Refused):
        await services.conversations.reply(cid, "U1", "Me too")
    with pytest.raises(Refused) as refusal:
        await services.conversations.reassign(cid, "UADMIN", "U2")
    assert refusal.value.code == "already_assigned"

    await services.conversations.resolve(cid, "U2")
    await services.conversations.reassign(cid, "UADMIN", "U3")
    assert (await services.store.get(cid)).state is State.RESOLVED
    assert [c.id for c in (await services.store.assigned("U3")).conversations] == [cid]
    await services.conversations.leave(cid, "U3")
    with pytest.raises(Refused) as refusal:
        await services.conversations.reassign(cid, "UADMIN", "U1")
    assert refusal.value.code == "closed"
    waiting = await new_chat(services, customer="45")
    with pytest.raises(Refused) as refusal:
        await services.conversations.reassign(waiting, "UADMIN", "U1")
    assert refusal.value.code == "reassign_new"
    assert (await services.store.get(waiting)).assignee == ""


async def test_offer_happens_once_and_only_for_a_chat_still_waiting(services):
    cid = await new_chat(services)
    assert await services.conversations.offer(cid)
    assert not await services.conversations.offer(cid)  # a repeated job changes nothing
    accepted = await active_chat(services, customer="46")
    assert not await services.conversations.offer(accepted)
    assert (await services.store.get(accepted)).assignee == "U1"
    await services.conversations.receive(inbound("still there?", customer="42"))
    assert (await services.store.get(cid)).state is State.NEW
