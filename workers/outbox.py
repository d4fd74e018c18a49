"""Draining an outbox in order, by one worker at a time, surviving crashes.

Every message to a customer, and every event for an agents' console, is
appended by the state machine to an outbox list, which also notes the outbox in
a "dirty" set and, when the outbox was idle, marks it (``<outbox>:job``) and
queues its drain job (``gateway/jobs.py``). A lock lets exactly one drainer
send at a time, from the head, so order holds. The drainer that empties the
outbox clears the mark in the same step, so the next append queues a new job;
appends while it drains need none, it picks them up.

Crashes: the lock expires quickly unless its holder keeps renewing it. A
drainer that takes over a lock its holder never released (``<outbox>:held``
is still there) is told its first item may already be on the platform, so a
console or channel that can check does not send it twice. ``sweep`` restarts
the drain of outboxes whose worker died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Awaitable, Callable

from gateway.ports import DeliveryError
from gateway.redis_text import as_text
from gateway.store import Store

__all__ = ["drain", "sweep", "LOCK_TTL"]

log = logging.getLogger(__name__)

# Seconds a dead worker's lock blocks its outbox; a live holder renews it.
LOCK_TTL = 10.0
# A platform asking to wait up to this long is waited for inside the job (the
# lock is kept, so order holds); longer waits go back to RQ's retry backoff.
MAX_INLINE_WAIT = 30.0
INLINE_RETRIES = 3

# KEYS: outbox, lock, held, job mark, dirty set. Take the lock; reply {taken, holder died, head item}.
_CLAIM = """
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0, 0, false} end
local died = redis.call('EXISTS', KEYS[3])
redis.call('SET', KEYS[3], ARGV[1])
local head = redis.call('LINDEX', KEYS[1], 0)
if not head then redis.call('DEL', KEYS[4]) redis.call('ZREM', KEYS[5], KEYS[1]) end
return {1, died, head}
"""
# KEYS: outbox, job mark, dirty set. Pop the item if it is still the head; reply the next one.
# An emptied outbox loses its mark (the next append queues a job) and leaves the dirty set.
_ACK = """
if redis.call('LINDEX', KEYS[1], 0) == ARGV[1] then redis.call('LPOP', KEYS[1]) end
local head = redis.call('LINDEX', KEYS[1], 0)
if not head then redis.call('DEL', KEYS[2]) redis.call('ZREM', KEYS[3], KEYS[1]) end
return head
"""
# KEYS: lock, held, outbox. Unlock if still ours; reply what is left.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1], KEYS[2]) end
return redis.call('LLEN', KEYS[3])
"""
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
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

# An item and whether it may already be on the platform (its drainer died after sending it).
Send = Callable[[bytes, bool], Awaitable[None]]


async def _keep_lock(store: Store, lock: str, token: str) -> None:
    renew = store.redis.register_script(_RENEW)
    while True:
        await asyncio.sleep(LOCK_TTL / 3)
        await renew(keys=[lock], args=[token, int(LOCK_TTL * 1000)])


async def _send_waiting_if_asked(send: Send, item: bytes, maybe_sent: bool) -> None:
    """Send; when the platform says "retry after N s" with a short N, wait and try again."""
    for attempt in range(INLINE_RETRIES + 1):
        try:
            await send(item, maybe_sent)
            return
        except DeliveryError as exc:
            wait = exc.retry_after
            if exc.permanent or wait is None or wait > MAX_INLINE_WAIT or attempt == INLINE_RETRIES:
                raise
            log.info("platform asked to retry after %.1fs", wait)
            await asyncio.sleep(wait)


async def drain(store: Store, outbox: str, send: Send) -> int:
    """Send the outbox's items in order with ``send``; the number sent.

    ``send`` raising leaves the item at the head, so a retry resumes there.
    """
    claim = store.redis.register_script(_CLAIM)
    ack = store.redis.register_script(_ACK)
    release = store.redis.register_script(_RELEASE)
    lock, held, mark, dirty = outbox + ":lock", outbox + ":held", outbox + ":job", store.key("dirty")
    sent = 0
    while True:
        token = secrets.token_hex(8)
        taken, died, item = await claim(keys=[outbox, lock, held, mark, dirty], args=[token, int(LOCK_TTL * 1000)])
        if not taken:
            return sent  # another worker drains; it looks again after unlocking
        keeper = asyncio.create_task(_keep_lock(store, lock, token)) if item is not None else None
        try:
            maybe_sent = bool(died)
            while item is not None:
                if maybe_sent:
                    log.info("%s: taking over from a worker that died; its last item may be sent", outbox)
                await _send_waiting_if_asked(send, item, maybe_sent)
                sent += 1
                maybe_sent = False
                # The platform has it: acknowledge even through a Redis outage, or a retry resends it.
                done = item
                item = await store.through_outage(lambda: ack(keys=[outbox, mark, dirty], args=[done]))
        finally:
            if keeper is not None:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper
            left = await release(keys=[lock, held, outbox], args=[token])
        if not left:
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
        outbox = as_text(raw)
        status = (await settle(keys=[outbox, outbox + ":lock", dirty], args=[now])).decode()
        if status != "stuck":
            continue
        kind, name, subject = store.outbox_parts(outbox)
        if kind == "console":
            consoles.append((name, subject))
        elif kind == "customer":
            customers.append((name, subject))
    return consoles, customers
