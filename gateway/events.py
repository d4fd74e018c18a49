"""What the consoles are told about a conversation: one typed event per outbox item.

The state machine appends an event to each enabled console's outbox of the
conversation (``machine/common.lua``, ``to_agents``); a console's worker parses it here,
once, and never looks at the JSON again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum

__all__ = ["EventKind", "AgentEvent"]


class EventKind(str, Enum):
    """Why a conversation changed; see the state table in docs/conversations.md."""

    CREATED = "created"  # a customer wrote with no open conversation
    MESSAGE = "message"  # a customer message on an open conversation
    REOPENED = "reopened"  # a customer message reopened a resolved chat
    RATED = "rated"  # the customer's 1-5 answer
    ACCEPTED = "accepted"
    DECLINED = "declined"
    LEFT = "left"  # an active chat went back to the Inbox
    RESOLVED = "resolved"
    CLOSED = "closed"
    REASSIGNED = "reassigned"
    OFFERED = "offered"  # a returning customer's head start ended: offered to everyone
    SOUND = "sound"
    REPLIED = "replied"  # an agent's message to the customer (from any console)
    FIRST_RESPONSE = "first_response"  # the same, for the chat's first reply (sets First Response)
    NOTED = "noted"  # an agent's private note
    DELIVERY_FAILED = "delivery_failed"
    REDELIVERING = "redelivering"
    TRANSFERRED = "transferred"  # the assignee handed the chat to another agent (``to``), with a note (``seq``)
    OPENED_TO_ALL = "opened_to_all"  # the topic's team did not accept in time: offered to everyone
    ESCALATED = "escalated"  # first-response SLA missed: waiting too long without Accept
    # A control with no event of its own changed the chat (``operation`` names it): consoles refresh it.
    CHANGED = "changed"


# An outbox item's short field names (``to_agents`` in machine/common.lua) and the long ones of earlier releases.
_LONG_NAMES = {"c": "conversation_id", "e": "event", "s": "seq", "b": "by", "o": "to", "t": "at", "v": "console",
               "p": "operation"}


@dataclass(frozen=True)
class AgentEvent:
    """One item of a console's outbox."""

    conversation_id: str
    kind: EventKind
    seq: int = 0  # the history entry it is about, if any
    by: str = ""  # the agent who acted, if any
    to: str = ""  # the agent a chat was given to (reassign)
    at: float = 0.0
    console: str = ""  # the console the action came from ("" for customers and timers)
    operation: str = ""  # the control that changed the chat, for ``CHANGED``

    @classmethod
    def from_json(cls, raw: str | bytes) -> "AgentEvent":
        data = json.loads(raw)
        if "c" not in data:  # an item queued by an older chatgate, with long names
            data = {short: data.get(long) for short, long in _LONG_NAMES.items()}
        return cls(
            conversation_id=str(data["c"]),
            kind=EventKind(data["e"]),
            seq=int(data.get("s") or 0),
            by=str(data.get("b") or ""),
            to=str(data.get("o") or ""),
            at=float(data.get("t") or 0.0),
            console=str(data.get("v") or ""),
            operation=str(data.get("p") or ""),
        )
