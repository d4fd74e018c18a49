"""Connects the core to Redis and the workers: one ``Services`` per process (or per job)."""

from __future__ import annotations

from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

from .config import Config
from .conversations import Conversations
from .store import Store
from .topics import Topics

__all__ = ["Services", "connect"]


@dataclass(frozen=True)
class Services:
    """Everything an operation needs, built once from the config."""

    config: Config
    redis_url: str
    store: Store
    conversations: Conversations

    async def close(self) -> None:
        await self.store.redis.aclose()


def connect(config: Config, redis_url: str) -> Services:
    """Build the store, the dispatcher and the conversation operations for ``redis_url``."""
    from workers.dispatch import RQDispatch  # the workers import the core, not the reverse at load

    store = Store(aioredis.from_url(redis_url, health_check_interval=30), config.redis.key_prefix)
    dispatch = RQDispatch(redis.Redis.from_url(redis_url), config.delivery)
    conversations = Conversations(store, dispatch, config.conversation, Topics.compile(config.topics))
    return Services(config=config, redis_url=redis_url, store=store, conversations=conversations)
