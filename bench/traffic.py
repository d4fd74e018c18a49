"""What several benchmarks do to a deployment: open accepted chats in bulk, and watch the delivery backlog."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Awaitable, Callable

import redis as redis_sync

from chatgate.compose import connect, load_config
from gateway.jobs import QUEUE
from gateway.message import InboundMessage
from tests.support import keys

__all__ = ["Backlog", "accepted_chats"]

# The store's keys under the default prefix (the deployments' own).
KEY = keys()


async def accepted_chats(config_path: Path, redis_url: str, count: int, first_chat: int,
                         then: Callable[..., Awaitable[object]], batch: int = 100) -> None:
    """``count`` new Telegram chats (ids from ``first_chat``), each accepted by the admin, then
    ``then(conversations, n, conversation_id)`` on each; ``batch`` at a time, through the real core."""
    services = connect(load_config(config_path), redis_url)
    try:
        conversations = services.conversations
        for first in range(0, count, batch):
            numbers = range(first, min(count, first + batch))
            received = await asyncio.gather(*(conversations.receive(InboundMessage(
                "telegram", str(first_chat + n), f"bench-{first_chat + n}", "hello", name="Bench")) for n in numbers))
            ids = [r.conversation_id for r in received]
            await asyncio.gather(*(conversations.accept(cid, "admin") for cid in ids))
            await asyncio.gather(*(then(conversations, n, cid) for n, cid in zip(numbers, ids)))
    finally:
        await services.close()


class Backlog(threading.Thread):
    """Samples the delivery backlog every ``every`` seconds: (time.time(), jobs queued, outboxes ready)."""

    def __init__(self, redis_url: str, every: float = 1.0):
        super().__init__(daemon=True)
        self.db = redis_sync.Redis.from_url(redis_url)
        self.every = every
        self.samples: list[tuple[float, int, int]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            with self.db.pipeline(transaction=False) as pipe:
                pipe.llen(f"rq:queue:{QUEUE}")
                pipe.llen(KEY("ready"))
                jobs, ready = pipe.execute()
            self.samples.append((time.time(), jobs, ready))
