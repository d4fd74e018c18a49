"""The chat card's controls (E Accept, F Reject, D Resolve, C Leave, B Speaker, A Go back,
Retry, Reassign, and every other declared control with nothing to ask, by its name): one bolt
listener each, behind one listener middleware, each through ``Conversations.perform``.
Transfer (a user picker on the card, then the note in a modal) has its own listeners.

The middleware maps the clicking Slack user to their agent id and answers
whatever the core refuses: the core checks roles and the state machine checks
the chat, whatever the payload (forged action ids or values, a stale card, a
double click). A refusal is an ephemeral reply to the clicker only, and nothing
changes.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Awaitable, Callable

from slack_bolt import BoltResponse
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from gateway.message import Refused
from gateway.operations import controls

from .cards import SOUND_ACTIONS, transfer_modal
from .team import agent_id, mention

if TYPE_CHECKING:
    from gateway.services import Services

    from . import SlackConsole

__all__ = ["register_controls", "register_unknown_actions"]

log = logging.getLogger(__name__)


def _conversation_id(action: dict) -> str:
    """Buttons carry the id as their value; a select has none, so its block id says it."""
    if action.get("value"):
        return action["value"]
    match = re.fullmatch(r"(?:chat|dm)-(\d+)", action.get("block_id", ""))
    return match.group(1) if match else ""


async def _tell(respond: AsyncRespond, text: str) -> None:
    await respond(text=text, response_type="ephemeral", replace_original=False)


# What a control does, given the agent id, the conversation id and the action payload.
Control = Callable[[str, str, dict], Awaitable[None]]


def register_controls(app: AsyncApp, console: "SlackConsole", services: "Services") -> None:
    """One listener per control on ``app``, each run by ``as_agent``."""
    conversations, store, via = services.conversations, services.store, console.name

    async def as_agent(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond, next) -> BoltResponse:
        """Listener middleware: acknowledge, then run the control as the clicker's agent; refusals go to them."""
        await ack()
        try:
            control = _CONTROLS[action.get("action_id", "")]
            user = body.get("user", {}).get("id", "")
            await control(agent_id(services.team, user), _conversation_id(action), action)
        except Refused as refusal:
            await _tell(respond, console.refusal(refusal, services))
        except Exception:  # noqa: BLE001 - bolt answers 404 if a handler raises after ack()
            log.exception("Slack action %s failed", action.get("action_id"))
            await _tell(respond, "Something went wrong; nothing was changed. Please try again.")
        # Answered here: the listener itself has nothing left to do.
        return BoltResponse(status=200, body="")

    async def open_chat(agent: str, conversation_id: str, action: dict) -> None:
        # A is a link Slack opens by itself; it only tells the others it is not theirs.
        conversation = await store.get(conversation_id)
        if conversation is None or conversation.assignee != agent:
            owner = mention(services.team, conversation.assignee) if conversation and conversation.assignee \
                else "nobody yet"
            raise Refused("not_assignee", reason=f"This chat is assigned to {owner}; only its assignee works in it.")

    async def retry(agent: str, _conversation_id: str, action: dict) -> None:
        conversation_id, _, seq = action.get("value", "").partition(":")
        if not seq.isdigit():
            raise Refused("unknown", reason="This Retry button does not name a message; nothing was sent.")
        await conversations.perform("redeliver", conversation_id, agent, via=via, seq=int(seq))

    async def reassign(agent: str, conversation_id: str, action: dict) -> None:
        target = action.get("selected_user") or ""
        await conversations.perform("reassign", conversation_id, agent, via=via,
                                    to=agent_id(services.team, target) if target else "")

    def sound(on: bool) -> Control:
        async def set_sound(agent: str, conversation_id: str, _action: dict) -> None:
            await conversations.perform("sound", conversation_id, agent, via=via, on=on)

        return set_sound

    def perform(name: str) -> Control:
        async def run(agent: str, conversation_id: str, _action: dict) -> None:
            await conversations.perform(name, conversation_id, agent, via=via)

        return run

    _CONTROLS: dict[str, Control] = {
        # Every declared control with nothing to ask: its button's action id is its name (cards.plain_button).
        **{op.name: perform(op.name) for op in controls() if op.asks_nothing},
        # The controls Slack shows its own way (cards.CARD).
        "open_chat": open_chat,
        "retry_delivery": retry,
        "reassign": reassign,
        **{action_id: sound(on) for action_id, on in SOUND_ACTIONS.items()},
    }

    async def done() -> None:
        """The listener behind ``as_agent``, which has done the work."""

    for action_id in _CONTROLS:
        app.action(action_id, middleware=[as_agent])(done)

    register_transfer(app, console, services)


def register_transfer(app: AsyncApp, console: "SlackConsole", services: "Services") -> None:
    """The card's "Transfer to…" picker opens a modal for the note; its submission transfers.

    The core decides (assignee only, the receiver must be an agent with room); a refusal
    is shown in the modal, under the note.
    """

    @app.action("transfer")
    async def on_transfer_pick(ack: AsyncAck, body: dict, action: dict, client, respond: AsyncRespond) -> None:
        await ack()
        conversation_id, target = _conversation_id(action), action.get("selected_user") or ""
        if not conversation_id or not target:
            return
        try:
            await client.views_open(trigger_id=body.get("trigger_id", ""),
                                    view=transfer_modal(conversation_id, target, f"<@{target}>"))
        except Exception:  # noqa: BLE001
            log.exception("opening the transfer modal failed")
            await _tell(respond, "Could not open the transfer form; nothing was changed. Please try again.")

    @app.view("transfer_note")
    async def on_transfer_note(ack: AsyncAck, body: dict, view: dict) -> None:
        conversation_id, _, target = (view.get("private_metadata") or "").partition(":")
        values = (view.get("state") or {}).get("values") or {}
        note = ((values.get("note") or {}).get("text") or {}).get("value") or ""
        user = (body.get("user") or {}).get("id", "")
        try:
            await services.conversations.transfer(conversation_id, agent_id(services.team, user),
                                                  agent_id(services.team, target) if target else "", note,
                                                  via=console.name)
        except Refused as refusal:
            await ack(response_action="errors", errors={"note": console.refusal(refusal, services)[:2000]})
            return
        except Exception:  # noqa: BLE001
            log.exception("transfer of chat %s failed", conversation_id)
            await ack(response_action="errors", errors={"note": "Something went wrong; nothing was changed."})
            return
        await ack()


def register_unknown_actions(app: AsyncApp) -> None:
    """Any other action id (forged, or from a card of an older version): refused. Register last."""

    async def on_unknown(ack: AsyncAck, action: dict, respond: AsyncRespond) -> None:
        await ack()
        try:
            await _tell(respond, "This button is not one chatgate knows (an old card?); nothing was changed.")
        except Exception:  # noqa: BLE001
            log.exception("refusing unknown action %s failed", action.get("action_id"))

    app.action(re.compile(".+"))(on_unknown)
