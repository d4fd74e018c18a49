"""The slack-bolt app: chat card buttons and thread replies, mounted at ``POST /slack/events``.

Every button and every reply calls the core operations; a refusal is shown to
the clicking agent only (ephemeral), and the card itself is updated by the
workers from the conversation's agent outbox.
"""

from __future__ import annotations

import logging

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from gateway.config import SlackConfig
from gateway.conversations import Conversations
from gateway.message import Refused
from gateway.store import Store

from .deliver import client, conversation_for_thread

__all__ = ["build", "events_handler"]

log = logging.getLogger(__name__)

ACTIONS = ("accept", "reject", "resolve", "leave")


def build(config: SlackConfig, conversations: Conversations, store: Store) -> AsyncApp:
    """The bolt app for one workspace, with its handlers."""
    app = AsyncApp(
        signing_secret=config.signing_secret,
        client=client(config),
        # Bolt would log the unhandled events; we ignore most message subtypes on purpose.
        raise_error_for_unhandled_request=False,
    )

    async def on_action(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond) -> None:
        await ack()
        agent = body.get("user", {}).get("id", "")
        operation = getattr(conversations, action["action_id"])
        try:
            await operation(action.get("value", ""), agent)
        except Refused as refusal:
            await respond(text=refusal.reason, response_type="ephemeral", replace_original=False)
        except Exception:  # noqa: BLE001 - bolt answers 404 if a handler raises after ack()
            log.exception("Slack action %s failed", action["action_id"])
            await respond(text="Something went wrong; nothing was changed. Please try again.",
                          response_type="ephemeral", replace_original=False)

    for action_id in ACTIONS:
        app.action(action_id)(on_action)

    @app.event("message")
    async def on_message(event: dict, client) -> None:
        if event.get("subtype") or event.get("bot_id") or event.get("channel") != config.channel:
            return  # edits, joins, our own posts, other channels
        thread_ts = event.get("thread_ts")
        if not thread_ts or thread_ts == event.get("ts"):
            return  # top-level chatter in the channel is not for a customer
        conversation_id = await conversation_for_thread(store, config.channel, thread_ts)
        if conversation_id is None:
            return
        agent, text = event.get("user", ""), event.get("text", "")
        try:
            await conversations.reply(conversation_id, agent, text, platform_id=f"{config.channel}:{event['ts']}")
        except Refused as refusal:
            await client.chat_postEphemeral(
                channel=config.channel, user=agent, thread_ts=thread_ts,
                text=f"Not sent to the customer: {refusal.reason}",
            )
        except Exception:  # noqa: BLE001
            log.exception("relaying a Slack reply failed")
            await client.chat_postEphemeral(
                channel=config.channel, user=agent, thread_ts=thread_ts,
                text="Not sent to the customer: chatgate could not store it. Please send it again.",
            )

    return app


def events_handler(app: AsyncApp) -> "web.Handler":
    """The aiohttp handler for ``POST /slack/events`` (events and interactivity)."""

    async def handle(request: web.Request) -> web.Response:
        bolt_response = await app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    return handle
