"""Away message and queue position through real processes (web + worker, fake Telegram and Slack).

The schedule is open all day every day except three holidays around today: closed now, whatever the
wall clock says, and the assertions name no time.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.support import eventually
from tests.test_slack_card import AGENT, AGENTS


def test_away_message_once_and_queue_positions_after_accept(deployment):
    today = datetime.now(timezone.utc).date()
    holidays = [str(today + timedelta(days=d)) for d in (-1, 0, 1)]
    opening = today + timedelta(days=2)
    hours = {day: "00:00-24:00" for day in ("monday", "tuesday", "wednesday", "thursday", "friday",
                                            "saturday", "sunday")}
    started = deployment(tail=AGENTS, business_hours={"timezone": "UTC", **hours, "holidays": holidays,
                                                      "away_message": "Closed until {next_opening}."},
                         routing={"queue_position": True, "queue_position_step": 1})
    for update, chat in ((1, 7001), (2, 7002), (3, 7003)):
        assert started.customer_says(update, chat, f"help {chat}") == 200
    assert started.customer_says(4, 7001, "hello?") == 200
    started.wait_idle()
    texts = started.telegram.sent_texts(7001)
    assert texts[0].startswith("Closed until ") and f" {opening.day} " in texts[0] and texts[0].endswith("00:00 UTC.")
    assert texts[1:] == ["You are number 1 in the queue."]  # the second message got nothing
    assert started.telegram.sent_texts(7003)[1:] == ["You are number 3 in the queue."]

    first = started.conversation_of(7001)
    eventually(lambda: started.card_ts(first), timeout=60, what="the card")
    assert started.click("accept", first, AGENT) == 200
    eventually(lambda: started.telegram.sent_texts(7003)[-1] == "You are number 2 in the queue.",
               timeout=60, what="the new place")
    started.wait_idle()
    assert started.telegram.sent_texts(7002)[1:] == ["You are number 2 in the queue.",
                                                     "You are number 1 in the queue."]
    assert len(started.telegram.sent_texts(7001)) == 2  # accepted: nothing more
