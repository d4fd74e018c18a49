"""The chat card's controls (A-F and the admins' reassign), checked by who clicks.

Every click is acknowledged at once; then the clicker's role is checked (agent,
admin) and the core operation runs. A refusal, whatever the payload (forged
action ids or values, a stale card, a double click), is an ephemeral reply to
the clicker only, and nothing changes.
"""

from __future__ import annotations

import logging
import re

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from gateway.conversations import Conversations
from gateway.message import Refused
from gateway.store import Store

from .cards import SOUND_ACTIONS
from .team import Team

__all__ = ["register_controls", "register_unknown_actions", "NOT_AGENT", "NOT_ADMIN"]

log = logging.getLogger(__name__)

NOT_AGENT = ("You are not on the support team in chatgate, so you cannot work on chats. "
             "Ask an admin to add you (slack.agents or slack.agent_group).")
NOT_ADMIN = "Only chatgate admins can reassign a chat (slack.admins or slack.admin_group)."


def _conversation_id(action: dict) -> str:
    """Buttons carry the id as their value; a select has none, so its block id says it."""
    if action.get("value"):
        return action["value"]
    match = re.fullmatch(r"(?:chat|dm)-(\d+)", action.get("block_id", ""))
    return match.group(1) if match else ""


async def _tell(respond: AsyncRespond, text: str) -> None:
    await respond(text=text, response_type="ephemeral", replace_original=False)


def register_controls(app: AsyncApp, conversations: Conversations, store: Store, team: Team) -> None:
    """Handle the card's buttons and the reassign select on ``app``."""

    async def run(action_id: str, agent: str, action: dict) -> None:
        conversation_id = _conversation_id(action)
        if action_id in ("accept", "reject", "resolve", "leave"):
            await getattr(conversations, action_id)(conversation_id, agent)
        elif action_id in SOUND_ACTIONS:
            await conversations.set_sound(conversation_id, agent, SOUND_ACTIONS[action_id])
        elif action_id == "open_chat":
            # A is a link Slack opens by itself; it only tells the others it is not theirs.
            conversation = await store.get(conversation_id)
            if conversation is None or conversation.assignee != agent:
                owner = f"<@{conversation.assignee}>" if conversation and conversation.assignee else "nobody yet"
                raise Refused("not_assignee", f"This chat is assigned to {owner}; only its assignee works in it.")
        elif action_id == "retry_delivery":
            conversation_id, _, seq = action.get("value", "").partition(":")
            if not seq.isdigit():
                raise Refused("unknown", "This Retry button does not name a message; nothing was sent.")
            await conversations.redeliver(conversation_id, int(seq), agent)
        elif action_id == "reassign":
            if not await team.is_admin(agent):
                raise Refused("not_admin", NOT_ADMIN)
            target = action.get("selected_user") or ""
            if not target:
                raise Refused("no_target", "Pick the agent who should take this chat.")
            if not await team.is_agent(target):
                raise Refused("not_agent_target", f"<@{target}> is not on the support team, so cannot take chats.")
            await conversations.reassign(conversation_id, agent, target)

    async def on_action(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond) -> None:
        await ack()
        agent = body.get("user", {}).get("id", "")
        action_id = action.get("action_id", "")
        try:
            if not await team.is_agent(agent):
                raise Refused("not_agent", NOT_AGENT)
            await run(action_id, agent, action)
        except Refused as refusal:
            await _tell(respond, refusal.reason)
        except Exception:  # noqa: BLE001 - bolt answers 404 if a handler raises after ack()
            log.exception("Slack action %s failed", action_id)
            await _tell(respond, "Something went wrong; nothing was changed. Please try again.")

    for action_id in ("accept", "reject", "resolve", "leave", "open_chat", "reassign", "retry_delivery",
                      *SOUND_ACTIONS):
        app.action(action_id)(on_action)


def register_unknown_actions(app: AsyncApp) -> None:
    """Any other action id (forged, or from a card of an older version): refused. Register last."""

    async def on_unknown(ack: AsyncAck, action: dict, respond: AsyncRespond) -> None:
        await ack()
        try:
            await _tell(respond, "This button is not one chatgate knows (an old card?); nothing was changed.")
        except Exception:  # noqa: BLE001
            log.exception("refusing unknown action %s failed", action.get("action_id"))

    app.action(re.compile(".+"))(on_unknown)
