"""A reply the platform refuses for good: the agent sees why in the thread, and can retry."""

from __future__ import annotations

import json

from tests.fakes.slack import block_action, home_action
from tests.fakes.telegram import text_update
from tests.support import eventually, keys
from tests.test_end_to_end import CHANNEL, CHAT_ID, card_posts, running  # noqa: F401 - the fixture

# The store's keys (``Store.key``) under the default prefix, for this module's plain Redis clients.
KEY = keys()


def test_permanent_failure_is_shown_with_a_retry_button_that_sends_it(running):
    gateway, slack, telegram = running
    gateway.telegram(text_update(1, CHAT_ID, "Hello, I need help"))
    eventually(lambda: card_posts(slack), what="the card")
    card_ts = next(ts for ts, m in slack.messages.items() if m.get("channel") == CHANNEL)
    gateway.click("accept", "1", "UAGENT1", card_ts)
    eventually(lambda: slack.calls_to("chat.update"), what="the accepted card")

    # Telegram refuses the reply for good (no retry can fix a 400).
    telegram.failures.append((400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}, {}))
    gateway.say("UAGENT1", "Your refund is on its way", card_ts)
    warning = eventually(lambda: [c for c in slack.calls_to("chat.postMessage")
                                  if "Not delivered" in c.params.get("text", "")], what="the failure note")[0]
    assert "Chat not found" in warning.params["text"]
    button = warning.params["blocks"][-1]["elements"][0]
    assert (button["action_id"], button["value"]) == ("retry_delivery", "1:2")
    store = gateway.store()
    assert json.loads(store.lindex(KEY("msgs", "1"), 1))["status"] == "failed"
    assert telegram.sent_texts(CHAT_ID) == []

    # The console flags it too: the chat's row in the agent's Assigned tab.
    gateway.slack_form(home_action("home_tab_assigned", "UAGENT1"))
    eventually(lambda: "1 message not delivered" in json.dumps(slack.home_views.get("UAGENT1", {})),
               what="the warning in the App Home")

    # Someone else's Retry is refused; the assignee's sends it.
    retry = block_action("retry_delivery", "1:2", "UAGENT2", CHANNEL, card_ts, slack.response_url)
    assert gateway.slack_form(retry)[0] == 200
    eventually(lambda: any("Only the agent who accepted" in t for t in slack.ephemerals()), what="the refusal")
    retry = block_action("retry_delivery", "1:2", "UAGENT1", CHANNEL, card_ts, slack.response_url)
    assert gateway.slack_form(retry)[0] == 200
    eventually(lambda: telegram.sent_texts(CHAT_ID) == ["Your refund is on its way"], what="the retried message")
    eventually(lambda: json.loads(store.lindex(KEY("msgs", "1"), 1))["status"] == "sent", what="sent")
    gateway.slack_form(home_action("home_tab_assigned", "UAGENT1"))
    eventually(lambda: "Assigned" in json.dumps(slack.home_views.get("UAGENT1", {}))
               and "not delivered" not in json.dumps(slack.home_views["UAGENT1"]), what="the warning gone")
