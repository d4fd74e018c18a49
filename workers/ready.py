"""Draining the ready list: the outboxes with new items, each listed once (``gateway/jobs.py``).

One ``drain_ready`` job serves many outboxes, several at once on the worker's
event loop (a platform's pacing or slow answer holds up its own outbox only),
taking new outboxes for ``BUDGET`` seconds: a busy worker does not pay RQ's
bookkeeping per message, and it comes back to its queues often enough that
timers, taken first, never wait long. An outbox whose platform's pacing has no
turn within ``PACING_LOOKAHEAD`` goes back on the list shortly before its turn
(at once, or by a timer); one whose send fails is handed to a job of its own with
RQ's retries and backoff; one taken off the list by a worker that died is
restarted by the outbox sweep.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

from gateway.pacing import Paced, patience
from gateway.redis_text import as_text
from gateway.services import Services

__all__ = ["drain_ready", "BUDGET", "LANES"]

log = logging.getLogger(__name__)

# Seconds one job drains before it hands the rest to another (queued at once).
BUDGET = 1.0
# Outboxes drained at once by one worker.
LANES = 16
# How much earlier than its turn a paced outbox is put back (a timer fires up to this late).
TIMER_SLACK = 1.5
# How far ahead a lane reserves a paced platform's turn (and waits for it) rather than handing the
# outbox back: long enough that a busy limit is used to the full between timer wake-ups.
PACING_LOOKAHEAD = 2.0

# With more than ARGV[1] outboxes ready, mark "a drainer is queued" unless one is already (as in
# jobs.lua): 1 when the caller must queue it.
_MORE = """
if redis.call('LLEN', KEYS[1] .. ':ready') <= tonumber(ARGV[1]) then return 0 end
return redis.call('SET', KEYS[1] .. ':drainer', '1', 'NX', 'EX', 60) and 1 or 0
"""

Drain = Callable[[Services, str], Awaitable[None]]


async def drain_ready(services: Services, drain_outbox: Drain, retry_later: Drain,
                      queue_drainer: Callable[[], Awaitable[None]], budget: float = BUDGET, lanes: int = LANES) -> int:
    """Take outboxes off the ready list and drain them, ``lanes`` at a time, until the list is
    empty or ``budget`` seconds passed; how many were drained. ``queue_drainer`` queues another
    drainer job: when more are ready than this one takes at once, and for what is left at the end."""
    store = services.store
    redis = store.redis
    ready = store.key("ready")
    # From now on a new outbox queues another drainer: this one may be busy for a while. More ready
    # than this one takes at once: another worker joins in.
    await redis.delete(store.key("drainer"))
    await _more(store, lanes, queue_drainer)
    deadline = time.monotonic() + budget
    drained = 0

    async def lane() -> None:
        nonlocal drained
        while time.monotonic() < deadline:
            raw = await redis.lpop(ready)
            if raw is None:
                return
            outbox = as_text(raw)
            # This lane's task only: a paced send waits for a turn at most this long, else gives way.
            patience.set(time.monotonic() + PACING_LOOKAHEAD)
            try:
                await drain_outbox(services, outbox)
            except Paced as paced:
                # Its platform's pacing: back on the list when its turn nears (timers wake up on the second,
                # up to a second late), the others go on meanwhile.
                await services.conversations.ready_later(outbox, max(0.0, paced.after - TIMER_SLACK))
            except Exception as exc:  # noqa: BLE001 - one outbox's trouble must not stop the others
                log.warning("%s: %s; retrying it in a job of its own", outbox, exc)
                await retry_later(services, outbox)
            drained += 1

    await asyncio.gather(*(lane() for _ in range(lanes)))
    await _more(store, 0, queue_drainer)  # what is left gets a drainer
    return drained


async def _more(store, more_than: int, queue_drainer: Callable[[], Awaitable[None]]) -> None:
    """Queue another drainer if more than ``more_than`` outboxes are ready and none is queued."""
    if await store.redis.eval(_MORE, 1, store.tag, more_than):
        await queue_drainer()
