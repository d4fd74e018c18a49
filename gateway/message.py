"""The types the core speaks: a normalized inbound message, an outbound one, a conversation.

Connectors in ``channels/`` turn platform payloads into ``InboundMessage`` and
send ``OutboundMessage``; nothing in the core sees a platform's wire format.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum

from .refusals import refusal_text

__all__ = ["Attachment", "File", "InboundMessage", "OutboundMessage", "Conversation", "State", "Refused", "ReplyWindow",
           "NO_FILES"]


class State(str, Enum):
    NEW = "new"
    ACTIVE = "active"
    RESOLVED = "resolved"
    CLOSED = "closed"


@dataclass(frozen=True)
class Attachment:
    """A file the customer sent: a platform file id or a URL, with its kind."""

    kind: str  # "photo", "document", "image", "audio", "video", "file"
    ref: str  # platform file id or URL
    content_type: str = ""
    name: str = ""
    size: int = 0  # bytes, when the platform says (0: unknown)
    source: str = ""  # for an agent's file: the console (or channel) that can open it (``gateway.media``)

    def to_dict(self) -> dict:
        data = {"kind": self.kind, "ref": self.ref, "content_type": self.content_type, "name": self.name,
                "size": self.size}
        if self.source:
            data["source"] = self.source
        return data


@dataclass(frozen=True)
class File:
    """A file's bytes, fetched for another platform (a customer's photo for the agents, say)."""

    data: bytes
    name: str
    content_type: str = ""


@dataclass(frozen=True)
class InboundMessage:
    """One message from a customer, whatever platform it came from."""

    channel: str  # "telegram", "sms", "whatsapp", "webchat"
    customer_id: str  # the platform's address of the customer (chat id, E.164 number)
    platform_id: str  # the platform's message id, for deduplication
    text: str = ""
    name: str = ""
    phone: str = ""
    location: str = ""
    attachments: tuple[Attachment, ...] = ()

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


@dataclass(frozen=True)
class OutboundMessage:
    """One message to a customer, as queued in their outbox."""

    channel: str
    customer_id: str
    text: str
    conversation_id: str = ""
    seq: int = 0  # position in the conversation's history; 0 for messages outside one
    # Outside the channel's reply window: the channel sends its approved template instead of ``text``.
    template: bool = False
    # Files the agent sent with it (``Attachment.to_dict()`` plus ``source``, which can open them).
    attachments: tuple[dict, ...] = ()

    @classmethod
    def from_json(cls, raw: str | bytes) -> "OutboundMessage":
        data = json.loads(raw)
        return cls(
            channel=data["channel"],
            customer_id=data["customer_id"],
            text=data["text"],
            conversation_id=data.get("conversation_id", ""),
            seq=int(data.get("seq", 0)),
            template=data.get("template") is True,
            attachments=_attachments(data.get("attachments")),
        )


def _attachments(raw) -> tuple[dict, ...]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw or "[]")
        except ValueError:
            return ()
    return tuple(a for a in raw if isinstance(a, dict)) if isinstance(raw, list) else ()


# Why an agent's file is refused on a channel that cannot send files (``Channel.check_attachment``'s default).
NO_FILES = "this channel cannot send files to customers"


@dataclass(frozen=True)
class ReplyWindow:
    """A channel's rule for free-form replies: only within ``seconds`` of the customer's last message
    (WhatsApp: 24 hours). Outside it the channel sends its approved template when it has one
    (``template``, a label for the agents), else the core refuses the reply (``outside_window``)."""

    seconds: float
    template: str = ""


@dataclass(frozen=True)
class Conversation:
    """A conversation as stored, with its profile and metrics."""

    id: str
    channel: str
    customer_id: str
    state: State
    topic: str
    created_at: float
    updated_at: float
    name: str = ""
    phone: str = ""
    location: str = ""
    query: str = ""
    assignee: str = ""
    previous_agent: str = ""
    first_customer_at: float | None = None
    first_response_at: float | None = None
    resolved_at: float | None = None
    closed_at: float | None = None
    messages_in: int = 0
    messages_out: int = 0
    rating: int | None = None
    undelivered: int = 0  # messages to the customer that finally failed and were not retried
    head_start_for: str = ""  # a returning customer's previous agent, who has the chat alone until it is offered
    last_customer_at: float | None = None  # the customer's last message (reply windows count from it)
    declined_by: tuple[str, ...] = field(default=())
    team_only: bool = False  # only the topic's team may accept it (until offered to everyone)
    escalations: int = 0  # first-response SLA escalations
    holders: tuple[dict, ...] = ()  # who held the chat when: {"agent", "from", "to"} (to 0 while held)

    @property
    def first_response(self) -> float | None:
        """Seconds from the first customer message to the first agent reply."""
        if self.first_response_at is None or self.first_customer_at is None:
            return None
        return self.first_response_at - self.first_customer_at

    def duration(self, now: float) -> float:
        """Seconds from creation to close, or to ``now`` while open."""
        end = self.closed_at if self.closed_at is not None else now
        return max(0.0, end - self.created_at)

    @property
    def message_count(self) -> int:
        return self.messages_in + self.messages_out


class Refused(Exception):
    """The core refused an operation: ``code`` says why (see ``gateway.refusals.REFUSALS``),
    ``detail`` names what the code refers to (an agent id, say), ``reason`` is a plain sentence.

    Consoles render ``code`` and ``detail`` in their own words; ``reason`` is the fallback.
    """

    def __init__(self, code: str, detail: str = "", reason: str = ""):
        self.code = code
        self.detail = detail
        self.reason = reason or refusal_text(code, detail)
        super().__init__(self.reason)
