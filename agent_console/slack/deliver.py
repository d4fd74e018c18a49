"""Posting conversation events to Slack: the card, its updates and the thread.

Called by the workers for each item of a conversation's agent outbox, in order.
Each call is safe to repeat: the card is posted once and then only updated.
"""

from __future__ import annotations

import json
import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from channels import DeliveryError
from gateway.config import SlackConfig
from gateway.message import Conversation
from gateway.store import HistoryEntry, Store

from .cards import card, card_text

__all__ = ["client", "deliver_event", "conversation_for_thread"]

log = logging.getLogger(__name__)

# Slack errors that no retry can fix.
_PERMANENT = {
    "channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "account_inactive",
    "token_revoked", "missing_scope", "msg_too_long", "invalid_blocks", "no_text", "message_not_found",
    "cant_update_message", "user_not_found",
}


def client(config: SlackConfig) -> AsyncWebClient:
    """A Web API client pointed at the configured base URL."""
    return AsyncWebClient(token=config.bot_token, base_url=config.api_url)


async def conversation_for_thread(store: Store, channel: str, thread_ts: str) -> str | None:
    return await store.get_ref("slack-thread", f"{channel}:{thread_ts}")


def _customer_text(conversation: Conversation, entry: HistoryEntry) -> str:
    lines = [entry.text] if entry.text else []
    for attachment in entry.attachments:
        ref = attachment.get("ref", "")
        kind = attachment.get("kind", "file")
        label = attachment.get("name") or kind
        if ref.startswith("http"):
            lines.append(f":paperclip: <{ref}|{label}>")
        else:
            lines.append(f":paperclip: {label} (file id `{ref}`)")
    return "\n".join(lines) or "(empty message)"


async def _call(coro):
    try:
        return await coro
    except SlackApiError as exc:
        error = exc.response.get("error", "") if exc.response is not None else ""
        status = exc.response.status_code if exc.response is not None else 0
        if error in _PERMANENT or (400 <= status < 500 and status != 429):
            raise DeliveryError(f"Slack refused: {error or status}", permanent=True) from None
        retry_after = None
        if exc.response is not None and status == 429:
            retry_after = float(exc.response.headers.get("Retry-After", 1) or 1)
        raise DeliveryError(f"Slack failed: {error or status}", retry_after=retry_after) from None
    except (OSError, TimeoutError) as exc:
        raise DeliveryError(f"Slack unreachable: {exc}") from None


async def _post_card(web: AsyncWebClient, store: Store, config: SlackConfig, conversation: Conversation) -> str:
    ts = await store.get_ref("slack-card", conversation.id)
    if ts:
        return ts  # a repeated job must not post a second card
    reply = await _call(web.chat_postMessage(
        channel=config.channel, text=card_text(conversation), blocks=card(conversation)
    ))
    ts = reply["ts"]
    await store.set_ref("slack-card", conversation.id, ts)
    await store.set_ref("slack-thread", f"{config.channel}:{ts}", conversation.id)
    return ts


async def _update_card(web: AsyncWebClient, store: Store, config: SlackConfig, conversation: Conversation) -> None:
    ts = await _post_card(web, store, config, conversation)
    await _call(web.chat_update(
        channel=config.channel, ts=ts, text=card_text(conversation), blocks=card(conversation)
    ))


async def _thread(web, store, config, conversation, text: str) -> None:
    ts = await _post_card(web, store, config, conversation)
    await _call(web.chat_postMessage(channel=config.channel, thread_ts=ts, text=text))


async def deliver_event(web: AsyncWebClient, store: Store, config: SlackConfig, raw: bytes) -> None:
    """Show one outbox event in Slack. Raises DeliveryError when Slack fails."""
    event = json.loads(raw)
    conversation = await store.get(event["conversation_id"])
    if conversation is None:
        return
    kind, by, seq = event["event"], event.get("by", ""), int(event.get("seq") or 0)
    name = conversation.name or conversation.customer_id

    if kind == "created":
        if conversation.previous_agent:
            # The returning customer's previous agent hears of it first, in a DM.
            await _call(web.chat_postMessage(
                channel=conversation.previous_agent,
                text=f":wave: Your previous customer *{name}* is back: “{conversation.query[:300]}”. "
                f"The chat card is in <#{config.channel}>.",
            ))
        await _post_card(web, store, config, conversation)
        entry = await store.message(conversation.id, seq)
        if entry and entry.attachments:
            await _thread(web, store, config, conversation, f"*{name}:* {_customer_text(conversation, entry)}")
        return

    if kind in ("message", "reopened", "rated"):
        entry = await store.message(conversation.id, seq)
        if entry is not None:
            text = f"*{name}:* {_customer_text(conversation, entry)}"
            if kind == "reopened":
                text = ":arrows_counterclockwise: The customer wrote again, the chat is active again.\n" + text
            if kind == "rated":
                text = f":star: {name} rated this chat {conversation.rating}/5."
            await _thread(web, store, config, conversation, text)
        if kind != "message":
            await _update_card(web, store, config, conversation)
        return

    notes = {
        "accepted": f"<@{by}> accepted this chat. Replies in this thread go to the customer.",
        "declined": f"<@{by}> declined this chat.",
        "left": f"<@{by}> left this chat; it is back in the Inbox.",
        "resolved": f"<@{by}> resolved this chat; the customer was asked for a rating.",
        "closed": "This chat is closed.",
    }
    if kind == "delivery_failed":
        entry = await store.message(conversation.id, seq)
        if entry is not None:
            await _thread(web, store, config, conversation,
                          f":warning: Not delivered to the customer: “{entry.text[:300]}” ({entry.detail})")
        return
    await _update_card(web, store, config, conversation)
    if kind in notes:
        await _thread(web, store, config, conversation, notes[kind])
