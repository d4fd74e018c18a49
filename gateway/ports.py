"""The seams between the core and the edges: channels, consoles and the workers.

A **channel** is a customer platform (``channels/``): it mounts its webhooks,
turns them into ``InboundMessage`` for ``Conversations.receive`` and sends
``OutboundMessage``. A **console** is where agents work (``agent_console/``):
it mounts its routes, maps its identities to agent ids, calls the core's
operations and shows each conversation's events, read from its own outbox.
The state machine itself hands outboxes and timers to the workers (``jobs.py``).

The core calls these interfaces and imports no implementation of them; the
composition root (``chatgate/compose.py``) builds the concrete ones from the config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Protocol, Sequence

if TYPE_CHECKING:  # annotations only: the core never needs aiohttp's app to run an operation
    from aiohttp import web

    from .config import Config, ConfigReader
    from .events import AgentEvent
    from .message import OutboundMessage, Refused
    from .services import Services
    from .store import Store

__all__ = ["DeliveryError", "Runtime", "Channel", "Console", "Plugin"]


class DeliveryError(Exception):
    """Sending failed. ``permanent`` errors are not retried; ``retry_after`` is the platform's wish;
    ``opted_out`` says the platform knows the customer unsubscribed (chatgate should remember it)."""

    def __init__(self, message: str, permanent: bool = False, retry_after: float | None = None,
                 opted_out: bool = False):
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.opted_out = opted_out


@dataclass(frozen=True)
class Runtime:
    """What a channel or console is built with: the whole config and this process's store."""

    config: "Config"
    store: "Store"
    # ``gateway.media.Media``: opens files agents send and signs their short-lived URLs.
    media: Any = None


class Plugin(Protocol):
    """What channels and consoles share: a config section of their own, read and checked by them."""

    # The TOML table it reads, e.g. "telegram"; the section object must have ``enabled``.
    section: ClassVar[str]

    @staticmethod
    def load_config(reader: "ConfigReader") -> Any:
        """Read and check the section (problems go to ``reader.problem``); a frozen config object."""


class Channel(Plugin, Protocol):
    """A customer platform."""

    # Channel name -> label, e.g. {"sms": "SMS", "whatsapp": "WhatsApp"}: the names it serves.
    labels: ClassVar[Mapping[str, str]]

    def __init__(self, config: Any, runtime: Runtime) -> None: ...

    def mount(self, app: "web.Application", services: "Services") -> None:
        """Add its web routes (verify, parse, then ``services.conversations``)."""

    async def send(self, message: "OutboundMessage") -> str:
        """Send one message to a customer; the platform's message id. Raises ``DeliveryError``."""

    # Optional: ``reply_window(channel) -> ReplyWindow | None``, the channel's rule for free-form
    # replies (WhatsApp's 24 hours); the core refuses or marks replies outside it.
    # Optional: ``async fetch(attachment: dict) -> File``, a customer's file (``Attachment.to_dict()``)
    # downloaded for a console; raises ``DeliveryError`` (permanent when it can never be fetched:
    # over the platform's download limit, say).


class Console(Plugin, Protocol):
    """An agent console."""

    # Its outbox name: every conversation has one outbox per enabled console.
    name: ClassVar[str]

    def __init__(self, config: Any, runtime: Runtime) -> None: ...

    def mount(self, app: "web.Application", services: "Services") -> None:
        """Add its web routes; actions call ``services.conversations``."""

    async def deliver(self, event: "AgentEvent", services: "Services") -> None:
        """Show one event (in order, per conversation). Raises ``DeliveryError`` to be retried."""

    async def delivered(self, conversation_id: str, events: Sequence["AgentEvent"], services: "Services") -> None:
        """After a batch of events was shown (a place for summary views); must not raise."""

    async def run_task(self, task: str, args: Sequence[str], services: "Services") -> None:
        """A job the console scheduled for itself through ``Conversations.console_task_later``."""

    def refusal(self, refused: "Refused", services: "Services") -> str:
        """A refusal of the core in the console's own words."""
