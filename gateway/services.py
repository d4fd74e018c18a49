"""Everything an operation needs in one process (or one job), built by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .config import Config
from .conversations import Conversations
from .store import Store
from .team import Team

__all__ = ["Services"]


@dataclass(frozen=True)
class Services:
    """The core wired to Redis, the workers and the enabled channels and consoles (``chatgate/compose.py``)."""

    config: Config
    redis_url: str
    store: Store
    conversations: Conversations
    team: Team
    # Channel name ("sms") -> the ``gateway.ports.Channel`` sending to it; one may serve several names.
    channels: Mapping[str, Any] = field(default_factory=dict)
    # Console name -> its ``gateway.ports.Console``.
    consoles: Mapping[str, Any] = field(default_factory=dict)
    # ``gateway.media.Media``: files agents send (``GET /media/<token>``).
    media: Any = None

    # Channel name -> label ("whatsapp" -> "WhatsApp") of every known channel, enabled or not:
    # chats from a channel switched off since still show its label.
    channel_labels: Mapping[str, str] = field(default_factory=dict)

    async def close(self) -> None:
        """Close the channels' and consoles' connections, then Redis."""
        for part in {id(p): p for p in [*self.channels.values(), *self.consoles.values()]}.values():
            await part.aclose()
        await self.store.redis.aclose()
