"""Posting conversation events to Slack: the card, its updates and the thread.

Called by the workers for each item of a conversation's agent outbox, in order.
Each call is safe to repeat: the card is posted once and then only updated.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Awaitable, Callable

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from gateway.events import AgentEvent, EventKind
from gateway.message import Conversation, State
from gateway.operations import OPERATIONS
from gateway.ports import DeliveryError
from gateway.store import HistoryEntry, Store
from gateway.team import Team

from gateway import text as chatgate

from .cards import card, card_text, customer_name, format_seconds, head_start_dm, query_fits
from .config import SlackConfig
from .mrkdwn import SECTION_LIMIT, clip, escape, from_chatgate, split_for_slack
from .team import mention, slack_user

if TYPE_CHECKING:
    from gateway.services import Services

    from . import SlackConsole

__all__ = ["client", "deliver_event", "already_delivered", "event_id", "conversation_for_thread", "card_channel",
           "HANDLERS", "METADATA_TYPE"]

log = logging.getLogger(__name__)

# Slack errors that no retry can fix.
_PERMANENT = {
    "channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "account_inactive",
    "token_revoked", "missing_scope", "msg_too_long", "invalid_blocks", "no_text", "message_not_found",
    "cant_update_message", "user_not_found",
}


# Every message posted for an outbox event carries Slack message metadata of this type with the event's id,
# so a drainer taking over after a crash can see in Slack what was already posted (``already_delivered``).
METADATA_TYPE = "chatgate_event"
# How far before an event's time its card is looked for in the channel (clocks of hosts differ a little).
CLOCK_SKEW = 60.0


def event_id(event: AgentEvent) -> str:
    """A stable id of one outbox event: the same however often the item is read again."""
    return f"{event.conversation_id}:{event.kind.value}:{event.seq}:{event.at!r}:{event.by}"


def _metadata(event: AgentEvent, carries: tuple[str, ...] = ()) -> dict:
    payload: dict = {"id": event_id(event)}
    if carries:
        payload["carries"] = list(carries)
    return {"event_type": METADATA_TYPE, "event_payload": payload}


def carried(conversation_id: str, seq: int) -> str:
    """How a post that carries a customer message besides its own event's names it (``carries``)."""
    return f"{conversation_id}:{seq}"


def _carries(message: dict) -> list[str]:
    """The customer messages a combined post carries besides its own event's (see ``relay_together``)."""
    metadata = message.get("metadata") or {}
    if metadata.get("event_type") != METADATA_TYPE:
        return []
    found = (metadata.get("event_payload") or {}).get("carries")
    return [str(item) for item in found] if isinstance(found, list) else []


def _posted_for(message: dict) -> str:
    """The event id a Slack message was posted for ("" when it has none of chatgate's metadata)."""
    metadata = message.get("metadata") or {}
    if metadata.get("event_type") != METADATA_TYPE:
        return ""
    return str((metadata.get("event_payload") or {}).get("id", ""))


def client(config: SlackConfig) -> AsyncWebClient:
    """A Web API client pointed at the configured base URL."""
    return AsyncWebClient(token=config.bot_token, base_url=config.api_url)


async def conversation_for_thread(store: Store, channel: str, thread_ts: str) -> str | None:
    return await store.get_ref("slack-thread", f"{channel}:{thread_ts}")


async def card_channel(store: Store, config: SlackConfig, conversation_id: str) -> str:
    """The channel of a chat's card (as posted), else ``slack.channel``."""
    return await store.get_ref("slack-channel", conversation_id) or config.channel


def _customer_text(conversation: Conversation, entry: HistoryEntry, files_follow: bool = False) -> str:
    """A customer's message as mrkdwn: escaped, so ``<!channel>`` or ``<@U…>`` show literally and ping no one.

    With ``files_follow`` its files are uploaded after it, so the text does not list them.
    """
    lines = [escape(entry.text)] if entry.text else []
    if files_follow and entry.attachments:
        count = len(entry.attachments)
        return "\n".join(lines) or f"(sent {count} file{'s' if count != 1 else ''})"
    for attachment in entry.attachments:
        kind = str(attachment.get("kind", "file"))
        label = clip(str(attachment.get("name") or kind), 200)
        ref = str(attachment.get("ref", ""))
        if ref.startswith(("https://", "http://")) and "|" not in ref and len(ref) < 2000:
            lines.append(f":paperclip: <{escape(ref)}|{label}>")
        else:
            lines.append(f":paperclip: {label}" + (f" ({clip(kind, 30)})" if label != kind else ""))
    return "\n".join(lines) or "(empty message)"


def _quoted(text: str, limit: int = 300) -> str:
    """chatgate text shown briefly in a note: plain, escaped and clipped."""
    return clip(chatgate.plain(chatgate.parse(text)), limit)


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
    except (OSError, TimeoutError, aiohttp.ClientError, SlackRequestError) as exc:
        raise DeliveryError(f"Slack unreachable: {exc}") from None


class Delivery:
    """Posts one conversation's events to the channel, its thread and DMs, for one worker job."""

    def __init__(self, console: "SlackConsole", services: "Services"):
        self.web: AsyncWebClient = console.web
        self.config: SlackConfig = console.config
        self.store: Store = services.store
        self.team: Team = services.team
        self.labels = services.channel_labels
        self.services = services
        self.pacer = console.pacer
        self._cards: dict[str, str] = {}  # conversation id -> its card's ts, once posted and caught up
        self.event: AgentEvent | None = None  # the event being shown: its id goes with every post
        self.carries: tuple[str, ...] = ()  # the later customer messages a combined post carries too

    async def post(self, **message) -> dict:
        """``chat.postMessage``, paced per channel with every other process (``slack.post_rate``, before
        Slack answers 429) and tagged with the event's id (message metadata)."""
        await self.pacer.wait(f"slack-post:{message['channel']}", self.config.post_rate, self.config.post_burst)
        if self.event is not None:
            message["metadata"] = _metadata(self.event, self.carries)
        return await _call(self.web.chat_postMessage(**message))

    def who(self, agent: str) -> str:
        return mention(self.team, agent)

    async def channel(self, conversation: Conversation) -> str:
        """Where the chat's card is (or goes): its topic's channel (``slack.topic_channels``), else slack.channel."""
        posted = await self.store.get_ref("slack-channel", conversation.id)
        return posted or self.config.topic_channel(conversation.topic)

    def _card(self, conversation: Conversation, **extra) -> list[dict]:
        return card(conversation, labels=self.labels, who=self.who, window=self.window(conversation), **extra)

    def window(self, conversation: Conversation, now: float | None = None) -> str:
        """The card's line on the channel's reply window (WhatsApp's 24 hours): open until when, or closed."""
        rule = self.services.conversations.windows.get(conversation.channel)
        if rule is None or conversation.last_customer_at is None or conversation.state is State.CLOSED:
            return ""
        closes = conversation.last_customer_at + rule.seconds
        label = clip(self.labels.get(conversation.channel, conversation.channel), 50)
        fallback = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(closes))
        when = f"<!date^{int(closes)}^{{date_short_pretty}} at {{time}}|{fallback}>"
        if (time.time() if now is None else now) < closes:
            return f":hourglass_flowing_sand: {label} reply window open until {when}"
        then = ("replies go out as " + rule.template) if rule.template else \
            "replies are refused until the customer writes again"
        return f":no_entry: {label} reply window closed at {when}: {then}"

    async def _sound(self, conversation: Conversation) -> bool:
        return not conversation.assignee or await self.store.sound(conversation.id, conversation.assignee)

    async def _card_blocks(self, conversation: Conversation, ts: str | None) -> list[dict]:
        store, permalink = self.store, ""
        if ts and conversation.state is State.ACTIVE:
            permalink = await store.get_ref("slack-permalink", conversation.id) or ""
            if not permalink:
                try:
                    reply = await _call(self.web.chat_getPermalink(channel=await self.channel(conversation),
                                                                   message_ts=ts))
                    permalink = reply.get("permalink", "")
                    await store.set_ref("slack-permalink", conversation.id, permalink)
                except DeliveryError as exc:
                    # The card matters more than its link: show it without A, try again next update.
                    log.warning("no permalink for chat %s: %s", conversation.id, exc)
        reassigned = await store.get_ref("slack-reassigned", conversation.id)
        return self._card(conversation, sound=await self._sound(conversation), permalink=permalink,
                          reassigned=tuple(reassigned.split(" ", 1)) if reassigned else None)

    async def post_card(self, conversation: Conversation) -> str:
        store, config = self.store, self.config
        if conversation.id in self._cards:
            return self._cards[conversation.id]
        ts = await store.get_ref("slack-card", conversation.id)
        if ts:
            if await store.get_ref("slack-caught-up", conversation.id):
                self._cards[conversation.id] = ts
                return ts  # a repeated job must not post a second card
        else:
            channel = await self.channel(conversation)
            reply = await self.post(
                channel=channel, text=card_text(conversation, self.labels),
                blocks=await self._card_blocks(conversation, None),
            )
            ts = reply["ts"]
            # Posted: remember it even through a Redis outage, or a retry would post a second card.
            await store.through_outage(lambda: store.set_ref("slack-card", conversation.id, ts))
            await store.through_outage(lambda: store.set_ref("slack-thread", f"{channel}:{ts}", conversation.id))
            if channel != config.channel:
                await store.through_outage(lambda: store.set_ref("slack-channel", conversation.id, channel))
        await self._catch_up(conversation, ts)
        await store.through_outage(lambda: store.set_ref("slack-caught-up", conversation.id, "1"))
        self._cards[conversation.id] = ts
        return ts

    async def _catch_up(self, conversation: Conversation, ts: str) -> None:
        """Under a new card, the thread gets the first message whole when the card cannot show it all (too
        long, or with files), and after a head start the customer's messages that only the DM saw.
        Safe to repeat: each message's posted parts are remembered."""
        head_start = bool(await self.store.get_ref("slack-dm", conversation.id))
        relayed = 1  # the first message is the card's query
        for entry in await self.store.history(conversation.id):
            if entry.direction == "in":
                first = entry.seq == 1
                if (first and (entry.attachments or not query_fits(conversation))) or (not first and head_start):
                    await self.relay(conversation, entry, await self.channel(conversation), ts)
            if head_start or entry.seq == 1:
                relayed = max(relayed, entry.seq)
        await self.store.through_outage(lambda: self.store.set_ref("slack-relayed", conversation.id, str(relayed)))

    async def post_parts(self, channel: str, thread_ts: str, text: str, progress: str = "",
                         more_follow: bool = False) -> None:
        """Post ``text`` in the thread, whole: split into ordered posts within Slack's limits (3,000 per
        section). With ``progress``, the parts already posted are remembered (of a long text, or of any text
        when ``more_follow``: files uploaded after it), so a retry never reposts one."""
        parts = split_for_slack(text, SECTION_LIMIT) or ["(empty message)"]
        # A single post with nothing after it needs no note: its outbox item is acknowledged once it is posted.
        remember = bool(progress) and (len(parts) > 1 or more_follow)
        done = int(await self.store.get_ref("slack-posted", progress) or 0) if remember else 0
        for index in range(done, len(parts)):
            await self.post(channel=channel, thread_ts=thread_ts, text=parts[index])
            if remember:
                await self.store.through_outage(
                    lambda: self.store.set_ref("slack-posted", progress, str(index + 1)))

    async def relay(self, conversation: Conversation, entry: HistoryEntry, channel: str, thread_ts: str,
                    lead: str = "", text: str | None = None) -> None:
        """A customer's message in a thread, whole and in order (its text, then its files)."""
        source = self.services.channels.get(conversation.channel)
        files_follow = bool(entry.attachments) and source is not None and source.fetches_files
        body = text if text is not None else _relayed_text(conversation, entry, files_follow)
        progress = f"{conversation.id}:{entry.seq}:{thread_ts}"
        uploads = files_follow and text is None
        # The text and each file are steps of their own: a failed upload is retried alone.
        await self.post_parts(channel, thread_ts, lead + body, progress, more_follow=uploads)
        if uploads:
            for index, attachment in enumerate(entry.attachments):
                await self.upload(source, attachment, channel, thread_ts, f"{progress}:{index}")

    async def _written_since(self, conversation: Conversation, entry: HistoryEntry) -> list[HistoryEntry]:
        """The customer's text messages right after ``entry`` (up to 20, none with files), when they are
        already stored: the thread is behind (Slack's pace, a backlog), so they go in one post."""
        if entry.attachments or entry.direction != "in":
            return []
        behind = []
        for later in await self.store.messages_after(conversation.id, entry.seq, 20):
            if later.direction != "in" or later.attachments:
                break  # an agent's reply, a note or a file in between keeps its place
            behind.append(later)
        return behind

    async def relay_together(self, conversation: Conversation, entries: list[HistoryEntry], channel: str,
                             thread_ts: str, lead: str = "") -> None:
        """Several consecutive customer messages in one thread post, in order; the later ones' own events
        then find them relayed (``slack-relayed``)."""
        body = "\n".join(_relayed_text(conversation, entry) for entry in entries)
        # Every message it carries is named in the post's metadata: a drainer taking over after a crash
        # before ``slack-relayed`` was written finds the later ones posted too (``already_posted``).
        self.carries = tuple(carried(conversation.id, entry.seq) for entry in entries[1:])
        try:
            await self.post_parts(channel, thread_ts, lead + body, f"{conversation.id}:{entries[0].seq}:{thread_ts}")
        finally:
            self.carries = ()
        last = str(entries[-1].seq)
        await self.store.through_outage(lambda: self.store.set_ref("slack-relayed", conversation.id, last))

    async def upload(self, source, attachment: dict, channel: str, thread_ts: str, progress: str) -> None:
        """One customer file into the thread (Slack's external upload flow, images show inline); a file
        that can never be fetched (over the platform's download limit) becomes a note saying what it was."""
        if await self.store.get_ref("slack-file", progress):
            return  # uploaded before this retry
        kind = str(attachment.get("kind") or "file")
        try:
            got = await source.fetch(attachment)
        except DeliveryError as exc:
            if not exc.permanent:
                raise  # retried by the job, in order
            what = clip(str(attachment.get("name") or kind), 200)
            size = int(attachment.get("size") or 0)
            size_text = f", {size / (1024 * 1024):.1f} MB" if size else ""
            await self.post(
                channel=channel, thread_ts=thread_ts,
                text=f":warning: The customer sent a {clip(kind, 30)} ({what}{size_text}) that could not be "
                     f"brought here: {clip(str(exc), 500)}. Ask them to send it another way.")
            await self.store.through_outage(lambda: self.store.set_ref("slack-file", progress, "refused"))
            return
        reply = await _call(self.web.files_upload_v2(
            channel=channel, thread_ts=thread_ts, file=got.data, filename=got.name[:255] or kind,
            title=got.name[:255] or kind))
        file_id = ((reply.get("file") or {}).get("id") if hasattr(reply, "get") else "") or "uploaded"
        await self.store.through_outage(lambda: self.store.set_ref("slack-file", progress, file_id))

    async def update_card(self, conversation: Conversation) -> None:
        ts = await self.post_card(conversation)
        await _call(self.web.chat_update(
            channel=await self.channel(conversation), ts=ts, text=card_text(conversation, self.labels),
            blocks=await self._card_blocks(conversation, ts),
        ))

    async def thread(self, conversation: Conversation, text: str, blocks: list[dict] | None = None,
                     progress: str = "") -> None:
        ts = await self.post_card(conversation)
        channel = await self.channel(conversation)
        if blocks is None and len(text) > SECTION_LIMIT:
            await self.post_parts(channel, ts, text, progress)
            return
        await self.post(channel=channel, thread_ts=ts, text=text, blocks=blocks)

    async def update_dm(self, conversation: Conversation, status: str) -> None:
        dm = await _dm(self.store, conversation.id)
        if dm is not None:
            await _call(self.web.chat_update(channel=dm[0], ts=dm[1], text=status,
                                             blocks=head_start_dm(conversation, self.labels, status)))

    async def head_start(self, conversation: Conversation) -> bool:
        """DM the returning customer's previous agent with E and F while the core gives them a head start.

        False when there is none (any more), or the agent cannot be reached in
        Slack: then the chat is offered to everyone at once.
        """
        agent = conversation.head_start_for
        if not agent or conversation.state is not State.NEW:
            return False
        user = slack_user(self.team, agent)
        if not user:
            return True  # a web-only agent: their console shows it; the card waits for the offer
        if await _dm(self.store, conversation.id) is None:  # a repeated job must not DM twice
            try:
                reply = await self.post(
                    channel=user, text=f":wave: Your previous customer {customer_name(conversation)} "
                    f"is back: “{clip(conversation.query, 300)}”", blocks=head_start_dm(conversation, self.labels),
                )
            except DeliveryError as exc:
                if not exc.permanent:
                    raise  # retried by the job
                # The agent cannot be reached (deactivated, DMs closed): no head start.
                log.warning("cannot DM %s about returning chat %s: %s", user, conversation.id, exc)
                await self.services.conversations.offer(conversation.id)
                return False
            await self.store.through_outage(
                lambda: self.store.set_ref("slack-dm", conversation.id, f"{reply['channel']}:{reply['ts']}"))
        return True

    async def _escalation_audience(self, conversation: Conversation) -> str:
        """Who an escalation mentions: the topic's team while only it may take the chat, else
        ``slack.agent_group``, else the topic team's users, else everyone here."""
        routes = self.services.conversations.routes
        rule = routes.rule(conversation.topic)
        if rule is not None and conversation.team_only and rule.group:
            return f"<!subteam^{rule.group}>"
        if self.config.agent_group and not (conversation.team_only and rule is not None and rule.agents):
            return f"<!subteam^{self.config.agent_group}>"
        users = [slack_user(self.team, agent) for agent in sorted(await routes.members(conversation.topic))]
        users = [f"<@{user}>" for user in users if user]
        return " ".join(users) if users else "<!here>"

    async def _card_link(self, conversation: Conversation) -> None:
        """Make sure the chat's permalink is known (it is asked for with the active card)."""
        if not await self.store.get_ref("slack-permalink", conversation.id):
            await self._card_blocks(conversation, await self.store.get_ref("slack-card", conversation.id))

    async def already_posted(self, event: AgentEvent) -> bool:
        """Whether Slack already has a message posted for ``event`` (by its metadata id): in the chat's card
        thread, in the head start DM's thread, or (no card known yet) among the channel's messages since the
        event. A card found that way is recorded as posted, so the next event does not post another."""
        store, wanted = self.store, event_id(event)
        # A customer message may have gone out in an earlier message's combined post.
        as_carried = carried(event.conversation_id, event.seq) if event.kind is EventKind.MESSAGE else None
        conversation = await store.get(event.conversation_id)
        if conversation is None:
            return False
        channel = await self.channel(conversation)
        card = await store.get_ref("slack-card", conversation.id)
        places: list[tuple[Callable[..., Awaitable[object]], dict[str, str]]] = [
            (self.web.conversations_replies, {"channel": channel, "ts": card})] if card else [
            (self.web.conversations_history, {"channel": channel, "oldest": f"{event.at - CLOCK_SKEW:.6f}"})]
        dm = await _dm(store, conversation.id)
        if dm is not None:
            places.append((self.web.conversations_replies, {"channel": dm[0], "ts": dm[1]}))
        for method, where in places:
            cursor = ""
            while True:
                try:
                    page = await _call(method(**where, include_all_metadata=True, limit=200, cursor=cursor or None))
                except DeliveryError as exc:
                    if not exc.permanent:
                        raise  # asked again by the drainer's retry
                    # Slack will never show this place (no im:history for the DM, say): nothing found there.
                    log.warning("cannot look for event %s in %s: %s", wanted, where["channel"], exc)
                    break
                for message in page.get("messages") or []:
                    if _posted_for(message) != wanted and (as_carried is None or as_carried not in _carries(message)):
                        continue
                    if not card and where["channel"] == channel and not message.get("thread_ts"):
                        await self._found_card(conversation, channel, message["ts"])
                    return True
                cursor = (page.get("response_metadata") or {}).get("next_cursor") or ""
                if not cursor:
                    break
        return False

    async def _found_card(self, conversation: Conversation, channel: str, ts: str) -> None:
        """Record a card Slack has but the store missed (its worker died before recording it), as post_card does."""
        store = self.store
        await store.through_outage(lambda: store.set_ref("slack-card", conversation.id, ts))
        await store.through_outage(lambda: store.set_ref("slack-thread", f"{channel}:{ts}", conversation.id))
        if channel != self.config.channel:
            await store.through_outage(lambda: store.set_ref("slack-channel", conversation.id, channel))

    async def deliver(self, event: AgentEvent) -> None:
        """Show one outbox event in Slack, by its kind's handler (``HANDLERS``). Raises DeliveryError when
        Slack fails."""
        self.event = event
        conversation = await self.store.get(event.conversation_id)
        if conversation is not None:
            await HANDLERS[event.kind](self, conversation, event)

    # -- one handler per event kind, each given the chat as it is now and the event -------------------

    async def on_created(self, conversation: Conversation, event: AgentEvent) -> None:
        """A new chat: a returning customer's previous agent gets the head start DM; else the card (with the
        first message whole in the thread when it needs it), the previous agent told first."""
        if await self.head_start(conversation):
            return
        previous = slack_user(self.team, conversation.previous_agent) if conversation.previous_agent else ""
        if previous:
            await self._direct(previous, f"chat {conversation.id}",
                               f":wave: Your previous customer *{customer_name(conversation)}* is back: "
                               f"“{clip(conversation.query, 300)}”. The chat card is in "
                               f"<#{await self.channel(conversation)}>.")
        await self.post_card(conversation)

    async def on_message(self, conversation: Conversation, event: AgentEvent) -> None:
        """A customer's message, with those right after it when the thread is behind."""
        entry = await self.store.message(conversation.id, event.seq)
        if not await self._in_head_start(conversation, entry):
            await self._in_thread(conversation, entry, together=True)
            if conversation.channel in self.services.conversations.windows:
                await self.update_card(conversation)  # the message opens the reply window again

    async def on_reopened(self, conversation: Conversation, event: AgentEvent) -> None:
        """A customer's message that made the resolved chat active again."""
        entry = await self.store.message(conversation.id, event.seq)
        if not await self._in_head_start(conversation, entry):
            await self._in_thread(conversation, entry, lead=":arrows_counterclockwise: The customer wrote again, "
                                  "the chat is active again.\n")
            await self.update_card(conversation)

    async def on_rated(self, conversation: Conversation, event: AgentEvent) -> None:
        """The customer's rating, said in the thread instead of their message."""
        entry = await self.store.message(conversation.id, event.seq)
        if not await self._in_head_start(conversation, entry):
            await self._in_thread(conversation, entry,
                                  text=f":star: {customer_name(conversation)} rated this chat {conversation.rating}/5.")
            await self.update_card(conversation)

    async def on_replied(self, conversation: Conversation, event: AgentEvent) -> None:
        """An agent's reply: shown when written in another console, and explained when the customer gets
        the channel's template instead."""
        await self._echo(conversation, event, "to the customer")
        await self._sent_as_template(conversation, event)

    async def on_first_response(self, conversation: Conversation, event: AgentEvent) -> None:
        """The chat's first reply: as any reply, and the card shows its First Response."""
        await self.on_replied(conversation, event)
        await self.update_card(conversation)

    async def on_noted(self, conversation: Conversation, event: AgentEvent) -> None:
        """An agent's private note, shown when written in another console."""
        await self._echo(conversation, event, "private note")

    async def on_accepted(self, conversation: Conversation, event: AgentEvent) -> None:
        await self._card_and_note(conversation, f"{self.who(event.by)} accepted this chat. Replies in this thread "
                                  "go to the customer.")
        link = await self.store.get_ref("slack-permalink", conversation.id)
        await self.update_dm(conversation, f"{self.who(event.by)} accepted this chat"
                             + (f": <{link}|open the thread>." if link else "."))

    async def on_declined(self, conversation: Conversation, event: AgentEvent) -> None:
        await self._card_and_note(conversation, f"{self.who(event.by)} declined this chat.")
        if event.by == conversation.previous_agent:
            await self.update_dm(conversation, f"You declined this chat; it is offered to everyone in "
                                 f"<#{await self.channel(conversation)}>.")

    async def on_left(self, conversation: Conversation, event: AgentEvent) -> None:
        await self._card_and_note(conversation, f"{self.who(event.by)} left this chat; it is back in the Inbox.")

    async def on_resolved(self, conversation: Conversation, event: AgentEvent) -> None:
        await self._card_and_note(conversation, f"{self.who(event.by)} resolved this chat; the customer was asked "
                                  "for a rating.")

    async def on_closed(self, conversation: Conversation, event: AgentEvent) -> None:
        await self._card_and_note(conversation, "This chat is closed.")

    async def on_reassigned(self, conversation: Conversation, event: AgentEvent) -> None:
        """An admin gave the chat to another agent: the card says who did (``slack-reassigned``)."""
        await self.store.set_ref("slack-reassigned", conversation.id, f"{event.by} {event.to}")
        await self._card_and_note(conversation, f"{self.who(event.by)} reassigned this chat to {self.who(event.to)}. "
                                  f"Replies in this thread from {self.who(event.to)} go to the customer.")

    async def on_offered(self, conversation: Conversation, event: AgentEvent) -> None:
        """A returning customer's head start is over: the card for everyone, and the DM says so."""
        await self.post_card(conversation)
        if conversation.previous_agent not in conversation.declined_by:
            await self.update_dm(conversation, ":hourglass: The head start is over: this chat is offered to "
                                 f"everyone in <#{await self.channel(conversation)}>.")

    async def on_transferred(self, conversation: Conversation, event: AgentEvent) -> None:
        """The assignee handed the chat on (with a note, ``seq``): said in the thread; the receiver gets a DM."""
        note = await self.store.message(conversation.id, event.seq) if event.seq else None
        said = f"\n>{note.text[:2000]}" if note is not None else ""
        await self.update_card(conversation)
        await self.thread(conversation, f":arrow_right: {self.who(event.by)} transferred this chat to "
                          f"{self.who(event.to)}. Replies in this thread from {self.who(event.to)} go to the "
                          f"customer.{said}")
        receiver = slack_user(self.team, event.to)
        if receiver:
            await self._card_link(conversation)
            link = await self.store.get_ref("slack-permalink", conversation.id)
            where = f"<{link}|open the thread>" if link else f"the card is in <#{await self.channel(conversation)}>"
            await self._direct(receiver, f"transferred chat {conversation.id}",
                               f":arrow_right: {self.who(event.by)} transferred the chat with "
                               f"*{conversation.name or conversation.customer_id}* to you ({where}).{said}")

    async def on_opened_to_all(self, conversation: Conversation, event: AgentEvent) -> None:
        await self.update_card(conversation)
        await self.thread(conversation, f"Nobody on the {conversation.topic} team accepted this chat in time: "
                          "it is offered to everyone now.")

    async def on_escalated(self, conversation: Conversation, event: AgentEvent) -> None:
        """The first-response SLA is missed: whoever should take the chat is mentioned, and the card marked."""
        if conversation.state is not State.NEW:
            return
        waited = format_seconds(max(0.0, event.at - conversation.created_at))
        await self.update_card(conversation)
        await self.thread(conversation, f":rotating_light: {await self._escalation_audience(conversation)} this chat "
                          f"has waited {waited} without Accept (escalation {conversation.escalations}).")

    async def on_delivery_failed(self, conversation: Conversation, event: AgentEvent) -> None:
        """A message the customer did not get: said in the thread, with Retry."""
        entry = await self.store.message(conversation.id, event.seq)
        if entry is not None:
            text = f":warning: Not delivered to the customer: “{_quoted(entry.text)}” ({clip(entry.detail, 500)})"
            await self.thread(conversation, text, _failed_blocks(conversation, text, event.seq))

    async def on_redelivering(self, conversation: Conversation, event: AgentEvent) -> None:
        entry = await self.store.message(conversation.id, event.seq)
        if entry is not None:
            await self.thread(conversation,
                              f":repeat: {self.who(event.by)} is sending “{_quoted(entry.text)}” again.")

    async def on_sound(self, conversation: Conversation, event: AgentEvent) -> None:
        """The assignee's sound, which the card shows."""
        await self.update_card(conversation)

    async def on_control(self, conversation: Conversation, event: AgentEvent) -> None:
        """A control with no event of its own (``event.operation``): the card, and who used it in the thread."""
        operation = OPERATIONS.get(event.operation)
        label = operation.label if operation is not None and operation.label else event.operation or "a control"
        await self._card_and_note(conversation, f"{self.who(event.by)} used {escape(label)} on this chat.")

    # -- what the handlers share ----------------------------------------------------------------------

    async def _card_and_note(self, conversation: Conversation, note: str) -> None:
        await self.update_card(conversation)
        await self.thread(conversation, note)

    async def _direct(self, user: str, about: str, text: str) -> None:
        """A DM; one Slack refuses for good (the user deactivated, DMs closed) is only logged."""
        try:
            await self.post(channel=user, text=text)
        except DeliveryError as exc:
            if not exc.permanent:
                raise
            log.warning("cannot DM %s about %s: %s", user, about, exc)

    async def _in_head_start(self, conversation: Conversation, entry: HistoryEntry | None) -> bool:
        """Whether the chat is still in its head start (a DM, no card yet); then the customer's message goes
        to the DM's thread, where only the previous agent sees it."""
        dm = await _dm(self.store, conversation.id)
        if entry is None or dm is None or await self.store.get_ref("slack-card", conversation.id) is not None:
            return False
        await self.relay(conversation, entry, dm[0], dm[1])
        return True

    async def _in_thread(self, conversation: Conversation, entry: HistoryEntry | None, lead: str = "",
                         text: str | None = None, together: bool = False) -> None:
        """A customer's message in the card's thread, unless it is there already (relayed with an earlier
        one, or by the card's catch-up): ``lead`` before it, or ``text`` instead of it; ``together``: with
        the messages right after it when the thread is behind."""
        if entry is None or entry.seq <= int(await self.store.get_ref("slack-relayed", conversation.id) or 0):
            return
        if text is None and conversation.state is State.ACTIVE and conversation.assignee \
                and await self._sound(conversation):
            # The mention is what makes Slack notify the assignee with sound.
            lead = f"{self.who(conversation.assignee)} {lead}"
        thread = await self.post_card(conversation)
        behind = await self._written_since(conversation, entry) if together else []
        if behind:
            await self.relay_together(conversation, [entry, *behind], await self.channel(conversation), thread, lead)
        else:
            await self.relay(conversation, entry, await self.channel(conversation), thread, lead, text)

    async def _echo(self, conversation: Conversation, event: AgentEvent, what: str) -> None:
        """What an agent wrote in another console, in the thread too: chatgate text as Slack mrkdwn (escaped:
        it pings no one), whole."""
        if event.console == "slack":
            return
        entry = await self.store.message(conversation.id, event.seq)
        if entry is not None:
            await self.thread(conversation, f"{self.who(event.by)} ({what}): {from_chatgate(entry.text)}",
                              progress=f"{conversation.id}:{event.seq}:console")

    async def _sent_as_template(self, conversation: Conversation, event: AgentEvent) -> None:
        """The agent is told when their reply went out as the channel's template, outside its reply window."""
        entry = await self.store.message(conversation.id, event.seq)
        rule = self.services.conversations.windows.get(conversation.channel)
        if entry is not None and entry.template and rule is not None:
            await self.thread(conversation, f":envelope_with_arrow: {self.who(event.by)}: the customer last wrote "
                              f"more than {_hours(rule.seconds)} ago, outside "
                              f"{clip(self.labels.get(conversation.channel, conversation.channel), 50)}'s "
                              f"reply window, so they get {rule.template} instead of this message. "
                              "Once they answer, the window opens again: send your message then.")


# What each outbox event does in Slack: one handler per kind, as slack-bolt has one listener per action.
HANDLERS: dict[EventKind, Callable[[Delivery, Conversation, AgentEvent], Awaitable[None]]] = {
    EventKind.CREATED: Delivery.on_created,
    EventKind.MESSAGE: Delivery.on_message,
    EventKind.REOPENED: Delivery.on_reopened,
    EventKind.RATED: Delivery.on_rated,
    EventKind.ACCEPTED: Delivery.on_accepted,
    EventKind.DECLINED: Delivery.on_declined,
    EventKind.LEFT: Delivery.on_left,
    EventKind.RESOLVED: Delivery.on_resolved,
    EventKind.CLOSED: Delivery.on_closed,
    EventKind.REASSIGNED: Delivery.on_reassigned,
    EventKind.OFFERED: Delivery.on_offered,
    EventKind.SOUND: Delivery.on_sound,
    EventKind.REPLIED: Delivery.on_replied,
    EventKind.FIRST_RESPONSE: Delivery.on_first_response,
    EventKind.NOTED: Delivery.on_noted,
    EventKind.DELIVERY_FAILED: Delivery.on_delivery_failed,
    EventKind.REDELIVERING: Delivery.on_redelivering,
    EventKind.TRANSFERRED: Delivery.on_transferred,
    EventKind.OPENED_TO_ALL: Delivery.on_opened_to_all,
    EventKind.ESCALATED: Delivery.on_escalated,
    EventKind.CHANGED: Delivery.on_control,
}


def _hours(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} hours"
    return f"{seconds:g} seconds"


def _relayed_text(conversation: Conversation, entry: HistoryEntry, files_follow: bool = False) -> str:
    return f"*{customer_name(conversation)}:* {_customer_text(conversation, entry, files_follow)}"


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


async def deliver_event(console: "SlackConsole", event: AgentEvent, services: "Services") -> None:
    """Show one outbox event in Slack. Raises DeliveryError when Slack fails."""
    await Delivery(console, services).deliver(event)


async def already_delivered(console: "SlackConsole", event: AgentEvent, services: "Services") -> bool:
    """Whether Slack already shows a message posted for ``event`` (see ``Delivery.already_posted``)."""
    return await Delivery(console, services).already_posted(event)
