"""The seams between the core and the edges: channels, consoles and the workers.

A **channel** is a customer platform (``channels/``): it mounts its webhooks,
turns them into ``InboundMessage`` for ``Conversations.receive`` and sends
``OutboundMessage``. A **console** is where agents work (``agent_console/``):
it mounts its routes, maps its identities to agent ids, calls the core's
operations and shows each conversation's events, read from its own outbox.
The state machine itself hands outboxes and timers to the workers (``jobs.py``).

Both are base classes: a plugin overrides what it must (``load_config``,
``mount``, ``send`` or ``deliver``) and whichever optional capability it has;
every other capability has a default here, so the core calls it without asking
first. The core calls these interfaces and imports no implementation of them;
the composition root (``chatgate/compose.py``) builds the concrete ones from the config.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Mapping, Sequence, TypeVar

from .message import NO_FILES
from .refs import Refs
from .team import Role

if TYPE_CHECKING:  # annotations only: the core never needs aiohttp's app to run an operation
    from aiohttp import web

    from .config import Config, ConfigReader
    from .events import AgentEvent
    from .message import File, OutboundMessage, Refused, ReplyWindow
    from .services import Services
    from .store import Store

__all__ = ["DeliveryError", "Runtime", "Plugin", "Channel", "Console"]

log = logging.getLogger(__name__)

# The frozen object a plugin's ``load_config`` returns for its own table.
ConfigT = TypeVar("ConfigT")


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


class Plugin(ABC, Generic[ConfigT]):
    """What channels and consoles share: a config section of their own, read and checked by them."""

    # The TOML table it reads, e.g. "telegram"; the section object must have ``enabled``.
    section: ClassVar[str]

    def __init__(self, config: ConfigT, runtime: Runtime) -> None:
        self.config = config
        self.runtime = runtime

    @staticmethod
    @abstractmethod
    def load_config(reader: "ConfigReader", /) -> Any:
        """Read and check the section (problems go to ``reader.problem``); a frozen config object."""

    @abstractmethod
    def mount(self, app: "web.Application", services: "Services") -> None:
        """Add its web routes; what they do goes through ``services.conversations``."""

    @staticmethod
    def refs(config: Any, /) -> Refs:
        """What it keeps about a conversation with ``Store.set_ref``, and how retention forgets it when
        the conversation leaves Redis (``gateway/refs.py``). Nothing by default."""
        return Refs()

    async def open_file(self, attachment: dict) -> "File":
        """The bytes of a file shared here (``attachment["source"]`` names this plugin), for the media
        links other platforms fetch (``gateway/media.py``). Only a plugin holding files opens them."""
        raise DeliveryError(f"{self.section} cannot open files", permanent=True)

    async def aclose(self) -> None:
        """Close its connections to the platform (the process is stopping). Nothing to close by default."""


class Channel(Plugin[ConfigT]):
    """A customer platform."""

    # Channel name -> label, e.g. {"sms": "SMS", "whatsapp": "WhatsApp"}: the names it serves.
    labels: ClassVar[Mapping[str, str]]
    # Whether ``fetch`` can download the customers' files (consoles then show them, else only mention them).
    fetches_files: ClassVar[bool] = False

    @abstractmethod
    async def send(self, message: "OutboundMessage") -> str:
        """Send one message to a customer; the platform's message id. Raises ``DeliveryError``."""

    async def fetch(self, attachment: dict) -> "File":
        """A customer's file (``Attachment.to_dict()``) downloaded for a console. Raises ``DeliveryError``,
        permanent when it can never be fetched (over the platform's download limit, say). A channel
        that can sets ``fetches_files``."""
        raise DeliveryError(f"{self.section} cannot fetch the customers' files", permanent=True)

    def reply_window(self, channel: str) -> "ReplyWindow | None":
        """The channel's rule for free-form replies (WhatsApp's 24 hours): the core refuses or marks
        replies outside it. None: agents may reply at any time."""
        return None

    def check_attachment(self, channel: str, attachment: dict, customer_id: str = "") -> str:
        """Why the platform cannot send this file of an agent's (``Attachment.to_dict()``) to the
        customer, or "": the reply is refused before anything is stored or sent."""
        return NO_FILES


class Console(Plugin[ConfigT]):
    """An agent console."""

    # Its outbox name: every conversation has one outbox per enabled console.
    name: ClassVar[str]

    @abstractmethod
    async def deliver(self, event: "AgentEvent", services: "Services") -> None:
        """Show one event (in order, per conversation). Raises ``DeliveryError`` to be retried."""

    async def already_delivered(self, event: "AgentEvent", services: "Services") -> bool:
        """Whether the console already shows ``event``: asked by a drainer that took over an outbox whose
        previous drainer died mid-send, so True acknowledges the event without showing it twice. False
        (show it again) when the console cannot tell."""
        return False

    async def delivered(self, conversation_id: str, events: Sequence["AgentEvent"], services: "Services") -> None:
        """After a batch of events was shown (a place for summary views); must not raise."""

    async def run_task(self, task: str, args: Sequence[str], services: "Services") -> None:
        """A job the console scheduled for itself through ``Conversations.console_task_later``. One that
        schedules none has none to run: an unknown task is logged and dropped."""
        log.warning("%s console: unknown task %r ignored", self.name, task)

    def refusal(self, refused: "Refused", services: "Services") -> str:
        """A refusal of the core in the console's own words; the core's plain sentence by default."""
        return refused.reason

    @property
    def declares_members(self) -> bool:
        """Whether the console's groups name the team (Slack's agent or admin group). With no
        ``[[agents]]`` and no console declaring members, whoever a console lets in is an agent."""
        return False

    async def role(self, agent_id: str) -> Role:
        """The role the console's own groups grant ``agent_id`` (Slack user groups); ``Role.NONE`` if none."""
        return Role.NONE

    async def group_members(self, group: str) -> frozenset[str]:
        """The agent ids of the members of one of its groups (a topic's ``group``), mapped from its own
        identities; empty when it knows no such group."""
        return frozenset()
