"""Draining an outbox in order, by one worker at a time, surviving crashes.

Every message to a customer, and every event for the agents' console, is
appended by the state machine to an outbox list (and the outbox is noted in a
"dirty" set). Any number of drain jobs may run for one outbox on any number of
workers; a lock lets exactly one send at a time, from the head, so order holds.
After unlocking, the drainer looks again: an item pushed while it held the lock
(whose own job gave up on the lock) is never stranded.

Crashes: the lock expires quickly unless its holder keeps renewing it, and a
"sent" marker is written as soon as the platform accepted an item, so a drainer
that takes over after a crash acknowledges that item instead of sending it
again. ``sweep`` restarts the drain of outboxes whose worker died.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from typing import Awaitable, Callable

from gateway.ports import DeliveryError
from gateway.store import Store

__all__ = ["drain", "sweep", "LOCK_TTL"]

log = logging.getLogger(__name__)

# Seconds a dead worker's lock blocks its outbox; a live holder renews it.
LOCK_TTL = 10.0
# A platform asking to wait up to this long is waited for inside the job (the
# lock is kept, so order holds); longer waits go back to RQ's retry backoff.
MAX_INLINE_WAIT = 30.0
INLINE_RETRIES = 3

_UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
# Pop the item if it is still the head, and forget its sent marker.
_ACK = """
if redis.call('LINDEX', KEYS[1], 0) == ARGV[1] then
  redis.call('LPOP', KEYS[1])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""
# For the sweep: an empty outbox leaves the dirty set; a locked one is being
# drained; otherwise its drain must be restarted (and is not looked at again
# for another period).
_SETTLE = """
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[3], KEYS[1])
  return 'empty'
end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'busy' end
redis.call('ZADD', KEYS[3], ARGV[1], KEYS[1])
return 'stuck'
"""


def _marker(outbox: str, item: bytes) -> str:
    return f"{outbox}:sent:{hashlib.sha1(item).hexdigest()}"


async def _keep_lock(store: Store, lock: str, token: str) -> None:
    renew = store.redis.register_script(_RENEW)
    while True:
        await asyncio.sleep(LOCK_TTL / 3)
        await renew(keys=[lock], args=[token, int(LOCK_TTL * 1000)])


async def _send_waiting_if_asked(send: Callable[[bytes], Awaitable[None]], item: bytes) -> None:
    """Send; when the platform says "retry after N s" with a short N, wait and try again."""
    for attempt in range(INLINE_RETRIES + 1):
        try:
            await send(item)
            return
        except DeliveryError as exc:
            wait = exc.retry_after
            if exc.permanent or wait is None or wait > MAX_INLINE_WAIT or attempt == INLINE_RETRIES:
                raise
            log.info("platform asked to retry after %.1fs", wait)
            await asyncio.sleep(wait)


async def drain(store: Store, outbox: str, send: Callable[[bytes], Awaitable[None]]) -> int:
    """Send the outbox's items in order with ``send``; the number sent.

    ``send`` raising leaves the item at the head, so a retry resumes there.
    """
    unlock = store.redis.register_script(_UNLOCK)
    ack = store.redis.register_script(_ACK)
    lock = outbox + ":lock"
    sent = 0
    while True:
        token = secrets.token_hex(8)
        if not await store.redis.set(lock, token, nx=True, px=int(LOCK_TTL * 1000)):
            return sent  # another worker drains; it looks again after unlocking
        keeper = asyncio.create_task(_keep_lock(store, lock, token))
        try:
            while (item := await store.redis.lindex(outbox, 0)) is not None:
                marker = _marker(outbox, item)
                if not await store.redis.exists(marker):
                    await _send_waiting_if_asked(send, item)
                    await store.through_outage(lambda: store.redis.set(marker, "1", ex=7 * 24 * 3600))
                    sent += 1
                else:
                    log.info("%s: head item was sent before a crash; not sending it again", outbox)
                await ack(keys=[outbox, marker], args=[item])
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            await unlock(keys=[lock], args=[token])
        if await store.redis.llen(outbox) == 0:
            return sent


async def sweep(store: Store, older_than: float) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Outboxes left with items and no drainer for ``older_than`` seconds.

    Returns ((console, conversation id) pairs, (channel, customer id) pairs)
    whose drain jobs must be enqueued again.
    """
    settle = store.redis.register_script(_SETTLE)
    now = time.time()
    dirty = store.key("dirty")
    consoles: list[tuple[str, str]] = []
    customers: list[tuple[str, str]] = []
    for raw in await store.redis.zrangebyscore(dirty, "-inf", now - older_than, start=0, num=500):
        outbox = raw.decode()
        status = (await settle(keys=[outbox, outbox + ":lock", dirty], args=[now])).decode()
        if status != "stuck":
            continue
        parts = outbox[len(store.key("out")) + 1:].split(":", 2)
        if parts[0] == "console" and len(parts) == 3:
            consoles.append((parts[1], parts[2]))
        elif parts[0] == "customer" and len(parts) == 3:
            customers.append((parts[1], parts[2]))
    return consoles, customers
