"""Posting conversation events to Slack: the card, its updates and the thread.

Called by the workers for each item of a conversation's agent outbox, in order.
Each call is safe to repeat: the card is posted once and then only updated.
"""

from __future__ import annotations

import json
import logging
from typing import Awaitable, Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from channels import DeliveryError
from gateway.config import SlackConfig
from gateway.message import Conversation, State
from gateway.store import HistoryEntry, Store

from .cards import card, card_text, head_start_dm
from .team import Team

__all__ = ["client", "deliver_event", "conversation_for_thread", "ScheduleOffer"]

# Asks the workers to offer a chat to everyone after a delay (the returning customer's head start).
ScheduleOffer = Callable[[str, float], Awaitable[None]]

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
        data = exc.response.data if exc.response is not None else None
        error = data.get("error", "") if isinstance(data, dict) else ""
        status = exc.response.status_code if exc.response is not None else 0
        if error in _PERMANENT or (400 <= status < 500 and status != 429):
            raise DeliveryError(f"Slack refused: {error or status}", permanent=True) from None
        retry_after = None
        if exc.response is not None and status == 429:
            retry_after = float(exc.response.headers.get("Retry-After", 1) or 1)
        raise DeliveryError(f"Slack failed: {error or status}", retry_after=retry_after) from None
    except (OSError, TimeoutError) as exc:
        raise DeliveryError(f"Slack unreachable: {exc}") from None


async def _sound(store: Store, conversation: Conversation) -> bool:
    return not conversation.assignee or await store.sound(conversation.id, conversation.assignee)


async def _card_blocks(web: AsyncWebClient, store: Store, config: SlackConfig, conversation: Conversation,
                       ts: str | None) -> list[dict]:
    permalink = ""
    if ts and conversation.state is State.ACTIVE:
        permalink = await store.get_ref("slack-permalink", conversation.id) or ""
        if not permalink:
            try:
                reply = await _call(web.chat_getPermalink(channel=config.channel, message_ts=ts))
                permalink = reply.get("permalink", "")
                await store.set_ref("slack-permalink", conversation.id, permalink)
            except DeliveryError as exc:
                # The card matters more than its link: show it without A, try again next update.
                log.warning("no permalink for chat %s: %s", conversation.id, exc)
    reassigned = await store.get_ref("slack-reassigned", conversation.id)
    return card(conversation, sound=await _sound(store, conversation), permalink=permalink,
                reassigned=tuple(reassigned.split(" ", 1)) if reassigned else None)


def _relayed_text(conversation: Conversation, entry: HistoryEntry) -> str:
    return f"*{conversation.name or conversation.customer_id}:* {_customer_text(conversation, entry)}"


async def _post_card(web: AsyncWebClient, store: Store, config: SlackConfig, conversation: Conversation) -> str:
    ts = await store.get_ref("slack-card", conversation.id)
    if ts:
        return ts  # a repeated job must not post a second card
    reply = await _call(web.chat_postMessage(
        channel=config.channel, text=card_text(conversation),
        blocks=await _card_blocks(web, store, config, conversation, None),
    ))
    ts = reply["ts"]
    # Posted: remember it even through a Redis outage, or a retry would post a second card.
    await store.through_outage(lambda: store.set_ref("slack-card", conversation.id, ts))
    await store.through_outage(lambda: store.set_ref("slack-thread", f"{config.channel}:{ts}", conversation.id))
    if await store.get_ref("slack-dm", conversation.id):
        await _catch_up(web, store, config, conversation, ts)
    return ts


async def _catch_up(web, store: Store, config: SlackConfig, conversation: Conversation, ts: str) -> None:
    """After a head start, the thread gets the customer's messages that only the DM saw."""
    relayed = 1  # the first message is the card's query
    for entry in await store.history(conversation.id):
        if entry.direction == "in" and entry.seq > 1:
            await _call(web.chat_postMessage(channel=config.channel, thread_ts=ts,
                                             text=_relayed_text(conversation, entry)))
        relayed = max(relayed, entry.seq)
    await store.through_outage(lambda: store.set_ref("slack-relayed", conversation.id, str(relayed)))


async def _update_card(web: AsyncWebClient, store: Store, config: SlackConfig, conversation: Conversation) -> None:
    ts = await _post_card(web, store, config, conversation)
    await _call(web.chat_update(
        channel=config.channel, ts=ts, text=card_text(conversation),
        blocks=await _card_blocks(web, store, config, conversation, ts),
    ))


async def _thread(web, store, config, conversation, text: str, blocks: list[dict] | None = None) -> None:
    ts = await _post_card(web, store, config, conversation)
    await _call(web.chat_postMessage(channel=config.channel, thread_ts=ts, text=text, blocks=blocks))


def _failed_blocks(conversation: Conversation, text: str, seq: int) -> list[dict]:
    """The failure note with a Retry button for the assignee (the server checks who clicks)."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "actions", "block_id": f"retry-{conversation.id}-{seq}", "elements": [{
            "type": "button", "action_id": "retry_delivery", "text": {"type": "plain_text", "text": "Retry"},
            "value": f"{conversation.id}:{seq}",
        }]},
    ]


async def _dm(store: Store, conversation_id: str) -> tuple[str, str] | None:
    ref = await store.get_ref("slack-dm", conversation_id)
    if not ref:
        return None
    channel, ts = ref.split(":", 1)
    return channel, ts


async def _update_dm(web, store: Store, conversation: Conversation, status: str) -> None:
    dm = await _dm(store, conversation.id)
    if dm is not None:
        await _call(web.chat_update(channel=dm[0], ts=dm[1], text=status,
                                    blocks=head_start_dm(conversation, status)))


async def _head_start(web, store: Store, config: SlackConfig, conversation: Conversation,
                      schedule_offer: ScheduleOffer | None) -> bool:
    """DM the returning customer's previous agent with E and F; False if no head start applies."""
    agent = conversation.previous_agent
    if not agent or config.returning_head_start <= 0 or schedule_offer is None:
        return False
    if not await Team(config, web).is_agent(agent):
        return False  # no longer on the team: offer the chat to everyone at once
    if await _dm(store, conversation.id) is None:  # a repeated job must not DM twice
        try:
            reply = await _call(web.chat_postMessage(
                channel=agent, text=f":wave: Your previous customer {conversation.name or conversation.customer_id} "
                f"is back: “{conversation.query[:300]}”", blocks=head_start_dm(conversation),
            ))
        except DeliveryError as exc:
            if not exc.permanent:
                raise  # retried by the job
            # The agent cannot be reached (deactivated, DMs closed): no head start.
            log.warning("cannot DM %s about returning chat %s: %s", agent, conversation.id, exc)
            return False
        await store.through_outage(
            lambda: store.set_ref("slack-dm", conversation.id, f"{reply['channel']}:{reply['ts']}"))
    await schedule_offer(conversation.id, config.returning_head_start)
    return True


async def deliver_event(web: AsyncWebClient, store: Store, config: SlackConfig, raw: bytes,
                        schedule_offer: ScheduleOffer | None = None) -> None:
    """Show one outbox event in Slack. Raises DeliveryError when Slack fails.

    ``schedule_offer`` lets a returning customer's previous agent have the chat
    alone for ``slack.returning_head_start``; without it the chat is offered at once.
    """
    event = json.loads(raw)
    conversation = await store.get(event["conversation_id"])
    if conversation is None:
        return
    kind, by, seq = event["event"], event.get("by", ""), int(event.get("seq") or 0)
    name = conversation.name or conversation.customer_id

    if kind == "created":
        if await _head_start(web, store, config, conversation, schedule_offer):
            return
        if conversation.previous_agent:
            # The returning customer's previous agent hears of it first, in a DM.
            try:
                await _call(web.chat_postMessage(
                    channel=conversation.previous_agent,
                    text=f":wave: Your previous customer *{name}* is back: “{conversation.query[:300]}”. "
                    f"The chat card is in <#{config.channel}>.",
                ))
            except DeliveryError as exc:
                if not exc.permanent:
                    raise
                log.warning("cannot DM %s about chat %s: %s", conversation.previous_agent, conversation.id, exc)
        await _post_card(web, store, config, conversation)
        entry = await store.message(conversation.id, seq)
        if entry and entry.attachments:
            await _thread(web, store, config, conversation, f"*{name}:* {_customer_text(conversation, entry)}")
        return

    if kind in ("message", "reopened", "rated"):
        entry = await store.message(conversation.id, seq)
        card_ts = await store.get_ref("slack-card", conversation.id)
        dm = await _dm(store, conversation.id)
        if entry is not None and card_ts is None and dm is not None:
            # Still in the head start: only the previous agent sees it, in the DM's thread.
            await _call(web.chat_postMessage(channel=dm[0], thread_ts=dm[1], text=_relayed_text(conversation, entry)))
            return
        if entry is not None and entry.seq > int(await store.get_ref("slack-relayed", conversation.id) or 0):
            text = _relayed_text(conversation, entry)
            if kind == "reopened":
                text = ":arrows_counterclockwise: The customer wrote again, the chat is active again.\n" + text
            if kind == "rated":
                text = f":star: {name} rated this chat {conversation.rating}/5."
            elif conversation.state is State.ACTIVE and conversation.assignee and await _sound(store, conversation):
                # The mention is what makes Slack notify the assignee with sound.
                text = f"<@{conversation.assignee}> {text}"
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
        "reassigned": f"<@{by}> reassigned this chat to <@{event.get('to', '')}>. "
        f"Replies in this thread from <@{event.get('to', '')}> go to the customer.",
    }
    if kind == "reassigned":
        await store.set_ref("slack-reassigned", conversation.id, f"{by} {event.get('to', '')}")
    if kind == "offered":
        await _post_card(web, store, config, conversation)
        if conversation.previous_agent not in conversation.declined_by:
            await _update_dm(web, store, conversation,
                             f":hourglass: The head start is over: this chat is offered to everyone in <#{config.channel}>.")
        return
    if kind == "delivery_failed":
        entry = await store.message(conversation.id, seq)
        if entry is not None:
            text = f":warning: Not delivered to the customer: “{entry.text[:300]}” ({entry.detail})"
            await _thread(web, store, config, conversation, text, _failed_blocks(conversation, text, seq))
        return
    if kind == "redelivering":
        entry = await store.message(conversation.id, seq)
        if entry is not None:
            await _thread(web, store, config, conversation,
                          f":repeat: <@{by}> is sending “{entry.text[:300]}” again.")
        return
    await _update_card(web, store, config, conversation)
    if kind in notes:
        await _thread(web, store, config, conversation, notes[kind])
    if kind == "accepted":
        link = await store.get_ref("slack-permalink", conversation.id)
        await _update_dm(web, store, conversation, f"<@{by}> accepted this chat"
                         + (f": <{link}|open the thread>." if link else "."))
    elif kind == "declined" and by == conversation.previous_agent:
        await _update_dm(web, store, conversation,
                         f"You declined this chat; it is offered to everyone in <#{config.channel}>.")
