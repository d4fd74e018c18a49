"""The slack-bolt app: chat card buttons and thread replies, mounted at ``POST /slack/events``.

Every button and every reply calls the core operations; a refusal is shown to
the clicking agent only (ephemeral), and the card itself is updated by the
workers from the conversation's agent outbox.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from gateway.config import SlackConfig
from gateway.conversations import Conversations
from gateway.message import Refused
from gateway.store import Store

from .controls import NOT_AGENT, register_controls, register_unknown_actions
from .deliver import client, conversation_for_thread
from .home_actions import register_home
from .team import Team

__all__ = ["build", "events_handler", "socket_mode_handler"]

log = logging.getLogger(__name__)

# A thread message starting with this (any case) is the assignee's private note.
NOTE_PREFIX = re.compile(r"^\s*note:", re.IGNORECASE)


async def _acknowledge_note(client, channel: str, ts: str) -> None:
    """A :memo: on the note tells its author it was kept and not sent."""
    try:
        await client.reactions_add(channel=channel, timestamp=ts, name="memo")
    except Exception:  # noqa: BLE001 - the note is stored; a missing reaction is only cosmetic
        log.warning("could not add the note reaction in %s at %s", channel, ts, exc_info=True)


def build(config: SlackConfig, conversations: Conversations, store: Store) -> AsyncApp:
    """The bolt app for one workspace, with its handlers."""
    app = AsyncApp(
        signing_secret=config.signing_secret,
        client=client(config),
        # Bolt would log the unhandled events; we ignore most message subtypes on purpose.
        raise_error_for_unhandled_request=False,
        # Answer Slack only once a reply is stored: a 2xx means it is safe, and
        # replies sent one after another are stored in that order.
        process_before_response=True,
    )

    team = Team(config, app.client)
    register_home(app, config, conversations, team)  # before the controls: Home's Accept is answered in Home
    register_controls(app, conversations, store, team)

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
            if not await team.is_agent(agent):
                raise Refused("not_agent", NOT_AGENT)
            if NOTE_PREFIX.match(text):
                if await conversations.note(conversation_id, agent, text, platform_id=f"{config.channel}:{event['ts']}"):
                    await _acknowledge_note(client, config.channel, event["ts"])
                return
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

    register_unknown_actions(app)  # keep last: bolt tries listeners in order
    return app


def events_handler(app: AsyncApp) -> "web.Handler":
    """The aiohttp handler for ``POST /slack/events`` (events and interactivity)."""

    async def handle(request: web.Request) -> web.Response:
        try:
            bolt_request = await to_bolt_request(request)
        except (ValueError, AttributeError, TypeError):
            # Bolt parses the body before it checks the signature; a body that is
            # not Slack's JSON or form (a JSON array, broken JSON) fails in there.
            return web.json_response({"error": "malformed body: not a Slack event or interaction"}, status=400)
        bolt_response = await app.async_dispatch(bolt_request)
        return await to_aiohttp_response(bolt_response)

    return handle


def socket_mode_handler(app: AsyncApp, config: SlackConfig):
    """Slack's Socket Mode connection for ``app`` (no public URL needed); ``connect_async()`` it."""
    from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

    return AsyncSocketModeHandler(app, app_token=config.app_token)
