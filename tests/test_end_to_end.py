"""A customer on Telegram and agents in Slack, through the real web server and a real worker.

Slack and Telegram are local fakes speaking their wire format; chatgate runs as
two processes (``chatgate web`` and ``chatgate worker``) on a real Redis.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import CHANNEL, SIGNING_SECRET, TELEGRAM_SECRET, Gateway  # noqa: F401 - used by other modules
from tests.fakes.slack import FakeSlack, block_action, message_event, sign
from tests.fakes.telegram import text_update
from tests.support import eventually, keys

# The store's keys (``Store.key``) under the default prefix, for this module's plain Redis clients.
KEY = keys()

CHAT_ID = 777000111


@pytest.fixture
def running(deployment):
    """A gateway with a greeting, a 1 s head start and a 1 s auto-close; (Gateway, FakeSlack, FakeTelegram)."""
    started = deployment(
        env={"TEST_SLACK_SIGNING_SECRET": SIGNING_SECRET},
        server={"public_url": "http://127.0.0.1"},
        telegram={"greeting": "Welcome to Acme support!"},
        slack={"signing_secret": "env:TEST_SLACK_SIGNING_SECRET"},
        routing={"returning_head_start": 1},
        conversation={"auto_close": True, "auto_close_after": 1},
        tail='[[topics]]\nname = "delivery"\nkeywords = ["parcel"]\n',
    )
    return started.gateway, started.slack, started.telegram


def card_posts(slack: FakeSlack):
    return [c for c in slack.calls_to("chat.postMessage")
            if c.params.get("channel") == CHANNEL and "thread_ts" not in c.params]


def latest_card(slack: FakeSlack, ts: str) -> str:
    """The card's current blocks, as text."""
    return json.dumps(slack.messages[ts].get("blocks", []))


def buttons(slack: FakeSlack, ts: str) -> list[str]:
    blocks = slack.messages[ts].get("blocks", [])
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_telegram_customer_and_slack_agent_full_flow(running):
    gateway, slack, telegram = running

    # /start gets the greeting and opens no chat.
    assert gateway.telegram(text_update(1, CHAT_ID, "/start"))[0] == 200
    eventually(lambda: telegram.sent_texts(CHAT_ID), what="the greeting")
    assert telegram.sent_texts(CHAT_ID) == ["Welcome to Acme support!"]

    # The customer writes: a card appears in the channel with the profile and Accept/Reject.
    assert gateway.telegram(text_update(2, CHAT_ID, "My parcel is late"))[0] == 200
    cards = eventually(lambda: card_posts(slack), what="the chat card")
    card_ts = slack.messages and next(ts for ts, m in slack.messages.items() if m.get("channel") == CHANNEL)
    card = latest_card(slack, card_ts)
    for expected in ("Ada Lovelace", "My parcel is late", "Telegram", "delivery"):
        assert expected in card
    assert buttons(slack, card_ts) == ["accept", "reject"]
    conversation_id = cards[0].params["blocks"][-1]["elements"][0]["value"]

    # An agent accepts: the card shows the assignee and A-D (go back to chat, sound, leave, resolve).
    assert gateway.click("accept", conversation_id, "UAGENT1", card_ts)[0] == 200
    eventually(lambda: buttons(slack, card_ts) == ["open_chat", "sound_off", "leave", "resolve", "saved_reply", "transfer", "reassign"],
               what="the accepted card")
    assert "<@UAGENT1>" in latest_card(slack, card_ts)

    # A second agent is too late, and told so privately.
    assert gateway.click("accept", conversation_id, "UAGENT2", card_ts)[0] == 200
    eventually(lambda: any("Too late" in t for t in slack.ephemerals()), what="the refusal")

    # The customer's next message lands in the card's thread.
    gateway.telegram(text_update(3, CHAT_ID, "Order 5521, sent last week"))
    eventually(lambda: any("Order 5521" in t for t in slack.thread_texts(card_ts)), what="the thread message")

    # The assignee replies in the thread: Telegram gets it.
    assert gateway.say("UAGENT1", "Hi Ada, let me check that for you.", card_ts)[0] == 200
    eventually(lambda: "Hi Ada, let me check that for you." in telegram.sent_texts(CHAT_ID), what="the reply")

    # Someone else's reply is not sent, and they are told why.
    gateway.say("UAGENT2", "I can help too", card_ts)
    eventually(lambda: any("Not sent to the customer" in t for t in slack.ephemerals()), what="the refusal")
    assert "I can help too" not in telegram.sent_texts(CHAT_ID)

    # Resolve: the customer gets the rating question and answers 5.
    gateway.click("resolve", conversation_id, "UAGENT1", card_ts)
    eventually(lambda: any("rate" in x for x in telegram.sent_texts(CHAT_ID)), what="the rating question")
    gateway.telegram(text_update(4, CHAT_ID, "5"))
    eventually(lambda: "5/5" in latest_card(slack, card_ts), what="the rating on the card")
    store = gateway.store()
    assert store.hget(KEY("conv", conversation_id), "rating") == b"5"

    # Auto-close after 1 s: the card shows Closed and no buttons.
    eventually(lambda: "Closed" in latest_card(slack, card_ts), timeout=20, what="the auto-close")
    assert buttons(slack, card_ts) == []
    assert store.hget(KEY("conv", conversation_id), "state") == b"closed"
    # The customer's outbox is drained independently of Slack's: under load the thanks may still be on its way.
    eventually(lambda: "Thank you for your rating!" in telegram.sent_texts(CHAT_ID), what="the thanks")
    sent_before = len(telegram.sent_texts(CHAT_ID))
    assert telegram.sent_texts(CHAT_ID)[:4] == [
        "Welcome to Acme support!", "Hi Ada, let me check that for you.",
        "Your chat has been resolved. How would you rate our help from 1 (poor) to 5 (excellent)?",
        "Thank you for your rating!",
    ]

    # The customer writes again: a new chat, and the previous agent hears first, in a DM
    # (the channel card follows when the 1 s head start ends).
    gateway.telegram(text_update(5, CHAT_ID, "Hello again, new question"))
    new_cards = eventually(lambda: card_posts(slack)[1:], what="the second card")
    dms = [c for c in slack.calls_to("chat.postMessage") if c.params.get("channel") == "UAGENT1"]
    assert len(dms) == 1 and "Hello again, new question" in dms[0].params["text"]
    assert dms[0].at <= new_cards[0].at
    assert new_cards[0].params["blocks"][-1]["elements"][0]["value"] != conversation_id
    # Nothing was sent to the customer twice.
    assert len(telegram.sent_texts(CHAT_ID)) == sent_before


def test_forged_telegram_secret_and_bad_slack_signature_store_nothing(running):
    gateway, slack, telegram = running
    store = gateway.store()
    status, body = gateway.telegram(text_update(10, CHAT_ID, "hello"), secret="wrong")
    assert status == 401 and "secret" in body
    status, _ = gateway.post("/webhooks/telegram", json.dumps(text_update(11, CHAT_ID, "hi")).encode(),
                             {"Content-Type": "application/json"})
    assert status == 401
    # Nothing at all, but the lock of a retention pass the worker may be running meanwhile.
    assert set(store.keys(KEY("*"))) - {KEY("retention", "lock").encode()} == set()

    # A real chat, then a forged click and a forged reply on it.
    gateway.telegram(text_update(12, CHAT_ID, "hello"))
    eventually(lambda: card_posts(slack), what="the card")
    card_ts = next(ts for ts, m in slack.messages.items() if m.get("channel") == CHANNEL)
    body = block_action("accept", "1", "UEVIL", CHANNEL, card_ts, slack.response_url)
    assert gateway.slack_form(body, secret="not-the-secret")[0] == 401
    stale = {"Content-Type": "application/x-www-form-urlencoded",
             **sign(SIGNING_SECRET, body, timestamp=int(time.time()) - 600)}
    assert gateway.post("/slack/events", body.encode(), stale)[0] == 401
    assert store.hget(KEY("conv", "1"), "state") == b"new"
    forged_reply = message_event("UEVIL", CHANNEL, "phishing link", "1.000001", card_ts)
    assert gateway.slack_event(forged_reply, secret="nope")[0] == 401
    assert store.hget(KEY("conv", "1"), "messages_out") == b"0"


def test_malformed_and_oversized_webhooks_are_refused(running):
    gateway, _, _ = running
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
    status, body = gateway.post("/webhooks/telegram", b"{not json", headers)
    assert status == 400 and "malformed" in body
    status, body = gateway.post("/webhooks/telegram", b'{"message": {}}', headers)
    assert status == 400 and "update_id" in body
    status, _ = gateway.post("/webhooks/telegram", b"x" * (1024 * 1024 + 10), headers)
    assert status == 413
    assert gateway.store().keys(KEY("*")) == []
