"""Saved replies (card button -> modal -> reply) and emoji shortcuts in Slack, through real processes."""

from __future__ import annotations

import json

import pytest

from tests.fakes.slack import reaction_added, select_submission
from tests.support import eventually
from tests.test_slack_card import ACTIVE_BUTTONS, AGENT, AGENTS, OTHER, OUTSIDER, CHANNEL, new_chat

SAVED = """
[[saved_replies]]
name = "Greeting"
text = "Hello {customer_name}, this is {agent_name}."

[[saved_replies]]
name = "Refunds"
text = "Refunds take 5 working days."
"""


@pytest.fixture(scope="module")
def replies_and_reactions(module_deployment):
    started = module_deployment(tail=AGENTS.replace(f'id = "{AGENT}"', f'id = "{AGENT}"\nname = "Alice"') + SAVED,
                                slack={"reactions": {"eyes": "accept", "white_check_mark": "resolve", "x": "leave"}})
    return started.gateway, started.slack, started.telegram, started.store()


def react(chat, user: str, reaction: str) -> None:
    assert chat.gw.slack_event(reaction_added(user, reaction, CHANNEL, chat.card_ts))[0] == 200


def test_reactions_accept_and_resolve_with_the_buttons_refusals(replies_and_reactions):
    chat = new_chat(replies_and_reactions)
    chat.wait_buttons(["accept", "reject"])
    react(chat, OUTSIDER, "eyes")  # not an agent: refused privately, nothing changes
    eventually(lambda: any(c.params.get("user") == OUTSIDER and "not on the support team"
                           in c.params.get("text", "") for c in chat.slack.calls_to("chat.postEphemeral")),
               what="the outsider's refusal")
    assert chat.field("state") == "new"
    react(chat, AGENT, "eyes")
    chat.wait_state("active")
    chat.wait_buttons(ACTIVE_BUTTONS)
    assert chat.field("assignee") == AGENT
    react(chat, OTHER, "eyes")  # too late, the same refusal as the button's
    eventually(lambda: any(c.params.get("user") == OTHER and "Too late" in c.params.get("text", "")
                           and c.params.get("channel") == CHANNEL
                           for c in chat.slack.calls_to("chat.postEphemeral")), what="too late")
    react(chat, OTHER, "white_check_mark")
    eventually(lambda: any(c.params.get("user") == OTHER and "Only the agent who accepted"
                           in c.params.get("text", "") for c in chat.slack.calls_to("chat.postEphemeral")),
               what="not the assignee")
    assert chat.field("state") == "active"
    react(chat, AGENT, "thumbsup")  # not a shortcut: ignored
    react(chat, AGENT, "white_check_mark")
    chat.wait_state("resolved")


def test_saved_reply_modal_sends_the_filled_in_reply_as_the_assignee(replies_and_reactions):
    chat = new_chat(replies_and_reactions)
    chat.click("accept", AGENT)
    chat.wait_buttons(ACTIVE_BUTTONS)
    # Someone else's click is refused before any modal opens.
    chat.click("saved_reply", OTHER)
    eventually(lambda: any("Only the agent who accepted" in t for t in chat.slack.ephemerals()), what="refusal")
    opened_before = len(chat.slack.calls_to("views.open"))
    chat.click("saved_reply", AGENT)
    call = eventually(lambda: chat.slack.calls_to("views.open")[opened_before:], what="the modal")[0]
    view = call.params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["private_metadata"] == chat.id
    select = view["blocks"][0]["element"]
    assert [o["value"] for o in select["options"]] == ["Greeting", "Refunds"]
    stored = next(v for v in chat.slack.views.values() if v["private_metadata"] == chat.id)

    pick = {"saved_reply": {"saved_reply_pick": {"type": "static_select", "selected_option": select["options"][0]}}}
    # A forged submission by another agent: the modal shows the refusal, nothing is sent.
    status, body = chat.gw.slack_form(select_submission(OTHER, stored, pick))
    assert status == 200 and json.loads(body)["response_action"] == "errors"
    assert "Only the agent who accepted" in json.loads(body)["errors"]["saved_reply"]
    status, body = chat.gw.slack_form(select_submission(AGENT, stored, pick))
    assert status == 200 and not body.strip()
    eventually(lambda: "Hello Grace Hopper, this is Alice." in chat.telegram.sent_texts(chat.customer),
               what="the saved reply")
    assert chat.field("messages_out") == "1" and chat.field("first_response_at")
    # Slack's retry of the same submission is not sent twice.
    chat.gw.slack_form(select_submission(AGENT, stored, pick))
    eventually(lambda: chat.field("seq") == "2", what="the history")
    assert chat.telegram.sent_texts(chat.customer).count("Hello Grace Hopper, this is Alice.") == 1


def test_the_modal_switches_to_a_searching_select_above_slacks_option_limit():
    from agent_console.slack.saved_replies import saved_reply_modal
    from gateway.replies import SavedReply

    few = saved_reply_modal("7", [SavedReply(f"r{n}", "text") for n in range(3)], "Ada")
    assert few["blocks"][0]["element"]["type"] == "static_select"
    many = saved_reply_modal("7", [SavedReply(f"r{n}", "text") for n in range(101)], "Ada")
    assert many["blocks"][0]["element"]["type"] == "external_select"
    none = saved_reply_modal("7", [], "Ada")
    assert "submit" not in none and "no saved replies" in none["blocks"][0]["text"]["text"]
