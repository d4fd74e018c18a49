"""Emoji shortcuts: a reaction on a chat card runs a control (``[slack] reactions``).

A reaction is the same core operation as the card's button; a refusal is said to the
reacting agent only (an ephemeral message).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from slack_bolt.async_app import AsyncApp

from gateway.message import Refused

from .deliver import conversation_for_thread
from .team import agent_id

if TYPE_CHECKING:
    from gateway.services import Services

    from . import SlackConsole

__all__ = ["register_reactions"]

log = logging.getLogger(__name__)


def register_reactions(app: AsyncApp, console: "SlackConsole", services: "Services") -> None:
    """The ``reaction_added`` listener on ``app``: the configured emoji run their control on the chat."""
    conversations = services.conversations
    reactions = dict(console.config.reactions)

    @app.event("reaction_added")
    async def on_reaction(event: dict, client) -> None:
        item = event.get("item") or {}
        operation = reactions.get(event.get("reaction", ""))
        if operation is None or item.get("type") != "message":
            return
        channel, ts, user = item.get("channel", ""), item.get("ts", ""), event.get("user", "")
        conversation_id = await conversation_for_thread(services.store, channel, ts)
        if conversation_id is None:
            return  # not a chat card
        try:
            await conversations.perform(operation, conversation_id, agent_id(services.team, user), via=console.name)
        except Refused as refusal:
            await client.chat_postEphemeral(channel=channel, user=user,
                                            text=f":{event.get('reaction')}: {console.refusal(refusal, services)}")
        except Exception:  # noqa: BLE001
            log.exception("reaction %s on chat %s failed", event.get("reaction"), conversation_id)
