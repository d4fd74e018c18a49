"""One Redis stream reader per web process, fanning each entry out in memory to the open streams.

A browser's live stream (the console's, the web chat's) costs no Redis
connection: a ``FanOut`` task started with the app reads its stream key with
``XREAD BLOCK`` on a connection of its own (not the shared pool) and hands each
entry to the local ``Subscription`` of every stream that wants it. A
subscription is bounded: a stream too slow to keep up is ended (the browser
reconnects and resumes), never left to grow memory. When the reader's Redis
read fails every subscription ends the same way, and the reader reconnects,
going on from the last entry it read.

A stream resuming from ``Last-Event-ID`` subscribes first, then reads what it
missed once (``XRANGE``), then takes the fan-out's entries newer than the last
one it sent: no gap, no duplicate.

``Slots`` counts the open streams per holder (a customer, an address, a
session, the process) against a limit; ``TooManyStreams`` is the refusal
(429 with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from contextlib import contextmanager
from typing import Any, Callable, Hashable, Iterator

import redis.asyncio as aioredis
import redis.exceptions
from aiohttp import web
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = ["FanOut", "Subscription", "StreamEnded", "Slots", "TooManyStreams", "hold", "process_slots", "stream_id_key",
           "text", "QUEUE_LIMIT"]

log = logging.getLogger(__name__)

# Entries one stream may have waiting; one more and the stream ends (it reconnects and resumes).
QUEUE_LIMIT = 512
# How long one XREAD blocks; the reader's socket timeout is longer.
BLOCK_SECONDS = 5.0
READ_COUNT = 500
# Streams woken per turn of the event loop when entries are handed out.
WAKE_SLICE = 10
BROADCAST = None  # the topic of a subscription that takes every entry

PROCESS_SLOTS = web.AppKey("stream_slots", object)

Route = Callable[[str, dict], "tuple[Hashable, tuple[tuple[int, int], Any]] | None"]


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def stream_id_key(stream_id: str) -> tuple[int, int]:
    """A stream id ("1700000000000-3") as a sortable pair."""
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


class StreamEnded(Exception):
    """The subscription cannot go on (the reader lost Redis, the stream fell behind, the app stops)."""


class Subscription:
    """One open stream's share of a fan-out: the entries ``(key, item)`` since it last looked.

    Waiting costs one future and one timer, nothing else: a process holds thousands of these, and what each
    wait allocates is what the garbage collector later walks."""

    __slots__ = ("fanout", "topic", "limit", "items", "ended", "nudged", "_waiter")

    def __init__(self, fanout: "FanOut", topic: Hashable, limit: int = QUEUE_LIMIT):
        self.fanout, self.topic, self.limit = fanout, topic, limit
        self.items: deque = deque()
        self.ended = ""
        self.nudged = False  # set by a ``follow`` of another fan-out: something of interest changed
        self._waiter: asyncio.Future | None = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def nudge(self) -> None:
        self.nudged = True
        self._wake()

    def push(self, item: tuple[Any, Any]) -> None:
        woken = self.put(item)
        if woken is not None:
            woken._wake()

    def put(self, item: tuple[Any, Any]) -> "Subscription | None":
        """Keep ``item`` without waking the stream; the subscription to wake for it (None: nothing to do)."""
        if self.ended:
            return None
        if len(self.items) >= self.limit:
            self.end("fell behind")
            return self
        self.items.append(item)
        return self

    def end(self, reason: str) -> None:
        if not self.ended:
            self.ended = reason
            self.items.clear()
            self._wake()

    async def next(self, timeout: float) -> list[tuple[Any, Any]]:
        """What arrived, waiting up to ``timeout`` seconds ([] when nothing did); ``StreamEnded`` once ended."""
        if not self.items and not self.ended and not self.nudged:
            loop = asyncio.get_running_loop()
            self._waiter = waiter = loop.create_future()
            timer = loop.call_later(timeout, self._wake)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        if self.ended:
            raise StreamEnded(self.ended)
        items = list(self.items)
        self.items.clear()
        return items

    def close(self) -> None:
        self.fanout.unsubscribe(self)

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


class _Follower(Subscription):
    """Keeps nothing: each entry of its topic nudges ``target``."""

    __slots__ = ("target",)

    def __init__(self, fanout: "FanOut", topic: Hashable, target: Subscription):
        super().__init__(fanout, topic, limit=0)
        self.target = target

    def put(self, item: tuple[Any, Any]) -> Subscription | None:
        self.target.nudged = True
        return self.target


class FanOut:
    """Reads ``key`` for this process and hands each entry to the subscriptions of its topic.

    ``route(stream_id, fields)`` turns an entry into ``(topic, (key, item))`` (``None``: skip it), ``key``
    being the sortable position a stream resumes from (``stream_id_key``); it reaches the subscriptions of
    that topic and those to ``BROADCAST`` (every entry). With ``linger``, the reader waits that long after
    handing entries out before it reads again, so what arrives meanwhile goes out together: one wake and
    one write per stream for a burst, not one per entry. Start it on app startup, stop it on cleanup
    (``attach``)."""

    def __init__(self, redis_url: str, key: str, route: Route, name: str, block: float = BLOCK_SECONDS,
                 linger: float = 0.0):
        self.redis_url, self.key, self.route, self.name, self.block = redis_url, key, route, name, block
        self.linger = linger
        self.topics: dict[Hashable, set[Subscription]] = {}
        self.last: str | None = None
        self.task: asyncio.Task | None = None
        self.connection: aioredis.Redis | None = None
        self.reads = 0  # XREAD replies handled (for tests and the benchmark)
        self.failures = 0
        self.stopping = False

    # -- subscribers -----------------------------------------------------------

    def subscribe(self, topic: Hashable = BROADCAST, limit: int = QUEUE_LIMIT) -> Subscription:
        subscription = Subscription(self, topic, limit)
        self.topics.setdefault(topic, set()).add(subscription)
        return subscription

    def follow(self, topic: Hashable, target: Subscription) -> Subscription:
        """A subscription to ``topic`` that keeps nothing and only nudges ``target`` (of any fan-out) on each
        entry; close it when done."""
        follower = _Follower(self, topic, target)
        self.topics.setdefault(topic, set()).add(follower)
        return follower

    def unsubscribe(self, subscription: Subscription) -> None:
        members = self.topics.get(subscription.topic)
        if members is not None:
            members.discard(subscription)
            if not members:
                del self.topics[subscription.topic]

    def end_all(self, reason: str) -> None:
        for members in list(self.topics.values()):
            for subscription in list(members):
                subscription.end(reason)

    @property
    def subscribers(self) -> int:
        return sum(len(members) for members in self.topics.values())

    # -- the reader ------------------------------------------------------------

    def attach(self, app: web.Application) -> None:
        app.on_startup.append(self.start)
        app.on_shutdown.append(lambda _app: self._end_for_shutdown())
        app.on_cleanup.append(self.stop)

    async def _end_for_shutdown(self) -> None:
        self.end_all("the server is stopping")

    def _connect(self) -> aioredis.Redis:
        # Its own connection, never one of the shared pool's; no silent retry: a failed read ends the
        # streams (they resume from Last-Event-ID) rather than hiding a gap.
        return aioredis.Redis.from_url(self.redis_url, single_connection_client=True,
                                       socket_timeout=self.block + 10, socket_connect_timeout=5,
                                       retry=Retry(NoBackoff(), 0), client_name=self.name)

    async def start(self, _app: Any = None) -> None:
        if self.task is not None:
            return
        self.stopping = False
        # Where to begin: the newest entry now, so a stream that opens at once misses nothing.
        try:
            self.connection = self._connect()
            newest = await self.connection.xrevrange(self.key, count=1)
            self.last = text(newest[0][0]) if newest else "0-0"
        except (redis.exceptions.RedisError, OSError) as exc:
            log.warning("live reader %s: Redis unavailable at start (%s); reading from the beginning", self.name,
                        exc)
            self.last = "0-0"  # the subscriptions drop what is older than what they sent
            await self._close_connection()
        self.task = asyncio.create_task(self._run(), name=f"fanout-{self.name}")

    async def stop(self, _app: Any = None) -> None:
        self.end_all("the server is stopping")
        self.stopping = True
        if self.task is not None:
            task, self.task = self.task, None
            task.cancel()
            # redis-py can swallow a cancel that lands inside a command: the loop then sees ``stopping``
            # when its read returns (within ``block``); a stop never waits longer than that.
            await asyncio.wait({task}, timeout=self.block + 2)
            if task.done() and not task.cancelled():
                task.exception()  # retrieved, so it is not logged as never retrieved
        await self._close_connection()

    async def _close_connection(self) -> None:
        if self.connection is not None:
            connection, self.connection = self.connection, None
            try:
                await connection.aclose()
            except Exception:  # a dead connection closes as well as it can
                pass

    async def _run(self) -> None:
        pause = 0.1
        while not self.stopping:
            try:
                if self.connection is None:
                    self.connection = self._connect()
                reply = await self.connection.xread({self.key: self.last or "0-0"}, count=READ_COUNT,
                                                    block=int(self.block * 1000))
                pause = 0.1
                self.reads += 1
                found: Any = reply or ()
                woken: dict[Subscription, None] = {}
                for _stream, entries in found:
                    for raw_id, fields in entries:
                        stream_id = text(raw_id)
                        self.last = stream_id
                        self._hand_out(stream_id, fields, woken)
                await self._wake(woken)
                if found and self.linger:
                    await asyncio.sleep(self.linger)
            except asyncio.CancelledError:
                raise
            except (redis.exceptions.RedisError, OSError) as exc:
                self.failures += 1
                log.warning("live reader %s: Redis read failed (%s); ending its %d streams", self.name, exc,
                            self.subscribers)
                self.end_all("the live reader lost Redis")
                await self._close_connection()
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
            except Exception:
                log.exception("live reader %s failed", self.name)
                self.end_all("the live reader failed")
                await asyncio.sleep(1.0)

    async def _wake(self, woken: dict[Subscription, None]) -> None:
        # A slice of the streams per turn of the event loop: a webhook or a health check that arrives while a
        # thousand streams write waits for one slice, not for all of them.
        for n, subscription in enumerate(woken, 1):
            subscription._wake()
            if n % WAKE_SLICE == 0:
                await asyncio.sleep(0)

    def _hand_out(self, stream_id: str, fields: dict, woken: dict[Subscription, None]) -> None:
        try:
            routed = self.route(stream_id, fields)
        except Exception:
            log.exception("live reader %s: unreadable entry %s", self.name, stream_id)
            return
        if routed is None:
            return
        topic, item = routed
        # The entry's own topic, and every subscription that takes all entries.
        for subscription in self.topics.get(BROADCAST, ()):
            if (wake := subscription.put(item)) is not None:
                woken[wake] = None
        if topic is not BROADCAST:
            for subscription in self.topics.get(topic, ()):
                if (wake := subscription.put(item)) is not None:
                    woken[wake] = None


class TooManyStreams(Exception):
    """A stream over one of its limits: answer 429 with ``Retry-After``."""

    def __init__(self, code: str, message: str, retry_after: int = 10):
        super().__init__(message)
        self.code, self.message, self.retry_after = code, message, retry_after


class Slots:
    """Open streams per holder against a limit (in this process)."""

    def __init__(self, limit: int, code: str, message: str):
        self.limit, self.code, self.message = limit, code, message
        self.held: dict[Hashable, int] = {}

    def full(self, holder: Hashable) -> bool:
        return self.held.get(holder, 0) >= self.limit

    def _take(self, holder: Hashable) -> None:
        self.held[holder] = self.held.get(holder, 0) + 1

    def _give(self, holder: Hashable) -> None:
        count = self.held.get(holder, 0) - 1
        if count > 0:
            self.held[holder] = count
        else:
            self.held.pop(holder, None)

    def total(self) -> int:
        return sum(self.held.values())


@contextmanager
def hold(*claims: tuple[Slots, Hashable]) -> Iterator[None]:
    """Take one slot of each ``(slots, holder)`` for the block, or raise ``TooManyStreams`` naming the first
    limit that is full (taking none)."""
    for slots, holder in claims:
        if slots.full(holder):
            raise TooManyStreams(slots.code, slots.message)
    for slots, holder in claims:
        slots._take(holder)
    try:
        yield
    finally:
        for slots, holder in claims:
            slots._give(holder)


def process_slots(app: web.Application, limit: int) -> Slots:
    """The one count of every live stream this web process serves (``[server] max_streams``)."""
    slots = app.get(PROCESS_SLOTS)
    if slots is None:
        slots = Slots(limit, "too_many_streams", "This server has too many live streams open; retrying shortly.")
        app[PROCESS_SLOTS] = slots
    assert isinstance(slots, Slots)
    return slots
