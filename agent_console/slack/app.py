"""The slack-bolt app: chat card buttons, thread replies, the App Home, saved replies and reaction
shortcuts, mounted at ``POST /slack/events`` (or connected over Socket Mode).

Every button and every reply calls the core operations; a refusal is shown to
the clicking agent only (ephemeral), and the card itself is updated by the
workers from the conversation's agent outbox.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_sdk.signature import SignatureVerifier

from gateway.http import scrub
from gateway.message import Attachment, Refused

from .config import SlackConfig
from .controls import register_controls, register_unknown_actions
from .deliver import conversation_for_thread
from .home_actions import register_home
from .mrkdwn import to_chatgate, user_ids
from .reactions import register_reactions
from .saved_replies import register_saved_replies
from .team import agent_id

if TYPE_CHECKING:
    from gateway.services import Services

    from . import SlackConsole

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


# Slack user id -> display name, per process: mentions in agents' messages become names for customers.
_NAMES: dict[str, str] = {}


async def user_names(client, ids: set[str]) -> dict[str, str]:
    """The names of the mentioned users (``users.info``, cached); a user Slack cannot name is left out
    (``to_chatgate`` then falls back to the mention's label or "someone")."""
    names = {}
    for user in ids:
        if user not in _NAMES:
            try:
                info = (await client.users_info(user=user)).get("user") or {}
                profile = info.get("profile") or {}
                name = (profile.get("display_name") or profile.get("real_name") or info.get("real_name")
                        or info.get("name") or "")
            except Exception:  # noqa: BLE001 - a name is nice to have; the message goes out anyway
                log.warning("users.info failed for %s", user, exc_info=True)
                continue
            if not name:
                continue
            _NAMES[user] = name
        names[user] = _NAMES[user]
    return names


async def agent_text(client, mrkdwn: str) -> str:
    """An agent's Slack message (mrkdwn as the Events API delivers it) as chatgate text."""
    return to_chatgate(mrkdwn, await user_names(client, user_ids(mrkdwn)))


def shared_files(event: dict) -> list[Attachment]:
    """The files of a ``file_share`` message, as attachments the Slack console can open again."""
    found = []
    for f in event.get("files") or []:
        if not isinstance(f, dict) or f.get("mode") == "tombstone":
            continue
        mimetype = str(f.get("mimetype") or "")
        major = mimetype.split("/", 1)[0]
        kind = {"image": "photo", "video": "video", "audio": "audio"}.get(major, "document")
        url = str(f.get("url_private_download") or f.get("url_private") or "")
        if url:
            found.append(Attachment(kind, url, mimetype, str(f.get("name") or f.get("title") or "file"),
                                    int(f.get("size") or 0), source="slack"))
    return found


def build(console: "SlackConsole", services: "Services") -> AsyncApp:
    """The bolt app for one workspace, with its handlers."""
    config, conversations, store = console.config, services.conversations, services.store
    app = AsyncApp(
        signing_secret=config.signing_secret,
        client=console.web,
        # Bolt would log the unhandled events; we ignore most message subtypes on purpose.
        raise_error_for_unhandled_request=False,
        # Answer Slack only once a reply is stored: a 2xx means it is safe, and
        # replies sent one after another are stored in that order.
        process_before_response=True,
    )

    register_home(app, console, services)  # before the controls: Home's Accept is answered in Home
    register_controls(app, console, services)
    register_saved_replies(app, console, services)
    register_reactions(app, console, services)

    channels = config.card_channels()  # the topics' own channels too

    @app.event("message")
    async def on_message(event: dict, client) -> None:
        if event.get("subtype") not in (None, "file_share") or event.get("bot_id") \
                or event.get("channel") not in channels:
            return  # edits, joins, our own posts, other channels
        thread_ts = event.get("thread_ts")
        if not thread_ts or thread_ts == event.get("ts"):
            return  # top-level chatter in the channel is not for a customer
        channel = event["channel"]
        conversation_id = await conversation_for_thread(store, channel, thread_ts)
        if conversation_id is None:
            return
        user, text = event.get("user", ""), event.get("text", "")
        agent = agent_id(services.team, user)
        platform_id = f"{channel}:{event['ts']}"
        try:
            if NOTE_PREFIX.match(text):
                note = await agent_text(client, text)
                if await conversations.note(conversation_id, agent, note, platform_id=platform_id, via=console.name):
                    await _acknowledge_note(client, channel, event["ts"])
                return
            # Slack's markup (links, mentions, &amp;) becomes chatgate text; each channel renders it.
            reply = await agent_text(client, text)
            await conversations.reply(conversation_id, agent, reply, platform_id=platform_id, via=console.name,
                                      attachments=shared_files(event))
        except Refused as refusal:
            await client.chat_postEphemeral(
                channel=channel, user=user, thread_ts=thread_ts,
                text=f"Not sent to the customer: {console.refusal(refusal, services)}",
            )
        except Exception:  # noqa: BLE001
            log.exception("relaying a Slack reply failed")
            await client.chat_postEphemeral(
                channel=channel, user=user, thread_ts=thread_ts,
                text="Not sent to the customer: chatgate could not store it. Please send it again.",
            )

    register_unknown_actions(app)  # keep last: bolt tries listeners in order
    return app


def malformed(body: dict) -> str:
    """Why a (signed) Slack body is not an event or an interaction chatgate can read; "" if it is one.

    Bolt assumes Slack's shapes inside its middleware and answers 500 otherwise.
    """
    if "command" in body and "type" not in body:
        return ""  # a slash command's form: bolt's business
    kind = body.get("type")
    if kind is None:
        return "no type"
    for key in ("event", "team", "container", "view", "message", "channel", "enterprise"):
        if key in body and not isinstance(body[key], dict) and not (key == "event" and kind == "event_callback"):
            return f"{key} must be an object"
    if "user" in body and not isinstance(body["user"], (dict, str)):
        return "user must be an object"
    if "authorizations" in body and not (isinstance(body["authorizations"], list)
                                         and all(isinstance(a, dict) for a in body["authorizations"])):
        return "authorizations must be a list of objects"
    if kind == "event_callback":
        event = body.get("event")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return "an event_callback needs an event object with a type"
    elif kind == "block_actions":
        actions = body.get("actions")
        if not isinstance(actions, list) or not actions or not all(
                isinstance(a, dict) and isinstance(a.get("action_id"), str) for a in actions):
            return "block_actions needs a list of actions, each with an action_id"
        if not isinstance(body.get("user"), dict):
            return "block_actions needs the user who clicked"
    elif kind not in ("url_verification", "app_rate_limited", "view_submission", "view_closed", "shortcut",
                      "message_action", "block_suggestion", "interactive_message"):
        return f"unknown type {kind!r}"
    return ""


def _signed(verifier: SignatureVerifier, raw_body: str, headers: dict) -> bool:
    """Whether Slack signed this body; bolt's headers map each name to a list of values."""

    def first(name: str) -> str | None:
        values = headers.get(name) or []
        return values[0] if values else None

    timestamp, signature = first("x-slack-request-timestamp"), first("x-slack-signature")
    try:
        return bool(timestamp and signature and verifier.is_valid(raw_body, timestamp, signature))
    except (ValueError, TypeError):  # a timestamp that is not a number, a signature that is not ASCII
        return False


def _plausible_signature_headers(headers: dict) -> bool:
    """Whether the signature headers, where given, are what Slack sends: a timestamp of ASCII digits, an
    ASCII signature."""
    timestamp = (headers.get("x-slack-request-timestamp") or [""])[0]
    signature = (headers.get("x-slack-signature") or [""])[0]
    return (not timestamp or (timestamp.isascii() and timestamp.isdigit())) and signature.isascii()


def _may_hold_surrogates(raw_body: str) -> bool:
    """Whether a body may spell a surrogate: a JSON ``\\uD800``-``\\uDFFF`` escape, as is or form-encoded."""
    lower = raw_body.lower()
    return "\\ud" in lower or "%5cud" in lower


def events_handler(app: AsyncApp, signing_secret: str) -> Handler:
    """The aiohttp handler for ``POST /slack/events`` (events and interactivity)."""
    verifier = SignatureVerifier(signing_secret)

    async def handle(request: web.Request) -> web.Response:
        try:
            bolt_request = await to_bolt_request(request)
            # As bolt read it (JSON, or a form with a JSON payload, or a slash command's form).
            body = bolt_request.body
            if _may_hold_surrogates(bolt_request.raw_body):
                # A lone surrogate ("\udfff") in Slack's text cannot be stored: U+FFFD stands in for it
                # (refusing would only make Slack retry). The signature is checked on the raw body.
                clean = scrub(body)
                if clean is not body:
                    body = bolt_request.body = clean
                    bolt_request.context = build_async_context(AsyncBoltContext({}), clean)
        except (ValueError, AttributeError, TypeError, RecursionError):
            # Bolt parses the body before it checks the signature; a body that is
            # not Slack's JSON or form (a JSON array, broken JSON, nested too deep) fails in there.
            return web.json_response({"error": "malformed body: not a Slack event or interaction"}, status=400)
        reason = "not a JSON object" if not isinstance(body, dict) else malformed(body)
        if reason and _signed(verifier, bolt_request.raw_body, bolt_request.headers):
            # Only a signed request learns what was wrong with it; others get bolt's 401.
            return web.json_response({"error": f"malformed Slack body: {reason}"}, status=400)
        if not _plausible_signature_headers(bolt_request.headers):
            # Bolt's own check would fail on these (int(), compare_digest) and answer 500.
            return web.json_response({"error": "invalid request"}, status=401)
        bolt_response = await app.async_dispatch(bolt_request)
        return await to_aiohttp_response(bolt_response)

    return handle


def socket_mode_handler(app: AsyncApp, config: SlackConfig):
    """Slack's Socket Mode connection for ``app`` (no public URL needed); ``connect_async()`` it."""
    from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

    return AsyncSocketModeHandler(app, app_token=config.app_token)
