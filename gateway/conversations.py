"""What agents, customers and timers do to a conversation.

Each operation checks the acting agent's role (``Team``) and runs one atomic step
of the state machine (``machine/``), which queues the delivery of whatever the
step put into an outbox and starts the timers it needs (``jobs.py``) in the same
call. Every console and every worker calls these and nothing else to change a
conversation. The operations, their rules and refusals are declared in
``operations.py`` and checked by the machine; this works out the arguments the
machine needs (settings, capacity, reply windows) and checks what only the
arguments say (an empty message, a file the platform cannot take).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Sequence

from .config import ConversationConfig, RoutingConfig, SavedReplyConfig
from .hours import BusinessHours
from .message import NO_FILES, Attachment, InboundMessage, OutboundMessage, Refused, ReplyWindow
from .operations import OPERATIONS, Operation, available
from .refusals import refusal_text
from .replies import SavedReplies, SavedReply, fill, search
from .routing import Routing
from .jobs import Timer
from .store import AutoClose, Store
from .team import Role, Team
from .topics import Topics

__all__ = ["Conversations", "Received", "BadArguments"]

# Platform message ids are remembered this long for deduplication.
SEEN_TTL = 7 * 24 * 3600


class BadArguments(ValueError):
    """A control was given arguments its declaration does not take (the message says which)."""


@dataclass(frozen=True)
class Received:
    """What an inbound message did: ``created``, ``message``, ``reopened``, ``rated`` or ``duplicate``."""

    event: str
    conversation_id: str
    seq: int = 0


class Conversations:
    """The operations of the conversation state machine."""

    # Timers the state machine runs itself (``fire``); the workers run the others (``workers/timers.py``).
    MACHINE_TIMERS = frozenset({"auto_close", "offer", "open_to_all", "escalate", "ready"})

    def __init__(self, store: Store, config: ConversationConfig, topics: Topics,
                 team: Team, consoles: Sequence[str] = (), routing: RoutingConfig = RoutingConfig(),
                 clock: Callable[[], float] = time.time, topic_rules: tuple = (),
                 windows: Mapping[str, ReplyWindow] | None = None,
                 attachment_checks: Mapping[str, Callable[[str, dict, str], str]] | None = None,
                 hours: BusinessHours = BusinessHours(), saved_replies: Sequence[SavedReplyConfig] = ()):
        self.store = store
        self.config = config
        self.routing = routing
        self.topics = topics
        self.team = team
        # Each of these consoles gets every conversation event in an outbox of its own.
        self.consoles = ",".join(consoles)
        # The time of every transition (tests script a day with their own clock).
        self.clock = clock
        self.hours = hours
        self.saved = SavedReplies(store.redis, store.key("saved_replies"), saved_replies)
        # Topic teams and capacity.
        self.routes = Routing(tuple(topic_rules), team, routing)
        # Channel name -> its reply window (WhatsApp's 24 hours), declared by the channels.
        self.windows = dict(windows or {})
        # Channel name -> its check of an agent's file (channel, attachment, customer id): why the
        # platform cannot take it, or "".
        self.attachment_checks = dict(attachment_checks or {})
        # What the machine needs besides a control's own arguments, by control; the others take theirs as given.
        self._prepare: dict[str, Callable[..., Awaitable[dict[str, str]]]] = {
            "accept": self._prepare_accept, "resolve": self._prepare_resolve, "sound": self._prepare_sound,
            "reply": self._prepare_reply, "note": self._prepare_note, "redeliver": self._prepare_redeliver,
            "reassign": self._prepare_reassign, "transfer": self._prepare_transfer,
        }

    async def _run(self, op: str, **arguments: str) -> dict:
        reply = await self.store.run(op, self.clock(), self.consoles, arguments)
        if "refused" in reply:
            raise Refused(reply["refused"], reply.get("detail", ""),
                          _reason(reply["refused"], reply.get("detail", ""), self.team))
        return reply

    # -- the agents' controls ----------------------------------------------------

    async def controls(self, conversation_id: str, agent: str) -> list[Operation]:
        """The controls ``agent`` may use on the chat now (none when it does not exist), as declared."""
        conversation = await self.store.get(conversation_id)
        if conversation is None:
            return []
        return available(conversation, agent, await self.team.role(agent))

    async def perform(self, name: str, conversation_id: str, agent: str, via: str = "", **given: Any) -> dict:
        """Run the control ``name`` as ``agent`` with the arguments its declaration names (checked by
        kind: ``BadArguments`` says which is wrong); the machine's reply. Refusals raise ``Refused``."""
        operation = OPERATIONS.get(name)
        if operation is None or not operation.is_control:
            raise BadArguments(f"There is no control {name!r}.")
        arguments = _checked(operation, given)
        try:
            if await self.team.role(agent) < operation.who.role:
                raise Refused("not_admin" if operation.who.role is Role.ADMIN else "not_agent", agent)
            prepare = self._prepare.get(name)
            machine = await prepare(conversation_id, agent, **arguments) if prepare else \
                {key: str(value) for key, value in arguments.items()}
            return await self._run(name, conversation=conversation_id, agent=agent, via=via, **machine)
        except Refused as refused:
            if refused.code not in (*operation.refusals, "not_agent", "not_admin"):
                raise RuntimeError(f"{name} was refused with {refused.code!r}, which it does not declare") from None
            raise

    async def may(self, name: str, conversation_id: str, agent: str) -> None:
        """Refuse now what the control ``name`` would refuse this agent on this chat whatever its
        arguments (before a console opens a form for it); the machine's own checks, changing nothing."""
        operation = OPERATIONS[name]
        if await self.team.role(agent) < operation.who.role:
            raise Refused("not_admin" if operation.who.role is Role.ADMIN else "not_agent", agent)
        await self._run("may", operation=name, conversation=conversation_id, agent=agent)

    async def accept(self, conversation_id: str, agent: str, via: str = "") -> None:
        """E Accept: the agent takes a new chat; exactly one agent wins a race."""
        await self.perform("accept", conversation_id, agent, via)

    async def reject(self, conversation_id: str, agent: str, via: str = "") -> None:
        """F Reject: the agent declines a new chat; it stays in the Inbox for the others."""
        await self.perform("reject", conversation_id, agent, via)

    async def reply(self, conversation_id: str, agent: str, text: str, platform_id: str = "", via: str = "",
                    attachments: Sequence[Attachment] = ()) -> bool:
        """The assignee's message to the customer; False if ``platform_id`` was seen before.

        ``text`` is chatgate text (``gateway/text.py``); each channel renders it. ``attachments``
        are files the agent sent with it; one the customer's platform cannot take is refused
        (``attachment``) before anything is stored or sent.
        """
        reply = await self.perform("reply", conversation_id, agent, via, text=text, platform_id=platform_id,
                                   attachments=list(attachments))
        return reply["event"] != "duplicate"

    async def resolve(self, conversation_id: str, agent: str, via: str = "") -> None:
        """D Mark as resolved: the assignee marks the chat resolved; the customer is asked for a rating."""
        await self.perform("resolve", conversation_id, agent, via)

    async def leave(self, conversation_id: str, agent: str, via: str = "") -> str:
        """C Leave: active chats go back to the Inbox, resolved ones close. Returns the new state."""
        reply = await self.perform("leave", conversation_id, agent, via)
        return "closed" if reply["event"] == "closed" else "new"

    async def set_sound(self, conversation_id: str, agent: str, on: bool, via: str = "") -> None:
        """B Speaker: the assignee turns the sound on each customer message in this chat on or off."""
        await self.perform("sound", conversation_id, agent, via, on=on)

    async def note(self, conversation_id: str, agent: str, text: str, platform_id: str = "", via: str = "") -> bool:
        """A private note of the assignee, kept in the history and never sent; False if seen before."""
        reply = await self.perform("note", conversation_id, agent, via, text=text, platform_id=platform_id)
        return reply["event"] != "duplicate"

    async def redeliver(self, conversation_id: str, seq: int, agent: str, via: str = "") -> None:
        """Retry a message to the customer that finally failed (the assignee's Retry button)."""
        await self.perform("redeliver", conversation_id, agent, via, seq=seq)

    async def reassign(self, conversation_id: str, admin: str, to_agent: str, via: str = "") -> str:
        """An admin gives an accepted chat to another agent; returns the previous assignee."""
        reply = await self.perform("reassign", conversation_id, admin, via, to=to_agent)
        return reply["previous"]

    async def transfer(self, conversation_id: str, agent: str, to_agent: str, note: str = "", via: str = "") -> None:
        """The assignee hands an active chat to another agent (who must have room), with a note."""
        await self.perform("transfer", conversation_id, agent, via, to=to_agent, note=note)

    # What each control needs besides its arguments.

    async def _prepare_accept(self, conversation_id: str, agent: str) -> dict[str, str]:
        return {"serves": await self._may_take(conversation_id, agent),
                "capacity": str(self.routes.capacity(agent)),
                # The waiting customers behind it moved up: they are told their place.
                "tell_queue": "1" if self.routing.queue_position else "0"}

    async def _may_take(self, conversation_id: str, agent: str) -> str:
        """'1' when ``agent`` is on the team of the chat's topic, or the topic's team has no one."""
        conversation = await self.store.get(conversation_id)
        if conversation is None or not conversation.team_only:
            return "1"
        if await self.routes.serves(agent, conversation.topic):
            return "1"
        return "0" if await self.routes.team_has_someone(conversation.topic) else "1"

    async def _prepare_resolve(self, conversation_id: str, agent: str) -> dict[str, str]:
        setting = await self.auto_close_setting()
        return {"question": self.config.rating_question,
                "delay": repr(self._auto_close_delay(setting.after)) if setting.enabled else ""}

    async def _prepare_sound(self, conversation_id: str, agent: str, on: bool) -> dict[str, str]:
        return {"on": "1" if on else "0"}

    async def _prepare_reply(self, conversation_id: str, agent: str, text: str, platform_id: str = "",
                             attachments: Sequence[Attachment] = ()) -> dict[str, str]:
        if not text.strip() and not attachments:
            raise Refused("empty")
        conversation = await self.store.get(conversation_id)
        window = self.windows.get(conversation.channel) if conversation is not None else None
        files = [a.to_dict() for a in attachments]
        if conversation is not None and files and conversation.state.value != "closed":
            check = self.attachment_checks.get(conversation.channel)
            for attachment in files:
                # No check: no enabled channel serves this chat's channel, so nothing can send the file.
                reason = check(conversation.channel, attachment, conversation.customer_id) if check else NO_FILES
                if reason:
                    raise Refused("attachment", reason=f"Not sent: {attachment.get('name') or 'the file'}: {reason}.")
        return {"text": text, "platform_id": platform_id, "seen_ttl": str(SEEN_TTL),
                "window": repr(float(window.seconds)) if window else "",
                "template": "1" if window and window.template else "0",
                "files": json.dumps(files, ensure_ascii=False) if files else "[]"}

    async def _prepare_note(self, conversation_id: str, agent: str, text: str, platform_id: str = "") -> dict[str, str]:
        if not text.strip():
            raise Refused("empty")
        return {"text": text, "platform_id": platform_id, "seen_ttl": str(SEEN_TTL)}

    async def _prepare_redeliver(self, conversation_id: str, agent: str, seq: int) -> dict[str, str]:
        return {"seq": str(seq)}

    async def _target(self, to: str) -> str:
        """The agent a chat is given to, who must be on the team."""
        if not to:
            raise Refused("no_target")
        if not await self.team.is_agent(to):
            raise Refused("not_agent_target", to, _reason("not_agent_target", to, self.team))
        return to

    async def _prepare_reassign(self, conversation_id: str, agent: str, to: str) -> dict[str, str]:
        target = await self._target(to)
        return {"target": target, "capacity": str(self.routes.capacity(target))}

    async def _prepare_transfer(self, conversation_id: str, agent: str, to: str, note: str = "") -> dict[str, str]:
        target = await self._target(to)
        return {"target": target, "note": note.strip(), "capacity": str(self.routes.capacity(target))}

    # -- customers ---------------------------------------------------------------

    async def receive(self, message: InboundMessage) -> Received:
        """Store a customer's message: new conversation, relay, reopen or rating."""
        attachments = "[]"
        if message.attachments:
            attachments = json.dumps([a.to_dict() for a in message.attachments], ensure_ascii=False)
        routing = self.routing
        topic = self.topics.tag(message.text)
        reply = await self._run(
            "ingest", channel=message.channel, customer=message.customer_id, platform_id=message.platform_id,
            text=message.text, name=message.name, phone=message.phone, location=message.location,
            attachments=attachments, topic=topic, rating_thanks=self.config.rating_thanks,
            seen_ttl=str(SEEN_TTL), head_start="1" if routing.returning_head_start > 0 else "0",
            team_only="1" if self.routes.routed(topic) else "0",
            # The timers a new chat starts; the SLA counts open time.
            head_start_after=repr(float(routing.returning_head_start)),
            fallback_after=repr(float(routing.topic_fallback_after)),
            sla_after=repr(self.sla_delay(routing.sla_first_response)) if routing.sla_first_response > 0 else "0",
        )
        if reply["event"] == "duplicate":
            return Received("duplicate", reply["id"])
        event, conversation_id = reply["event"], reply["id"]
        if event == "created":
            await self._welcome(conversation_id, message.channel)
        if reply.get("head_start_for") and not await self.team.is_agent(reply["head_start_for"]):
            await self.offer(conversation_id)  # their previous agent left the team: everyone gets it at once
        return Received(event, conversation_id, int(reply["seq"]))

    async def notify_customer(self, channel: str, customer_id: str, text: str) -> None:
        """Queue an automatic message outside any conversation (the greeting)."""
        await self.store.queue_to_customer(OutboundMessage(channel, customer_id, text))

    async def set_opt_out(self, channel: str, customer_id: str, opted_out: bool) -> bool:
        """The customer opted out of (or back into) messages on ``channel``; whether they were out before.

        While out, the assignee's replies are refused at once (``Refused("opted_out")``).
        """
        reply = await self._run("opt_out", channel=channel, customer=customer_id, out="1" if opted_out else "0")
        return reply["was_out"]

    async def record_delivery(self, conversation_id: str, seq: int, status: str, detail: str = "") -> None:
        """Mark an outbound message sent or failed in the history (failures reach the agents)."""
        if not conversation_id or not seq:
            return
        await self._run("delivery", conversation=conversation_id, seq=str(seq), status=status, detail=detail)

    # -- timers --------------------------------------------------------------------

    async def _timer(self, op: str, **arguments: str) -> bool:
        """A timer's operation; False when it no longer applies (refused)."""
        try:
            await self._run(op, **arguments)
        except Refused:
            return False
        return True

    async def offer(self, conversation_id: str) -> bool:
        """End a returning customer's head start: offer the chat to everyone if still new."""
        return await self._timer("offer", conversation=conversation_id)

    async def open_to_all(self, conversation_id: str) -> bool:
        """The topic team's wait is over: offer the chat to everyone if still new."""
        return await self._timer("open_to_all", conversation=conversation_id)

    async def auto_close(self, conversation_id: str, token: str) -> bool:
        """Close a resolved chat if it was not reopened since ``token`` was issued."""
        return await self._timer("auto_close", conversation=conversation_id, token=token)

    async def escalate(self, conversation_id: str) -> int:
        """First-response SLA: escalate a chat still waiting for Accept and schedule the next
        escalation; the chat's escalation count, 0 when it no longer waits."""
        try:
            reply = await self._run("escalate", conversation=conversation_id, next=self.next_escalation())
        except Refused:
            return 0
        return int(reply["count"])

    def next_escalation(self) -> str:
        """Seconds from now to the next SLA check ("0": none); open time with ``business_hours.pause_sla``."""
        return repr(self.sla_delay(self.routing.sla_repeat)) if self.routing.sla_repeat > 0 else "0"

    async def fire(self, timers: Sequence[Timer]) -> int:
        """Run due timers of the state machine (``MACHINE_TIMERS``) in one round trip; how many acted.

        Each is taken off the timer set by the call that runs it, so two workers never run one twice.
        """
        if not timers:
            return 0
        now = self.clock()
        replies = await self.store.run_many([
            ("fire", now, self.consoles,
             {"member": t.member, "extra": self.next_escalation() if t.kind == "escalate" else ""})
            for t in timers])
        return sum(1 for reply in replies if "refused" not in reply)

    async def ready_later(self, outbox: str, delay: float) -> None:
        """Put an outbox back on the ready list in ``delay`` seconds (its platform's pacing asked to wait):
        under a second at once (the next drainer waits for the token itself), else by a timer."""
        if delay < 1.0:
            await self._run("requeue", outbox=outbox)
        else:
            await self._run("schedule", kind="ready", subject=outbox, arg="", delay=repr(float(delay)))

    async def console_task_later(self, console: str, task: str, args: Sequence[str] = (), delay: float = 0.0) -> None:
        """Run ``Console.run_task`` of ``console`` in a worker ``delay`` seconds from now (an earlier
        request for the same task and arguments stands)."""
        await self._run("schedule", kind="console_task", subject=console, arg=json.dumps([task, *args]),
                        delay=repr(float(delay)))

    # -- settings --------------------------------------------------------------------

    async def auto_close_setting(self) -> AutoClose:
        """Auto-close as it applies now: the admin's switch, or the config until someone flips it."""
        return await self.store.auto_close_setting(AutoClose(self.config.auto_close, self.config.auto_close_after))

    async def set_auto_close(self, enabled: bool, after: float, by: str) -> int:
        """The admin's auto-close switch, effective at once; the number of resolved chats it affected.

        Off cancels every pending auto-close; on schedules one for every resolved
        chat, ``after`` seconds from now (not from when it was resolved, so no
        chat vanishes the moment the switch is flipped).
        """
        if not await self.team.is_admin(by):
            raise Refused("not_admin", by)
        if after <= 0:
            raise Refused("bad_delay")
        reply = await self._run("set_auto_close", enabled="1" if enabled else "0", after=repr(float(after)),
                                delay=repr(self._auto_close_delay(after)))
        return int(reply["count"])

    # -- business hours, queue position, saved replies ------------------------------

    def _auto_close_delay(self, after: float) -> float:
        """The auto-close delay from now: wall time, or open time with ``business_hours.pause_auto_close``."""
        return self.hours.delay(self.clock(), after, self.hours.pause_auto_close)

    def sla_delay(self, seconds: float) -> float:
        """An SLA clock of ``seconds`` from now: open time with ``business_hours.pause_sla`` (the default)."""
        return self.hours.delay(self.clock(), seconds, self.hours.pause_sla)

    async def _welcome(self, conversation_id: str, channel: str) -> None:
        """A new chat's automatic messages (away message, place in the queue), queued by the machine."""
        now = self.clock()
        away = self.hours.away_text(channel, now) if not self.hours.is_open(now) else ""
        template = await self._position_template(now) if self.routing.queue_position else ""
        if not away and not template:
            return
        try:
            await self._run("welcome", conversation=conversation_id, away=away, template=template)
        except Refused:
            pass  # welcomed before (a platform's retry)

    async def _position_template(self, now: float) -> str:
        """The queue-position message with today's typical wait filled in (``{position}`` left)."""
        median = (await self.store.figures(now)).median_first_response
        if median is None:
            return self.routing.queue_position_message_no_wait
        return self.routing.queue_position_message.replace("{wait}", typical_wait(median))

    async def tell_queue_positions(self) -> int:
        """Tell each waiting customer who moved up by ``routing.queue_position_step`` places their new
        place (one atomic pass over the Inbox); the number told."""
        if not self.routing.queue_position:
            return 0
        reply = await self._run("queue_positions", step=str(self.routing.queue_position_step),
                                template=await self._position_template(self.clock()))
        return len(reply["told"])

    async def saved_replies(self, query: str = "") -> list[SavedReply]:
        """The team's saved replies matching ``query`` (every word, in name or text), best first."""
        return search(await self.saved.all(), query)

    async def save_reply(self, name: str, text: str, by: str) -> SavedReply:
        """An admin adds or edits a saved reply (it overrides the config's of the same name)."""
        if not await self.team.is_admin(by):
            raise Refused("not_admin", by)
        return await self.saved.save(name, text, by, self.clock())

    async def delete_reply(self, name: str, by: str) -> None:
        """An admin deletes a saved reply (a configured one stays deleted until saved again)."""
        if not await self.team.is_admin(by):
            raise Refused("not_admin", by)
        await self.saved.delete(name, by, self.clock())

    async def fill_saved_reply(self, conversation_id: str, agent: str, name: str) -> str:
        """The saved reply ``name`` as ``agent`` would send it in this chat (variables filled in)."""
        saved = await self.saved.get(name)
        if saved is None:
            raise Refused("no_saved_reply", reason=f"There is no saved reply called \u201c{name}\u201d.")
        conversation = await self.store.get(conversation_id)
        customer = (conversation.name if conversation else "") or "there"
        return fill(saved.text, customer, self.team.name(agent))

    async def send_saved_reply(self, conversation_id: str, agent: str, name: str, platform_id: str = "",
                               via: str = "") -> bool:
        """Send the saved reply ``name`` as ``agent``: a ``reply``, with the same checks and refusals."""
        await self.may("reply", conversation_id, agent)
        text = await self.fill_saved_reply(conversation_id, agent, name)
        return await self.reply(conversation_id, agent, text, platform_id=platform_id, via=via)


def _checked(operation: Operation, given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` as the control's declared arguments: each known, of its kind, the required ones there."""
    declared = {argument.name: argument for argument in operation.arguments}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise BadArguments(f"{operation.name} takes no {', '.join(unknown)}.")
    for argument in declared.values():
        if argument.name not in given:
            if argument.required:
                raise BadArguments(f"{operation.name} needs {argument.name}.")
            continue
        if not argument.accepts(given[argument.name]):
            raise BadArguments(f"{argument.name} must be {argument.kind_words}.")
    return dict(given)


def typical_wait(seconds: float) -> str:
    """A wait in words: "under a minute", "about 4 minutes", "about 1 h 20 min"."""
    minutes = int(round(seconds / 60))
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"about {minutes} minute{'s' if minutes != 1 else ''}"
    hours, rest = divmod(minutes, 60)
    return f"about {hours} h {rest:02d} min" if rest else f"about {hours} h"


def _reason(code: str, detail: str, team: Team) -> str:
    return refusal_text(code, team.name(detail) if detail else "")
