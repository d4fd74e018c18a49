"""Saved replies in Slack: the chat card's Saved reply button opens a modal to pick one.

The modal's submission is ``Conversations.send_saved_reply`` (a ``reply`` with its checks);
a refusal is said to the agent only (the modal's error, or an ephemeral message).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from gateway.message import Refused

from .team import agent_id

if TYPE_CHECKING:
    from gateway.replies import SavedReply
    from gateway.services import Services

    from . import SlackConsole

__all__ = ["register_saved_replies", "saved_reply_modal", "MODAL_ID"]

log = logging.getLogger(__name__)

MODAL_ID = "saved_reply_modal"
PICK_BLOCK, PICK_ACTION = "saved_reply", "saved_reply_pick"
# Slack's limit for a static_select; with more replies the modal asks Slack to search (external_select).
MAX_STATIC_OPTIONS = 100


def _option(reply: "SavedReply") -> dict:
    preview = reply.text.replace("\n", " ")
    return {"text": {"type": "plain_text", "text": reply.name[:75]},
            "description": {"type": "plain_text", "text": (preview[:72] + "…") if len(preview) > 75 else preview},
            "value": reply.name[:150]}


def saved_reply_modal(conversation_id: str, replies: list["SavedReply"], customer: str) -> dict:
    """The modal: pick a reply (Slack's select searches as you type); sending fills in its variables."""
    if not replies:
        return {"type": "modal", "callback_id": MODAL_ID, "private_metadata": conversation_id,
                "title": {"type": "plain_text", "text": "Saved replies"},
                "close": {"type": "plain_text", "text": "Close"},
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text":
                            "There are no saved replies yet. Admins add them in the web console "
                            "or as `[[saved_replies]]` in the config."}}]}
    element: dict[str, object]
    if len(replies) <= MAX_STATIC_OPTIONS:
        element = {"type": "static_select", "action_id": PICK_ACTION,
                   "placeholder": {"type": "plain_text", "text": "Type to search"},
                   "options": [_option(r) for r in replies]}
    else:
        element = {"type": "external_select", "action_id": PICK_ACTION, "min_query_length": 0,
                   "placeholder": {"type": "plain_text", "text": "Type to search"}}
    return {
        "type": "modal", "callback_id": MODAL_ID, "private_metadata": conversation_id,
        "title": {"type": "plain_text", "text": "Send a saved reply"},
        "submit": {"type": "plain_text", "text": "Send"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "input", "block_id": PICK_BLOCK, "label": {"type": "plain_text", "text": "Reply"},
             "element": element},
            {"type": "context", "elements": [{"type": "mrkdwn", "text":
                f"Sent to {customer or 'the customer'} as you, with {{customer_name}} and {{agent_name}} "
                "filled in."}]},
        ],
    }


def _picked(view: dict) -> str:
    value = view.get("state", {}).get("values", {}).get(PICK_BLOCK, {}).get(PICK_ACTION, {})
    return (value.get("selected_option") or {}).get("value", "")


def register_saved_replies(app: AsyncApp, console: "SlackConsole", services: "Services") -> None:
    """The Saved reply button and its modal on ``app`` (before the unknown actions)."""
    conversations = services.conversations

    @app.action("saved_reply")
    async def open_saved_replies(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond, client) -> None:
        await ack()
        conversation_id = action.get("value", "")
        try:
            agent = agent_id(services.team, body.get("user", {}).get("id", ""))
            await conversations.may("reply", conversation_id, agent)
            conversation = await services.store.get(conversation_id)
            view = saved_reply_modal(conversation_id, await conversations.saved_replies(),
                                     conversation.name if conversation else "")
            await client.views_open(trigger_id=body.get("trigger_id", ""), view=view)
        except Refused as refusal:
            await respond(text=console.refusal(refusal, services), response_type="ephemeral",
                          replace_original=False)
        except Exception:  # noqa: BLE001
            log.exception("opening the saved replies of chat %s failed", conversation_id)
            await respond(text="Could not open the saved replies; please try again.", response_type="ephemeral",
                          replace_original=False)

    @app.options(PICK_ACTION)
    async def search_saved_replies(ack: AsyncAck, body: dict) -> None:
        """The external_select's search (more replies than a static_select holds)."""
        found = await conversations.saved_replies(body.get("value", ""))
        await ack(options=[_option(r) for r in found[:MAX_STATIC_OPTIONS]])

    @app.view(MODAL_ID)
    async def send_saved_reply(ack: AsyncAck, body: dict, view: dict) -> None:
        conversation_id, name = view.get("private_metadata", ""), _picked(view)
        agent = agent_id(services.team, body.get("user", {}).get("id", ""))
        try:
            if not name:
                raise Refused("no_saved_reply", reason="Pick a saved reply to send.")
            await conversations.send_saved_reply(conversation_id, agent, name,
                                                 platform_id=f"view:{view['id']}" if view.get("id") else "",
                                                 via=console.name)
        except Refused as refusal:
            await ack(response_action="errors", errors={PICK_BLOCK: console.refusal(refusal, services)[:150]})
            return
        except Exception:  # noqa: BLE001
            log.exception("sending a saved reply in chat %s failed", conversation_id)
            await ack(response_action="errors", errors={PICK_BLOCK: "chatgate could not send it; try again."})
            return
        await ack()

