"""Every operation of the state machine, declared once.

A declaration says which states an operation applies to, who may run it, the
arguments a console gives it, the refusal codes it can answer and the events it
emits. The machine (``machine/<name>.lua``) runs it from this declaration: the
common checks (the chat exists, is in one of the states, the agent is its
assignee) are done once for every operation from ``states`` and ``who``, and an
operation that refuses with a code or emits an event it does not declare is an
error. ``available`` answers, from the same declarations, which controls an
agent may use on a conversation; consoles render that and nothing else.

The state table is in ``docs/conversations.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Iterable, Mapping

from .events import EventKind
from .message import Conversation, State
from .team import Role

__all__ = ["Who", "Argument", "Operation", "OPERATIONS", "register", "controls", "available", "machine_source"]


class Who(str, Enum):
    """Who may run an operation."""

    AGENT = "agent"  # any agent, on a chat offered to them
    ASSIGNEE = "assignee"  # the agent who accepted the chat
    ADMIN = "admin"
    MACHINE = "machine"  # customers, timers and workers: no console shows it

    @property
    def role(self) -> Role:
        """The least team role it needs."""
        return Role.ADMIN if self is Who.ADMIN else Role.AGENT if self is not Who.MACHINE else Role.NONE


@dataclass(frozen=True)
class Argument:
    """What a console gives an operation besides the chat and the agent."""

    name: str
    kind: type = str  # str, bool, int or list
    label: str = ""  # how a form asks for it
    required: bool = True

    def accepts(self, value: object) -> bool:
        """Whether ``value`` is of this argument's kind (a count is never true or false)."""
        return isinstance(value, self.kind) and not (self.kind is int and isinstance(value, bool))

    @property
    def kind_words(self) -> str:
        """The kind as an error message says it."""
        return _KIND_WORDS.get(self.kind, self.kind.__name__)


_KIND_WORDS = {str: "text", bool: "true or false", int: "a whole number", list: "a list"}


_OPEN = frozenset({State.ACTIVE, State.RESOLVED})
_ACTIVE = frozenset({State.ACTIVE})
_NEW = frozenset({State.NEW})
# Refused by the machine's common checks, before the operation's own.
_CHAT = ("unknown", "closed")
_ASSIGNEE = (*_CHAT, "not_accepted", "not_assignee")


@dataclass(frozen=True)
class Operation:
    name: str  # the machine's operation (``machine/<name>.lua``)
    who: Who
    events: tuple[EventKind, ...] = ()  # what the consoles are told when it succeeds
    refusals: tuple[str, ...] = ()  # every code it can be refused with, besides its role's
    states: frozenset[State] = frozenset()  # the chat's states it applies to (none: not on one chat)
    # The refusal for a state outside ``states`` (closed is always "closed"); the operation decides the others.
    wrong_state: Mapping[State, str] = field(default_factory=dict)
    arguments: tuple[Argument, ...] = ()  # what a console gives it, besides the chat and the agent
    label: str = ""  # what the agents call it (the seed's letter and name where it has one)
    script: Path | None = None  # its Lua file, when not one of the machine's own

    @property
    def is_control(self) -> bool:
        """An agent's control, shown by the consoles."""
        return self.who is not Who.MACHINE

    @property
    def asks_nothing(self) -> bool:
        """Whether the chat and the agent are all it needs (a button, a reaction)."""
        return all(not argument.required for argument in self.arguments)

    def lua(self) -> str:
        if self.script is not None:
            return self.script.read_text()
        return resources.files(__package__).joinpath("machine", f"{self.name}.lua").read_text()


def _text(name: str, label: str) -> Argument:
    return Argument(name, str, label)


# A client's id for one send, so that a repeated request (a double click, a retry) is stored once.
_ONCE = Argument("platform_id", str, "Idempotency key", required=False)


OPERATIONS: dict[str, Operation] = {op.name: op for op in (
    # The agents' controls.
    Operation("accept", Who.AGENT, (EventKind.ACCEPTED,),
              (*_CHAT, "already_yours", "taken", "head_start", "not_in_team", "at_capacity"),
              _NEW, label="E Accept"),
    Operation("reject", Who.AGENT, (EventKind.DECLINED, EventKind.OFFERED),
              (*_CHAT, "not_new", "already_declined"), _NEW,
              {State.ACTIVE: "not_new", State.RESOLVED: "not_new"}, label="F Reject"),
    Operation("resolve", Who.ASSIGNEE, (EventKind.RESOLVED,), (*_ASSIGNEE, "already_resolved"), _ACTIVE,
              {State.RESOLVED: "already_resolved"}, label="D Mark as resolved"),
    Operation("leave", Who.ASSIGNEE, (EventKind.LEFT, EventKind.CLOSED), _ASSIGNEE, _OPEN, label="C Leave"),
    Operation("sound", Who.ASSIGNEE, (EventKind.SOUND,),
              (*_ASSIGNEE, "not_active", "sound_already_on", "sound_already_off"), _ACTIVE,
              {State.RESOLVED: "not_active"}, (Argument("on", bool, "Sound on"),), label="B Speaker"),
    Operation("reply", Who.ASSIGNEE, (EventKind.REPLIED, EventKind.FIRST_RESPONSE),
              (*_ASSIGNEE, "resolved", "opted_out", "empty", "outside_window", "attachment"), _ACTIVE,
              {State.RESOLVED: "resolved"}, (_text("text", "Message"), _ONCE,
                                             Argument("attachments", list, "Files", required=False)),
              label="Reply"),
    Operation("note", Who.ASSIGNEE, (EventKind.NOTED,), (*_ASSIGNEE, "empty"), _OPEN,
              arguments=(_text("text", "Note"), _ONCE), label="Private note"),
    Operation("redeliver", Who.ASSIGNEE, (EventKind.REDELIVERING,), (*_ASSIGNEE, "not_failed", "opted_out"), _OPEN,
              arguments=(Argument("seq", int, "Message"),), label="Retry"),
    Operation("reassign", Who.ADMIN, (EventKind.REASSIGNED,),
              (*_CHAT, "reassign_new", "already_assigned", "not_agent_target", "no_target", "at_capacity"), _OPEN,
              {State.NEW: "reassign_new"}, (Argument("to", str, "Give to"),), label="Reassign"),
    Operation("transfer", Who.ASSIGNEE, (EventKind.TRANSFERRED,),
              (*_ASSIGNEE, "not_active", "transfer_self", "not_agent_target", "no_target", "at_capacity"), _ACTIVE,
              {State.RESOLVED: "not_active"},
              (Argument("to", str, "Hand to"), Argument("note", str, "Note for them", required=False)),
              label="Transfer"),
    # What customers, timers, workers and admins' settings do.
    Operation("ingest", Who.MACHINE, (EventKind.CREATED, EventKind.MESSAGE, EventKind.REOPENED, EventKind.RATED)),
    Operation("delivery", Who.MACHINE, (EventKind.DELIVERY_FAILED,), ("unknown",)),
    Operation("auto_close", Who.MACHINE, (EventKind.CLOSED,), ("unknown", "stale")),
    Operation("offer", Who.MACHINE, (EventKind.OFFERED,), ("unknown", "stale")),
    Operation("open_to_all", Who.MACHINE, (EventKind.OPENED_TO_ALL,), ("unknown", "stale")),
    Operation("escalate", Who.MACHINE, (EventKind.ESCALATED,), ("unknown", "stale")),
    Operation("welcome", Who.MACHINE, (), ("unknown", "stale")),
    Operation("queue_positions", Who.MACHINE),
    Operation("set_auto_close", Who.MACHINE),
    Operation("opt_out", Who.MACHINE),
    Operation("schedule", Who.MACHINE),
    Operation("requeue", Who.MACHINE),
    Operation("queue_customer", Who.MACHINE),
    Operation("rebuild_indexes", Who.MACHINE),
    Operation("fire", Who.MACHINE, (), ("stale",)),
)}


_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def register(operation: Operation) -> None:
    """Declare one more operation (with its own ``script``) before the store loads the machine."""
    for name in (operation.name, *operation.refusals, *(e.value for e in operation.events),
                 *operation.wrong_state.values()):
        if not _NAME.match(name):
            raise ValueError(f"operation {operation.name!r}: {name!r} is not a lower-case identifier")
    OPERATIONS[operation.name] = operation


def controls() -> list[Operation]:
    """The agents' controls, in the order the consoles show them."""
    return [op for op in OPERATIONS.values() if op.is_control]


def available(conversation: Conversation, agent: str | None = None, role: Role = Role.AGENT,
              ops: Iterable[Operation] | None = None) -> list[Operation]:
    """The controls ``agent`` (with ``role``) may use on ``conversation`` now, as its declarations say.

    With no ``agent``, those of the chat's state whoever looks (a card everyone shares); the
    machine still refuses whoever may not.
    """
    shown = []
    for op in controls() if ops is None else ops:
        if conversation.state not in op.states or not op.is_control:
            continue
        if agent is not None and not _may(op, conversation, agent, role):
            continue
        shown.append(op)
    return shown


def _may(op: Operation, c: Conversation, agent: str, role: Role) -> bool:
    if role < op.who.role:
        return False
    if op.who is Who.ASSIGNEE:
        return c.assignee == agent
    if op.who is Who.AGENT and c.state is State.NEW:
        # Offered to them: not declined by them, and nobody else's head start.
        return agent not in c.declined_by and c.head_start_for in ("", agent)
    return True


def _declarations() -> str:
    """The declarations as Lua: ``DECLARED(name)`` builds only the table of the operation asked for (a
    call runs one or two), sets as ",a,b," strings (names, codes and events are plain identifiers:
    ``register`` checks)."""

    def listed(names: Iterable[str]) -> str:
        return "'," + ",".join(names) + ",'"

    lines = ["local function DECLARED(name)"]
    for op in OPERATIONS.values():
        wrong = ", ".join(f"{state.value} = '{code}'" for state, code in op.wrong_state.items())
        lines.append(
            f"  if name == '{op.name}' then return {{who = '{op.who.value}', "
            f"states = {listed(s.value for s in op.states)}, wrong_state = {{{wrong}}}, "
            f"refusals = {listed((*op.refusals, 'not_agent', 'not_admin'))}, "
            f"events = {listed(e.value for e in op.events)}}} end")
    return "\n".join([*lines, "end", ""])


def machine_source() -> str:
    """The whole machine script: jobs, common helpers, every declared operation's file, the dispatcher.

    A call defines only the operation it runs (all of them for ``fire``, which runs timers'), so the
    script's cost does not grow with the number of operations.
    """
    machine = resources.files(__package__).joinpath("machine")
    parts = [resources.files(__package__).joinpath("jobs.lua").read_text(),
             _declarations(),
             machine.joinpath("common.lua").read_text()]
    parts += [f"if ARGV[1] == '{op.name}' or ARGV[1] == 'fire' then\n{op.lua()}end\n"
              for op in OPERATIONS.values()]
    parts.append(machine.joinpath("dispatch.lua").read_text())
    return "\n".join(parts)
