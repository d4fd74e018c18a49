"""A returning customer: their previous agent gets the chat alone first, in a DM.

Real ``web`` and ``worker`` processes on a real Redis, fake Slack and Telegram.
The head start ends by a scheduled RQ job in the worker; each test picks a
head start that only the behaviour under test could beat or meet.
"""

from __future__ import annotations

import json

import pytest

from tests.fakes.slack import block_action
from tests.support import eventually, keys
from tests.test_end_to_end import CHANNEL, buttons
from tests.test_slack_card import ACTIVE_BUTTONS, AGENT, OTHER, Chat, card_gateway, chat_in

# The store's keys (``Store.key``) under the default prefix, for this module's plain Redis clients.
KEY = keys()


def returning(gateway) -> tuple[Chat, str, dict]:
    """A customer whose chat AGENT closed writes again: (the old chat, the new chat's id, the DM call)."""
    old = chat_in(gateway, "closed")
    old.customer_writes("Hello again, my parcel is lost now")
    redis = old.redis
    new_id = eventually(
        lambda: (redis.get(KEY("open", "telegram", str(old.customer))) or b"").decode(), what="the new chat")
    assert new_id != old.id
    dm = eventually(lambda: [c for c in old.slack.calls_to("chat.postMessage") if c.params.get("channel") == AGENT],
                    what="the DM to the previous agent")[0]
    return old, new_id, dm


def channel_cards_of(slack, conversation_id: str) -> list:
    return [c for c in slack.calls_to("chat.postMessage")
            if c.params.get("channel") == CHANNEL and "thread_ts" not in c.params
            and c.params["blocks"][-1].get("block_id") == f"chat-{conversation_id}"]


def dm_ts(slack) -> str:
    return next(ts for ts, m in slack.messages.items() if m.get("channel") == AGENT)


def click_in_dm(old: Chat, action: str, conversation_id: str, user: str = AGENT) -> None:
    body = block_action(action, conversation_id, user, AGENT, dm_ts(old.slack), old.slack.response_url)
    assert old.gw.slack_form(body)[0] == 200


def dm_buttons(slack) -> list[str]:
    message = slack.messages[dm_ts(slack)]
    return [e["action_id"] for b in message.get("blocks", []) if b["type"] == "actions" for e in b["elements"]]


@pytest.fixture
def long_head_start(deployment):
    # Far longer than any test waits: only an Accept or a Reject can end it.
    return card_gateway(deployment, routing={"returning_head_start": "10m"})


@pytest.fixture
def short_head_start(deployment):
    return card_gateway(deployment, routing={"returning_head_start": 1})


def test_previous_agent_accepts_in_time_and_the_card_appears_already_assigned(long_head_start):
    old, new_id, dm = returning(long_head_start)
    text = json.dumps(dm.params["blocks"])
    for expected in ("Grace Hopper", "Hello again, my parcel is lost now", "Telegram"):
        assert expected in text
    assert dm_buttons(old.slack) == ["accept", "reject"]
    # During the head start the chat waits in the Inbox, but nobody else is offered it.
    assert old.redis.zscore(KEY("inbox"), new_id) is not None
    assert channel_cards_of(old.slack, new_id) == []

    # The customer adds a message: the previous agent sees it in the DM's thread only.
    old.customer_writes("It was order 991")
    eventually(lambda: any("order 991" in c.params.get("text", "") for c in old.slack.calls_to("chat.postMessage")
                           if c.params.get("channel") == AGENT and c.params.get("thread_ts")),
               what="the message in the DM thread")
    assert channel_cards_of(old.slack, new_id) == []

    click_in_dm(old, "accept", new_id)
    card = eventually(lambda: channel_cards_of(old.slack, new_id), what="the channel card")[0]
    card_ts = next(ts for ts, m in old.slack.messages.items() if m.get("channel") == CHANNEL
                   and m.get("text") == card.params["text"] and "thread_ts" not in m
                   and m["blocks"][-1].get("block_id") == f"chat-{new_id}")
    eventually(lambda: buttons(old.slack, card_ts) == ACTIVE_BUTTONS, what="the card, assigned")
    assert "assigned to <@UAGENT1>" in json.dumps(old.slack.messages[card_ts]["blocks"])
    # The thread catches up with what only the DM saw, once.
    eventually(lambda: any("order 991" in t for t in old.slack.thread_texts(card_ts)), what="the catch-up")
    assert sum("order 991" in t for t in old.slack.thread_texts(card_ts)) == 1
    eventually(lambda: dm_buttons(old.slack) == [], what="the DM without buttons")
    assert "accepted this chat" in json.dumps(old.slack.messages[dm_ts(old.slack)]["blocks"])
    assert old.redis.hget(KEY("conv", new_id), "assignee") == AGENT.encode()


def test_head_start_times_out_and_the_chat_is_offered_to_everyone(short_head_start):
    old, new_id, dm = returning(short_head_start)
    card = eventually(lambda: channel_cards_of(old.slack, new_id), what="the channel card after the head start")[0]
    assert card.at - dm.at >= 0.9  # not before the 1 s head start ended
    assert [e["action_id"] for e in card.params["blocks"][-1]["elements"]] == ["accept", "reject"]
    eventually(lambda: dm_buttons(old.slack) == [], what="the DM without buttons")
    assert "head start is over" in json.dumps(old.slack.messages[dm_ts(old.slack)]["blocks"])
    assert old.redis.hget(KEY("conv", new_id), "state") == b"new"
    # Anyone may take it now; the previous agent's stale DM button is refused.
    card_ts = next(ts for ts, m in old.slack.messages.items() if m.get("channel") == CHANNEL
                   and "thread_ts" not in m and m["blocks"][-1].get("block_id") == f"chat-{new_id}")
    assert old.gw.click("accept", new_id, OTHER, card_ts)[0] == 200
    eventually(lambda: buttons(old.slack, card_ts) == ACTIVE_BUTTONS, what="accepted by the other agent")
    before = len(old.slack.calls_to("response_url"))
    click_in_dm(old, "accept", new_id)
    refusal = eventually(lambda: old.slack.calls_to("response_url")[before:], what="the refusal")
    assert "Too late" in refusal[0].params["text"]
    assert old.redis.hget(KEY("conv", new_id), "assignee") == OTHER.encode()


def test_previous_agent_rejects_and_the_chat_is_offered_at_once(long_head_start):
    old, new_id, _ = returning(long_head_start)
    click_in_dm(old, "reject", new_id)
    card = eventually(lambda: channel_cards_of(old.slack, new_id), what="the channel card")[0]
    assert [e["action_id"] for e in card.params["blocks"][-1]["elements"]] == ["accept", "reject"]
    card_ts = next(ts for ts, m in old.slack.messages.items() if m.get("channel") == CHANNEL
                   and "thread_ts" not in m and m["blocks"][-1].get("block_id") == f"chat-{new_id}")
    eventually(lambda: "Declined by <@UAGENT1>" in json.dumps(old.slack.messages[card_ts]["blocks"]),
               what="who declined, on the card")
    eventually(lambda: dm_buttons(old.slack) == [], what="the DM without buttons")
    assert "You declined" in json.dumps(old.slack.messages[dm_ts(old.slack)]["blocks"])
    assert old.redis.hget(KEY("conv", new_id), "state") == b"new"
    assert len(channel_cards_of(old.slack, new_id)) == 1


def test_previous_agent_out_of_reach_means_no_head_start(long_head_start):
    old = chat_in(long_head_start, "closed")
    eventually(lambda: any("This chat is closed" in t for t in old.thread()), what="the closed note")
    # Slack refuses the DM (the agent was deactivated): the next call fails once.
    old.slack.failures.append((200, {"ok": False, "error": "user_not_found"}, {}))
    old.customer_writes("Hello again, anyone there?")
    new_id = eventually(
        lambda: (old.redis.get(KEY("open", "telegram", str(old.customer))) or b"").decode(), what="the new chat")
    card = eventually(lambda: channel_cards_of(old.slack, new_id), what="the channel card at once")[0]
    assert [e["action_id"] for e in card.params["blocks"][-1]["elements"]] == ["accept", "reject"]
    # No head start was given: no DM with Accept/Reject reached the agent.
    assert not [c for c in old.slack.calls_to("chat.postMessage") if c.params.get("channel") == AGENT
                and c.params.get("blocks")]
