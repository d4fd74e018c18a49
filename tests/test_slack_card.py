"""The chat card in Slack: every control in every state, sound, notes, reassign, who may act.

chatgate runs as real ``web`` and ``worker`` processes on a real Redis; Slack
and Telegram are the local fakes. One gateway serves the whole module; each
test opens its own chats (a new Telegram customer each).
"""

from __future__ import annotations

import itertools
import json
import time

import pytest

from tests.fakes.slack import FakeSlack, block_action, select_user_action
from tests.fakes.telegram import text_update
from tests.support import eventually, keys, slack_agents
from tests.test_end_to_end import CHANNEL, buttons, latest_card

# The store's keys (``Store.key``) under the default prefix, for this module's plain Redis clients.
KEY = keys()

AGENT, OTHER, ADMIN, GROUP_MEMBER, OUTSIDER = "UAGENT1", "UAGENT2", "UADMIN1", "UGROUP1", "UOUTSIDER"

_updates = itertools.count(1000)
_customers = itertools.count(500_000_001)


AGENTS = slack_agents(AGENT, OTHER, admins=(ADMIN,)) + """
[[topics]]
name = "delivery"
keywords = ["parcel"]
"""


def card_gateway(deploy, **options) -> tuple:
    """chatgate with two agents, an admin and an agent group (GROUP_MEMBER) in Slack; ``options`` go to
    the deployment (e.g. ``routing={...}``). (Gateway, FakeSlack, FakeTelegram, Redis)."""
    options["slack"] = {"agent_group": "SAGENTS", **options.get("slack", {})}
    started = deploy(tail=AGENTS, **options)
    started.slack.usergroups["SAGENTS"] = [GROUP_MEMBER]
    return started.gateway, started.slack, started.telegram, started.store()


@pytest.fixture(scope="module")
def gateway(module_deployment):
    return card_gateway(module_deployment)


class Chat:
    """One customer's chat as the tests drive it."""

    def __init__(self, gateway, customer: int, conversation_id: str, card_ts: str):
        self.gw, self.slack, self.telegram, self.redis = gateway
        self.customer = customer
        self.id = conversation_id
        self.card_ts = card_ts

    def field(self, name: str) -> str:
        return (self.redis.hget(KEY("conv", self.id), name) or b"").decode()

    def snapshot(self) -> tuple:
        """Everything a control could change about this chat."""
        r, cid = self.redis, self.id
        assigned = {k.decode(): r.zscore(k, cid) for k in r.keys(KEY("assigned", "*"))}
        return (r.hgetall(KEY("conv", cid)), r.smembers(KEY("declined", cid)),
                r.hgetall(KEY("sound", cid)), r.zscore(KEY("inbox"), cid), assigned,
                r.llen(KEY("msgs", cid)))

    def click(self, action: str, user: str, value: str | None = None) -> None:
        body = block_action(action, self.id if value is None else value, user, CHANNEL, self.card_ts,
                            self.slack.response_url)
        assert self.gw.slack_form(body)[0] == 200

    def reassign(self, admin: str, to: str) -> None:
        body = select_user_action("reassign", f"chat-{self.id}", to, admin, CHANNEL, self.card_ts,
                                  self.slack.response_url)
        assert self.gw.slack_form(body)[0] == 200

    def customer_writes(self, text: str) -> None:
        update = text_update(next(_updates), self.customer, text, first_name="Grace", last_name="Hopper")
        assert self.gw.telegram(update)[0] == 200

    def wait_state(self, state: str) -> None:
        eventually(lambda: self.field("state") == state, what=f"chat {self.id} {state}")

    def wait_buttons(self, expected: list[str]) -> None:
        eventually(lambda: buttons(self.slack, self.card_ts) == expected, what=f"buttons {expected}")

    def card(self) -> str:
        return latest_card(self.slack, self.card_ts)

    def thread(self) -> list[str]:
        return self.slack.thread_texts(self.card_ts)


ACTIVE_BUTTONS = ["open_chat", "sound_off", "leave", "resolve", "saved_reply", "transfer", "reassign"]


def new_chat(gateway, text: str = "") -> Chat:
    gw, slack, _, _ = gateway
    customer = next(_customers)
    text = text or f"My parcel {customer} is late"  # unique, so each test finds its own card
    assert gw.telegram(text_update(next(_updates), customer, text, first_name="Grace", last_name="Hopper"))[0] == 200

    def card():
        for call in slack.calls_to("chat.postMessage"):
            blocks = call.params.get("blocks") or []
            if call.params.get("channel") == CHANNEL and "thread_ts" not in call.params and \
                    any(text in json.dumps(b) for b in blocks):
                return call
        return None

    posted = eventually(lambda: card(), what="the chat card")
    ts = next(ts for ts, m in slack.messages.items() if m.get("channel") == CHANNEL
              and m.get("text") == posted.params["text"] and "thread_ts" not in m)
    conversation_id = posted.params["blocks"][-1]["elements"][0]["value"]
    return Chat(gateway, customer, conversation_id, ts)


def chat_in(gateway, state: str) -> Chat:
    """A chat brought to ``state`` by AGENT through the card."""
    chat = new_chat(gateway)
    if state == "new":
        chat.wait_buttons(["accept", "reject"])
        return chat
    chat.click("accept", AGENT)
    chat.wait_buttons(ACTIVE_BUTTONS)
    if state == "active":
        return chat
    chat.click("resolve", AGENT)
    chat.wait_buttons(["leave", "reassign"])
    if state == "resolved":
        return chat
    chat.click("leave", AGENT)
    chat.wait_buttons([])
    assert state == "closed"
    return chat


def ephemerals(slack: FakeSlack) -> list[str]:
    """Every private reply so far (response_url or chat.postEphemeral), in order."""
    return [c.params.get("text", "") for c in list(slack.calls) if c.method in ("response_url", "chat.postEphemeral")]


def refusal_after(chat: Chat, act) -> str:
    """Run ``act``; the ephemeral refusal it got."""
    before = len(ephemerals(chat.slack))
    act()
    texts = eventually(lambda: ephemerals(chat.slack)[before:], what="an ephemeral refusal")
    return texts[0]


# (state, action, who, refusal that must be shown) — nothing may change.
REFUSED = [
    ("new", "resolve", AGENT, "Accept this chat first"),
    ("new", "leave", AGENT, "Accept this chat first"),
    ("new", "sound_off", AGENT, "Accept this chat first"),
    ("new", "open_chat", AGENT, "assigned to nobody yet"),
    ("new", "accept", OUTSIDER, "not on the support team"),
    ("new", "reject", OUTSIDER, "not on the support team"),
    ("active", "accept", OTHER, "Too late: <@UAGENT1>"),
    ("active", "accept", AGENT, "already accepted"),
    ("active", "reject", OTHER, "no longer waiting"),
    ("active", "resolve", OTHER, "Only the agent who accepted this chat (<@UAGENT1>)"),
    ("active", "leave", OTHER, "Only the agent who accepted this chat"),
    ("active", "sound_off", OTHER, "Only the agent who accepted this chat"),
    ("active", "sound_on", AGENT, "already on"),
    ("active", "open_chat", OTHER, "only its assignee"),
    ("active", "resolve", OUTSIDER, "not on the support team"),
    ("resolved", "resolve", AGENT, "already resolved"),
    ("resolved", "sound_off", AGENT, "only while the chat is active"),
    ("resolved", "accept", OTHER, "Too late"),
    ("resolved", "leave", OTHER, "Only the agent who accepted this chat"),
    ("closed", "leave", AGENT, "closed"),
    ("closed", "resolve", AGENT, "closed"),
    ("closed", "accept", OTHER, "closed"),
    ("closed", "reject", OTHER, "closed"),
    ("closed", "sound_off", AGENT, "closed"),
    ("active", "delete_chat", AGENT, "not one chatgate knows"),
]


@pytest.mark.parametrize("state,action,who,refusal", REFUSED)
def test_a_control_the_state_or_role_does_not_allow_is_refused_and_changes_nothing(gateway, state, action, who,
                                                                                   refusal):
    chat = chat_in(gateway, state)
    before, card_before = chat.snapshot(), chat.card()
    assert refusal in refusal_after(chat, lambda: chat.click(action, who))
    assert chat.snapshot() == before
    assert chat.card() == card_before


def test_forged_conversation_id_and_double_click_are_refused(gateway):
    chat = chat_in(gateway, "new")
    assert "does not exist" in refusal_after(chat, lambda: chat.click("accept", AGENT, value="987654"))
    assert "does not exist" in refusal_after(chat, lambda: chat.click("accept", AGENT, value="1; DROP"))
    chat.click("reject", AGENT)
    eventually(lambda: "Declined by <@UAGENT1>" in chat.card(), what="declined on the card")
    before = chat.snapshot()
    assert "already declined" in refusal_after(chat, lambda: chat.click("reject", AGENT))
    assert chat.snapshot() == before


def test_card_shows_profile_state_and_only_the_controls_the_state_allows(gateway):
    chat = new_chat(gateway, "My parcel is late, order 77")
    # A shared phone number fills the profile.
    chat.gw.telegram(text_update(next(_updates), chat.customer, None, first_name="Grace", last_name="Hopper",
                                 contact={"phone_number": "4420790000", "first_name": "Grace"}))
    eventually(lambda: any("+4420790000" in t for t in chat.thread()), what="the shared contact")
    chat.wait_buttons(["accept", "reject"])
    card = chat.card()
    for expected in ("Grace Hopper", "My parcel is late, order 77", "Telegram", "delivery", "New, waiting",
                     "First response", "Duration", "messages"):
        assert expected in card, expected

    chat.click("accept", AGENT)
    chat.wait_buttons(ACTIVE_BUTTONS)
    card = chat.card()
    assert "Active" in card and "assigned to <@UAGENT1>" in card and "+4420790000" in card
    # A is a link to the card's thread.
    link = next(e for b in chat.slack.messages[chat.card_ts]["blocks"] if b["type"] == "actions"
                for e in b["elements"] if e["action_id"] == "open_chat")
    assert link["url"] == f"https://example.slack.com/archives/{CHANNEL}/p{chat.card_ts.replace('.', '')}"
    assert chat.slack.calls_to("chat.getPermalink")

    chat.click("resolve", AGENT)
    chat.wait_buttons(["leave", "reassign"])
    assert "Resolved" in chat.card()
    chat.click("leave", AGENT)
    chat.wait_buttons([])
    assert "Closed" in chat.card() and chat.field("state") == "closed"


def test_leave_an_active_chat_hands_it_back_to_the_inbox_and_leave_a_resolved_one_closes_it(gateway):
    chat = chat_in(gateway, "active")
    chat.click("leave", AGENT)
    chat.wait_buttons(["accept", "reject"])
    assert chat.field("state") == "new" and chat.field("assignee") == ""
    assert "previously <@UAGENT1>" in chat.card()
    assert chat.redis.zscore(KEY("inbox"), chat.id) is not None
    assert chat.redis.zscore(KEY("assigned", AGENT), chat.id) is None
    eventually(lambda: any("left this chat" in t for t in chat.thread()), what="the leave note")

    chat.click("accept", OTHER)
    chat.wait_buttons(ACTIVE_BUTTONS)
    chat.click("resolve", OTHER)
    chat.wait_buttons(["leave", "reassign"])
    chat.click("leave", OTHER)
    chat.wait_buttons([])
    assert chat.field("state") == "closed"
    assert chat.redis.zscore(KEY("assigned", OTHER), chat.id) is None
    assert chat.redis.zscore(KEY("inbox"), chat.id) is None


def test_reject_hides_the_chat_from_that_agent_and_the_card_says_who_declined(gateway):
    chat = chat_in(gateway, "new")
    chat.click("reject", AGENT)
    eventually(lambda: "Declined by <@UAGENT1>" in chat.card(), what="declined on the card")
    assert chat.field("state") == "new"
    assert chat.redis.smembers(KEY("declined", chat.id)) == {AGENT.encode()}
    chat.click("reject", OTHER)
    eventually(lambda: "Declined by <@UAGENT1>, <@UAGENT2>" in chat.card(), what="both declined")
    # Still offered to the others: a group member accepts.
    chat.click("accept", GROUP_MEMBER)
    chat.wait_buttons(ACTIVE_BUTTONS)
    assert chat.field("assignee") == GROUP_MEMBER


def test_sound_on_mentions_the_assignee_in_each_customer_message_and_off_does_not(gateway):
    chat = chat_in(gateway, "active")
    chat.customer_writes("first, with sound")
    eventually(lambda: any("first, with sound" in t for t in chat.thread()), what="message 1")
    assert [t for t in chat.thread() if "first, with sound" in t][0].startswith("<@UAGENT1> ")

    chat.click("sound_off", AGENT)
    chat.wait_buttons(["open_chat", "sound_on", "leave", "resolve", "saved_reply", "transfer", "reassign"])
    assert "Sound off for <@UAGENT1>" in chat.card()
    assert chat.redis.hget(KEY("sound", chat.id), AGENT) == b"0"
    chat.customer_writes("second, silent")
    eventually(lambda: any("second, silent" in t for t in chat.thread()), what="message 2")
    silent = [t for t in chat.thread() if "second, silent" in t][0]
    assert "<@" not in silent

    # Double click on "off" is refused; then on again.
    assert "already off" in refusal_after(chat, lambda: chat.click("sound_off", AGENT))
    chat.click("sound_on", AGENT)
    chat.wait_buttons(ACTIVE_BUTTONS)
    chat.customer_writes("third, loud again")
    eventually(lambda: any("third, loud again" in t for t in chat.thread()), what="message 3")
    assert [t for t in chat.thread() if "third, loud again" in t][0].startswith("<@UAGENT1> ")


def test_notes_stay_private_kept_in_history_not_a_reply(gateway):
    chat = chat_in(gateway, "active")
    note_ts = f"{time.time():.6f}"
    from tests.fakes.slack import message_event

    assert chat.gw.slack_event(message_event(AGENT, CHANNEL, "NOTE: customer sounds upset, be gentle",
                                             note_ts, chat.card_ts))[0] == 200
    reaction = eventually(lambda: [c for c in chat.slack.calls_to("reactions.add")
                                   if c.params.get("timestamp") == note_ts], what="the :memo: reaction")
    assert reaction[0].params["name"] == "memo"
    history = [json.loads(m) for m in chat.redis.lrange(KEY("msgs", chat.id), 0, -1)]
    assert [(m["dir"], m["by"]) for m in history if "upset" in m["text"]] == [("note", AGENT)]
    assert chat.field("first_response_at") == "" and chat.field("messages_out") == "0"

    # Someone else's note is refused and not kept.
    before = chat.snapshot()
    refusal = refusal_after(chat, lambda: chat.gw.say(OTHER, "note: I'd take this one", chat.card_ts))
    assert "Only the agent who accepted this chat" in refusal
    assert chat.snapshot() == before

    # A real reply reaches the customer; the note never does.
    chat.gw.say(AGENT, "Hello Grace, checking now.", chat.card_ts)
    eventually(lambda: "Hello Grace, checking now." in chat.telegram.sent_texts(chat.customer), what="the reply")
    assert chat.field("first_response_at") != ""
    assert not [t for t in chat.telegram.sent_texts(chat.customer) if "upset" in t or "take this one" in t]


def test_admin_reassigns_from_the_card_and_non_admins_are_refused(gateway):
    chat = chat_in(gateway, "active")
    before = chat.snapshot()
    assert "Only a chatgate admin" in refusal_after(chat, lambda: chat.reassign(AGENT, OTHER))
    assert "not on the support team" in refusal_after(chat, lambda: chat.reassign(ADMIN, OUTSIDER))
    assert "already assigned" in refusal_after(chat, lambda: chat.reassign(ADMIN, AGENT))
    assert chat.snapshot() == before

    chat.reassign(ADMIN, OTHER)
    eventually(lambda: "Reassigned by <@UADMIN1> to <@UAGENT2>" in chat.card(), what="the card")
    assert "assigned to <@UAGENT2>" in chat.card()
    assert any("<@UADMIN1> reassigned this chat to <@UAGENT2>" in t for t in chat.thread())
    assert chat.field("assignee") == OTHER
    assert chat.redis.zscore(KEY("assigned", AGENT), chat.id) is None
    assert chat.redis.zscore(KEY("assigned", OTHER), chat.id) is not None

    # The new assignee's replies go out; the old one's are refused.
    chat.gw.say(OTHER, "Hi, I am taking over.", chat.card_ts)
    eventually(lambda: "Hi, I am taking over." in chat.telegram.sent_texts(chat.customer), what="the reply")
    assert "Only the agent who accepted this chat (<@UAGENT2>)" in refusal_after(
        chat, lambda: chat.gw.say(AGENT, "me too", chat.card_ts))

    # A resolved chat can be reassigned; new and closed ones cannot.
    resolved = chat_in(gateway, "resolved")
    resolved.reassign(ADMIN, OTHER)
    eventually(lambda: resolved.field("assignee") == OTHER, what="resolved reassigned")
    assert resolved.field("state") == "resolved"
    for state, refusal in (("new", "waiting in the Inbox"), ("closed", "closed")):
        other = chat_in(gateway, state)
        before = other.snapshot()
        assert refusal in refusal_after(other, lambda: other.reassign(ADMIN, OTHER))
        assert other.snapshot() == before


def test_a_non_agent_cannot_reply_in_a_thread(gateway):
    chat = chat_in(gateway, "active")
    before = chat.snapshot()
    refusal = refusal_after(chat, lambda: chat.gw.say(OUTSIDER, "hello from outside", chat.card_ts))
    assert "not on the support team" in refusal
    assert chat.snapshot() == before
    assert "hello from outside" not in chat.telegram.sent_texts(chat.customer)



def test_every_event_kind_has_its_handler_in_slack():
    from agent_console.slack.deliver import HANDLERS
    from gateway.events import EventKind

    assert set(HANDLERS) == set(EventKind)
