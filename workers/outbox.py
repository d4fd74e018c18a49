"""Draining an outbox in order, by one worker at a time.

Every message to a customer, and every event for the agents' console, is
appended by the state machine to an outbox list. Any number of drain jobs may
run for one outbox on any number of workers; a lock lets exactly one send at a
time, from the head, so order holds. After unlocking, the drainer looks again:
an item pushed while it held the lock (whose own job gave up on the lock) is
never stranded.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from gateway.store import Store

__all__ = ["drain"]

LOCK_TTL = 300.0


async def drain(store: Store, outbox: str, send: Callable[[bytes], Awaitable[None]]) -> int:
    """Send the outbox's items in order with ``send``; the number sent.

    ``send`` raising leaves the item at the head, so a retry resumes there.
    """
    sent = 0
    while True:
        token = await store.lock(outbox, LOCK_TTL)
        if token is None:
            return sent  # another worker drains; it looks again after unlocking
        try:
            while (item := await store.outbox_head(outbox)) is not None:
                await send(item)
                await store.outbox_ack(outbox, item)
                sent += 1
        finally:
            await store.unlock(outbox, token)
        if await store.outbox_length(outbox) == 0:
            return sent
