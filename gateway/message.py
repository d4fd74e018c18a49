"""The types the core speaks: a normalized inbound message, an outbound one, a conversation.

Connectors in ``channels/`` turn platform payloads into ``InboundMessage`` and
send ``OutboundMessage``; nothing in the core sees a platform's wire format.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum

from .operations import refusal_text

__all__ = ["Attachment", "InboundMessage", "OutboundMessage", "Conversation", "State", "Refused"]


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

    @classmethod
    def from_json(cls, raw: str | bytes) -> "OutboundMessage":
        data = json.loads(raw)
        return cls(
            channel=data["channel"],
            customer_id=data["customer_id"],
            text=data["text"],
            conversation_id=data.get("conversation_id", ""),
            seq=int(data.get("seq", 0)),
        )


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
    declined_by: tuple[str, ...] = field(default=())
    # --- issue 11 routing ---
    team_only: bool = False  # only the topic's team may accept it (until offered to everyone)
    escalations: int = 0  # first-response SLA escalations
    holders: tuple[dict, ...] = ()  # who held the chat when: {"agent", "from", "to"} (to 0 while held)
    # --- end issue 11 routing ---

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
    """The core refused an operation: ``code`` says why (see ``gateway.operations.REFUSALS``),
    ``detail`` names what the code refers to (an agent id, say), ``reason`` is a plain sentence.

    Consoles render ``code`` and ``detail`` in their own words; ``reason`` is the fallback.
    """

    def __init__(self, code: str, detail: str = "", reason: str = ""):
        self.code = code
        self.detail = detail
        self.reason = reason or refusal_text(code, detail)
        super().__init__(self.reason)
