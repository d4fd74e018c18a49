"""Routing through real processes: topic channels and teams, capacity (racing clicks on two web
processes), Transfer with a note in a modal, first-response SLA escalation, and who has room in App Home.

Real ``web`` and ``worker`` processes on a real Redis, the fake Slack and Telegram.
"""

from __future__ import annotations

import itertools
import json
import threading
import urllib.request

from tests.conftest import CHANNEL
from tests.fakes.slack import block_action, home_opened, select_user_action, view_submission
from tests.fakes.telegram import text_update
from tests.support import eventually, keys, slack_agents

# The store's keys (``Store.key``) under the default prefix, for this module's plain Redis clients.
KEY = keys()

AGENT, OTHER, THIRD, ADMIN = "UAGENT1", "UAGENT2", "UAGENT3", "UADMIN1"
BILLING = "C0BILLING"

_updates = itertools.count(5000)
_customers = itertools.count(700_000_001)

TEAM = slack_agents(AGENT, OTHER, THIRD, admins=(ADMIN,), extra={OTHER: "max_active = 1"}) + f"""
[[topics]]
name = "billing"
keywords = ["refund", "invoice"]
agents = ["{OTHER}"]
"""
# The billing topic's cards go to a channel of their own.
TOPIC_CHANNELS = {"topic_channels": {"billing": BILLING}}


class Desk:
    """One deployment as an agent desk: customers write, agents click, the fakes are watched."""

    def __init__(self, deployment):
        self.d = deployment
        self.slack = deployment.slack
        self.redis = deployment.store()

    def customer(self, text: str, web: int = 0) -> tuple[int, str, str, str]:
        """A new customer writes: (customer, conversation id, card channel, card ts)."""
        customer = next(_customers)
        update = text_update(next(_updates), customer, text, first_name="Grace", last_name="Hopper")
        assert self.d.gateways[web].telegram(update)[0] == 200
        conversation_id = eventually(lambda: self.d.conversation_of(customer), what="the chat")
        ts = eventually(lambda: self.d.card_ts(conversation_id), what="the card")
        return customer, conversation_id, self.slack.messages[ts]["channel"], ts

    def field(self, conversation_id: str, name: str) -> str:
        return (self.redis.hget(KEY("conv", conversation_id), name) or b"").decode()

    def click(self, action: str, conversation_id: str, user: str, channel: str = CHANNEL, web: int = 0) -> int:
        ts = self.d.card_ts(conversation_id)
        return self.d.gateways[web].slack_form(block_action(action, conversation_id, user, channel, ts,
                                                            self.slack.response_url))[0]

    def ephemerals(self) -> list[str]:
        return self.slack.ephemerals()

    def thread(self, conversation_id: str) -> list[str]:
        return self.slack.thread_texts(self.d.card_ts(conversation_id))

    def card(self, conversation_id: str) -> str:
        return json.dumps(self.slack.messages[self.d.card_ts(conversation_id)].get("blocks", []))


def test_topic_card_goes_to_its_channel_and_only_its_team_may_accept_until_the_wait_ends(deployment):
    desk = Desk(deployment(tail=TEAM, slack=TOPIC_CHANNELS, routing={"topic_fallback_after": "4s"}))
    customer, billing, channel, ts = desk.customer("Where is my refund?")
    assert channel == BILLING
    _, general, general_channel, _ = desk.customer("My parcel is late")
    assert general_channel == CHANNEL
    assert "Offered to the billing team first" in desk.card(billing)
    # Someone else is refused, with the reason, and nothing changes.
    before = len(desk.ephemerals())
    assert desk.click("accept", billing, AGENT, BILLING) == 200
    refusal = eventually(lambda: desk.ephemerals()[before:], what="the refusal")[0]
    assert "billing" in refusal and "not on it" in refusal
    assert desk.field(billing, "state") == "new"
    # Nobody on the team took it in time: offered to everyone, said in the thread.
    eventually(lambda: any("offered to everyone" in t for t in desk.thread(billing)),
               timeout=20, what="the fallback")
    assert "Offered to the billing team first" not in desk.card(billing)
    assert desk.click("accept", billing, AGENT, BILLING) == 200
    eventually(lambda: desk.field(billing, "assignee") == AGENT, what="accepted by AGENT")
    # The agent answers in the billing channel's thread: it reaches the customer.
    assert deployment_say(desk, AGENT, BILLING, "Refund is on its way", ts) == 200
    eventually(lambda: "Refund is on its way" in desk.d.telegram.sent_texts(customer), what="the reply")
    # The team's member sees billing in their Inbox; the Inbox of others skips it before the wait ends.
    _, second, _, _ = desk.customer("Another invoice question")
    assert desk.d.gateway.slack_event(home_opened(THIRD))[0] == 200
    view = eventually(lambda: desk.slack.home_views.get(THIRD), what="THIRD's Home")
    assert general in row_ids(view) and second not in row_ids(view)
    assert desk.d.gateway.slack_event(home_opened(OTHER))[0] == 200
    view = eventually(lambda: desk.slack.home_views.get(OTHER), what="OTHER's Home")
    assert second in row_ids(view)


def row_ids(view: dict) -> set[str]:
    """The chats an App Home lists (its rows' buttons carry their ids)."""
    return {e.get("value") for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]
            if e.get("value", "").isdigit()}


def deployment_say(desk: Desk, user: str, channel: str, text: str, thread_ts: str) -> int:
    from tests.fakes.slack import message_event

    import time

    return desk.d.gateway.slack_event(message_event(user, channel, text, f"{time.time():.6f}", thread_ts))[0]


def test_capacity_race_on_two_web_processes_leaves_exactly_one_accepted(deployment):
    desk = Desk(deployment(tail=TEAM, slack=TOPIC_CHANNELS, webs=2, workers=2,
                           routing={"max_active_per_agent": 2}))
    _, held, _, _ = desk.customer("parcel one")
    assert desk.click("accept", held, AGENT) == 200
    eventually(lambda: desk.field(held, "assignee") == AGENT, what="the first accept")
    for round_ in range(3):
        chats = [desk.customer(f"parcel race {round_} {n}")[1] for n in range(2)]
        barrier = threading.Barrier(2)

        def click(index: int) -> None:
            barrier.wait()
            desk.click("accept", chats[index], AGENT, web=index)

        threads = [threading.Thread(target=click, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assignees = [desk.field(c, "assignee") for c in chats]
        assert sorted(assignees) == ["", AGENT], assignees
        loser = chats[assignees.index("")]
        assert desk.field(loser, "state") == "new"
        eventually(lambda: any("as many active chats as allowed" in e for e in desk.ephemerals()),
                   what="the at-capacity refusal")
        # Free the slot again for the next round.
        won = chats[assignees.index(AGENT)]
        assert desk.click("resolve", won, AGENT) == 200
        eventually(lambda: desk.field(won, "state") == "resolved", what="resolved")
    # Who has room, in the App Home.
    assert desk.d.gateway.slack_event(home_opened(THIRD))[0] == 200
    view = json.dumps(eventually(lambda: desk.slack.home_views.get(THIRD), what="the Home"))
    assert "Room" in view and f"<@{AGENT}> 1/2" in view and f"<@{OTHER}> 0/1" in view


def test_transfer_with_a_note_in_a_modal_notifies_the_receiver_who_must_have_room(deployment):
    desk = Desk(deployment(tail=TEAM, slack=TOPIC_CHANNELS))
    _, cid, _, ts = desk.customer("parcel to transfer")
    assert desk.click("accept", cid, AGENT) == 200
    eventually(lambda: "transfer" in desk.card(cid), what="the Transfer picker")
    # The picker opens the modal asking for a note.
    body = select_user_action("transfer", f"chat-{cid}", THIRD, AGENT, CHANNEL, ts, desk.slack.response_url)
    assert desk.d.gateway.slack_form(body)[0] == 200
    view = eventually(lambda: list(desk.slack.views.values()), what="views.open")[-1]
    assert view["callback_id"] == "transfer_note"
    # Someone who is not the assignee submits it: refused inside the modal, nothing changes.
    status, answer = desk.d.gateway.slack_form(view_submission(view, OTHER, {"note": {"text": "mine now"}}))
    assert status == 200 and json.loads(answer)["response_action"] == "errors"
    assert "Only the agent who accepted" in json.loads(answer)["errors"]["note"]
    assert desk.field(cid, "assignee") == AGENT
    status, answer = desk.d.gateway.slack_form(view_submission(view, AGENT, {"note": {"text": "Wants a call back"}}))
    assert status == 200 and (not answer or "errors" not in answer), answer
    assert desk.field(cid, "assignee") == THIRD
    # The receiver gets a DM with the note; the thread says it; the card shows who held it when.
    dm = eventually(lambda: [c for c in desk.slack.calls_to("chat.postMessage")
                             if c.params.get("channel") == THIRD], what="the receiver's DM")[0]
    assert "Wants a call back" in dm.params["text"] and f"<@{AGENT}>" in dm.params["text"]
    eventually(lambda: any("transferred this chat to" in t for t in desk.thread(cid)), what="thread")
    eventually(lambda: "Held by" in desk.card(cid), what="holders on the card")
    assert f"<@{AGENT}>" in desk.card(cid) and f"<@{THIRD}>" in desk.card(cid)
    # The receiver must have room: OTHER (max_active 1) holds a chat already.
    _, busy, _, _ = desk.customer("parcel for other")
    assert desk.click("accept", busy, OTHER) == 200
    eventually(lambda: desk.field(busy, "assignee") == OTHER, what="OTHER busy")
    view = dict(view, private_metadata=f"{cid}:{OTHER}")
    status, answer = desk.d.gateway.slack_form(view_submission(view, THIRD, {"note": {"text": "over"}}))
    assert "as many active chats as allowed" in json.loads(answer)["errors"]["note"]
    assert desk.field(cid, "assignee") == THIRD


def test_sla_escalation_mentions_the_group_repeats_until_accepted_and_is_counted(deployment):
    desk = Desk(deployment(tail=TEAM, routing={"sla_first_response": 1, "sla_repeat": 1},
                           slack={**TOPIC_CHANNELS, "agent_group": "SAGENTS"}))
    desk.slack.usergroups["SAGENTS"] = []
    _, cid, _, _ = desk.customer("parcel waiting")
    eventually(lambda: sum("<!subteam^SAGENTS>" in t for t in desk.thread(cid)) >= 2,
               timeout=30, what="two escalations")
    eventually(lambda: "Escalated" in desk.card(cid), what="the card marked")
    assert desk.click("accept", cid, AGENT) == 200
    eventually(lambda: desk.field(cid, "assignee") == AGENT, what="accepted")
    count = int(desk.field(cid, "escalations"))
    desk.d.wait_idle(scheduled=True, timeout=30)  # the next check runs, and finds nothing to do
    assert int(desk.field(cid, "escalations")) == count
    with urllib.request.urlopen(desk.d.gateway.base + "/metrics") as response:
        metrics = response.read().decode()
    assert f"chatgate_escalations_total {count}" in metrics
