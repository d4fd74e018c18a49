"""What agents, customers and timers do to a conversation.

Each operation runs one atomic step of the state machine (``machine.lua``) and
then asks the dispatcher to deliver whatever the step put into an outbox. The
Slack app, the web console and the workers call these and nothing else to
change a conversation.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from .config import ConversationConfig
from .message import InboundMessage, OutboundMessage, Refused
from .store import AutoClose, Store
from .topics import Topics

__all__ = ["Conversations", "Dispatch", "Received", "refusal_text"]

# Platform message ids are remembered this long for deduplication.
SEEN_TTL = 7 * 24 * 3600


class Dispatch(Protocol):
    """Where the core hands work to the workers (see ``workers/dispatch.py``)."""

    async def to_customer(self, channel: str, customer_id: str) -> None: ...

    async def to_agents(self, conversation_id: str) -> None: ...

    async def auto_close(self, conversation_id: str, token: str, delay: float) -> None: ...

    async def cancel_auto_close(self, conversation_id: str) -> None: ...

    async def auto_close_many(self, pending: tuple[tuple[str, str], ...], delay: float) -> None: ...

    async def enqueue(self, agents: tuple[str, ...] = (), customers: tuple[tuple[str, str], ...] = (),
                      cancel_auto_close: tuple[str, ...] = ()) -> None:
        """All of the above for several outboxes at once, in one round trip."""


@dataclass(frozen=True)
class Received:
    """What an inbound message did: ``created``, ``message``, ``reopened``, ``rated`` or ``duplicate``."""

    event: str
    conversation_id: str
    seq: int = 0


def refusal_text(code: str, detail: str) -> str:
    """A plain sentence for an agent whose action the state machine refused."""
    who = f"<@{detail}>" if detail else "another agent"
    return {
        "unknown": "This chat does not exist (any more).",
        "closed": "This chat is closed; nothing can change it now.",
        "not_accepted": "Accept this chat first: its controls work only after accept.",
        "not_assignee": f"Only the agent who accepted this chat ({who}) can do that.",
        "already_yours": "You have already accepted this chat.",
        "taken": f"Too late: {who} has already accepted this chat.",
        "not_new": f"This chat is no longer waiting: {who} has accepted it.",
        "already_declined": "You have already declined this chat.",
        "already_resolved": "This chat is already resolved.",
        "resolved": "This chat is resolved, so your message was not sent. "
        "It reopens when the customer writes again.",
        "stale": "This chat is no longer resolved.",
        "not_failed": "That message is not failed any more (it was sent, or a retry is under way).",
        "not_admin": "Only a chatgate admin can change that; ask one of the admins.",
        "bad_delay": "The auto-close delay must be more than zero seconds.",
        "not_active": "That works only while the chat is active.",
        "sound_already_on": "Sound is already on for you in this chat.",
        "sound_already_off": "Sound is already off for you in this chat.",
        "reassign_new": "This chat is waiting in the Inbox; only an accepted chat can be reassigned.",
        "already_assigned": f"This chat is already assigned to {who}.",
        "opted_out": "The customer has opted out of messages on this channel (for SMS: they texted STOP), "
        "so your message was not sent. It can be sent once they opt back in (for SMS: they text START).",
    }.get(code, f"Refused ({code}).")


class Conversations:
    """The operations of the conversation state machine."""

    def __init__(self, store: Store, dispatch: Dispatch, config: ConversationConfig, topics: Topics,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.dispatch = dispatch
        self.config = config
        self.topics = topics
        # The time of every transition (tests script a day with their own clock).
        self.clock = clock

    async def _run(self, op: str, *args: str) -> list[str]:
        reply = await self.store.run(op, self.clock(), *args)
        if reply[0] == "refused":
            raise Refused(reply[1], refusal_text(reply[1], reply[2]))
        return reply

    async def receive(self, message: InboundMessage) -> Received:
        """Store a customer's message: new conversation, relay, reopen or rating."""
        attachments = "[]"
        if message.attachments:
            attachments = json.dumps(
                [{"kind": a.kind, "ref": a.ref, "content_type": a.content_type, "name": a.name}
                 for a in message.attachments],
                ensure_ascii=False,
            )
        reply = await self._run(
            "ingest", message.channel, message.customer_id, message.platform_id,
            message.text, message.name, message.phone, message.location, attachments,
            self.topics.tag(message.text), self.config.rating_thanks, str(SEEN_TTL),
        )
        if reply[0] == "duplicate":
            # The platform retried, perhaps because our first answer never reached
            # it after the message was stored: make sure its delivery is queued.
            if reply[1]:
                await self.dispatch.to_agents(reply[1])
            return Received("duplicate", reply[1])
        event, conversation_id, seq, thanked = reply
        await self.dispatch.enqueue(
            agents=(conversation_id,),
            customers=((message.channel, message.customer_id),) if thanked == "1" else (),
            cancel_auto_close=(conversation_id,) if event == "reopened" else (),
        )
        return Received(event, conversation_id, int(seq))

    async def accept(self, conversation_id: str, agent: str) -> None:
        """E: the agent takes a new chat; exactly one agent wins a race."""
        await self._run("accept", conversation_id, agent)
        await self.dispatch.to_agents(conversation_id)

    async def reject(self, conversation_id: str, agent: str) -> None:
        """F: the agent declines a new chat; it stays in the Inbox for the others."""
        await self._run("reject", conversation_id, agent)
        await self.dispatch.to_agents(conversation_id)

    async def reply(self, conversation_id: str, agent: str, text: str, platform_id: str = "") -> bool:
        """The assignee's message to the customer; False if ``platform_id`` was seen before."""
        reply = await self._run("reply", conversation_id, agent, text, platform_id, str(SEEN_TTL))
        if reply[0] == "duplicate":
            return False
        conversation = await self.store.get(conversation_id)
        await self.dispatch.to_customer(conversation.channel, conversation.customer_id)
        if reply[3] == "1":
            await self.dispatch.to_agents(conversation_id)
        return True

    async def resolve(self, conversation_id: str, agent: str) -> None:
        """D: the assignee marks the chat resolved; the customer is asked for a rating."""
        reply = await self._run("resolve", conversation_id, agent, self.config.rating_question)
        conversation = await self.store.get(conversation_id)
        await self.dispatch.to_customer(conversation.channel, conversation.customer_id)
        await self.dispatch.to_agents(conversation_id)
        setting = await self.auto_close_setting()
        if setting.enabled:
            await self.dispatch.auto_close(conversation_id, reply[2], setting.after)

    async def leave(self, conversation_id: str, agent: str) -> str:
        """C: active chats go back to the Inbox, resolved ones close. Returns the new state."""
        reply = await self._run("leave", conversation_id, agent)
        await self.dispatch.to_agents(conversation_id)
        if reply[0] == "closed":
            await self.dispatch.cancel_auto_close(conversation_id)
            return "closed"
        return "new"

    async def set_sound(self, conversation_id: str, agent: str, on: bool) -> None:
        """B: the assignee turns the mention on each customer message in this chat on or off."""
        await self._run("sound", conversation_id, agent, "1" if on else "0")
        await self.dispatch.to_agents(conversation_id)

    async def note(self, conversation_id: str, agent: str, text: str, platform_id: str = "") -> bool:
        """A private note of the assignee, kept in the history and never sent; False if seen before."""
        reply = await self._run("note", conversation_id, agent, text, platform_id, str(SEEN_TTL))
        return reply[0] != "duplicate"

    async def reassign(self, conversation_id: str, admin: str, to_agent: str) -> str:
        """An admin gives an accepted chat to another agent; returns the previous assignee.

        Whether ``admin`` is an admin and ``to_agent`` an agent is the console's
        check (it knows the team); the state machine checks the chat.
        """
        reply = await self._run("reassign", conversation_id, admin, to_agent)
        await self.dispatch.to_agents(conversation_id)
        return reply[2]

    async def offer(self, conversation_id: str) -> bool:
        """End a returning customer's head start: offer the chat to everyone if still new."""
        try:
            await self._run("offer", conversation_id)
        except Refused:
            return False
        await self.dispatch.to_agents(conversation_id)
        return True

    async def auto_close_setting(self) -> AutoClose:
        """Auto-close as it applies now: the admin's switch, or the config until someone flips it."""
        return await self.store.auto_close_setting(AutoClose(self.config.auto_close, self.config.auto_close_after))

    async def set_auto_close(self, enabled: bool, after: float, by: str, is_admin: bool) -> int:
        """The admin's auto-close switch, effective at once; the number of resolved chats it affected.

        Off cancels every pending auto-close; on schedules one for every resolved
        chat, ``after`` seconds from now (not from when it was resolved, so no
        chat vanishes the moment the switch is flipped). Whether ``by`` is an
        admin is the console's check (it knows the team).
        """
        if not is_admin:
            raise Refused("not_admin", refusal_text("not_admin", by))
        if after <= 0:
            raise Refused("bad_delay", refusal_text("bad_delay", ""))
        reply = await self._run("set_auto_close", "1" if enabled else "0", repr(float(after)))
        pending = list(zip(reply[1::2], reply[2::2]))
        if enabled:
            await self.dispatch.auto_close_many(tuple(pending), after)
        elif pending:
            await self.dispatch.enqueue(cancel_auto_close=tuple(c for c, _ in pending))
        return len(pending)

    async def auto_close(self, conversation_id: str, token: str) -> bool:
        """Close a resolved chat if it was not reopened since ``token`` was issued."""
        try:
            await self._run("auto_close", conversation_id, token)
        except Refused:
            return False
        await self.dispatch.to_agents(conversation_id)
        return True

    async def notify_customer(self, channel: str, customer_id: str, text: str) -> None:
        """Queue an automatic message outside any conversation (the greeting)."""
        await self.store.queue_to_customer(OutboundMessage(channel, customer_id, text))
        await self.dispatch.to_customer(channel, customer_id)

    async def set_opt_out(self, channel: str, customer_id: str, opted_out: bool) -> bool:
        """The customer opted out of (or back into) messages on ``channel``; whether they were out before.

        While out, the assignee's replies are refused at once (``Refused("opted_out")``).
        """
        reply = await self._run("opt_out", channel, customer_id, "1" if opted_out else "0")
        return reply[1] == "1"

    async def redeliver(self, conversation_id: str, seq: int, agent: str) -> None:
        """Retry a message to the customer that finally failed (the assignee's Retry button)."""
        await self._run("redeliver", conversation_id, agent, str(seq))
        conversation = await self.store.get(conversation_id)
        await self.dispatch.enqueue(agents=(conversation_id,),
                                    customers=((conversation.channel, conversation.customer_id),))

    async def record_delivery(self, conversation_id: str, seq: int, status: str, detail: str = "") -> None:
        """Mark an outbound message sent or failed in the history (failures reach the agents)."""
        if not conversation_id or not seq:
            return
        await self._run("delivery", conversation_id, str(seq), status, detail)
        if status == "failed":
            await self.dispatch.to_agents(conversation_id)
