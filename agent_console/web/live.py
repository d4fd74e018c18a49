"""Live updates for the browser: a Redis stream of small events, served as server-sent events.

``deliver`` (in a worker) appends ``{conversation_id, kind, seq, by, to}`` to one
stream. Each web process reads it once (``gateway.fanout.FanOut``: one
``XREAD BLOCK`` on a connection of its own) and hands every event to every open
console stream in memory, so a browser connected to any process sees every
event and a stream costs no Redis connection. Each SSE message carries the
stream id, and the browser's ``EventSource`` sends it back as ``Last-Event-ID``
when it reconnects: the events it missed meanwhile are sent first. A stream that
cannot go on (Redis lost, too slow to keep up, signed out) ends, so the browser
reconnects. No customer text goes into the stream; the browser fetches what it
needs through the signed-in API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from typing import Any, Awaitable, Callable, Hashable

import redis.exceptions
from aiohttp import web

from gateway.fanout import BROADCAST, FanOut, Slots, StreamEnded, TooManyStreams, hold, stream_id_key, text

__all__ = ["EventLog", "sse_handler", "console_fanout", "Figures", "MAXLEN", "MAX_STREAMS_PER_SESSION", "SESSION_CHECK_EVERY"]

log = logging.getLogger(__name__)

MAXLEN = 10_000
# Console streams one session may hold open in one web process (tabs of one browser).
MAX_STREAMS_PER_SESSION = 10
# How often an open stream re-checks its session (``signed_in``): a signed-out, removed or re-passworded
# agent's streams end within this (plus one Redis round trip).
SESSION_CHECK_EVERY = 2.0
# The events of a burst go out together, one write per stream: at most this much later.
LINGER = 0.1
_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


class EventLog:
    """The stream of console events shared by all web processes."""

    def __init__(self, redis, key: str):
        self.redis = redis
        self.key = key

    async def publish(self, conversation_id: str, kind: str, seq: int = 0, by: str = "", to: str = "") -> str:
        data = json.dumps({"conversation_id": conversation_id, "kind": kind, "seq": seq, "by": by, "to": to},
                          separators=(",", ":"))
        stream_id = await self.redis.xadd(self.key, {"d": data}, maxlen=MAXLEN, approximate=True)
        return stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)

    async def last_id(self) -> str:
        newest = await self.redis.xrevrange(self.key, count=1)
        if not newest:
            return "0-0"
        stream_id = newest[0][0]
        return stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)

    async def since(self, after: str, page: int = 1000) -> list[tuple[str, bytes]]:
        """The events after ``after`` as SSE messages, read once (no BLOCK): what a resuming stream missed."""
        found: list[tuple[str, bytes]] = []
        while len(found) < MAXLEN * 2:
            entries = await self.redis.xrange(self.key, min=f"({after}", max="+", count=page)
            for raw_id, fields in entries:
                after = text(raw_id)
                raw = fields.get(b"d") or fields.get("d") or b"{}"
                try:
                    found.append((after, _chat_message(after, json.loads(raw))))
                except ValueError:
                    continue
            if len(entries) < page:
                break
        return found


def _start_id(request: web.Request) -> str | None:
    for value in (request.headers.get("Last-Event-ID", ""), request.query.get("since", "")):
        if value and _STREAM_ID.match(value):
            return value
    return None


def _chat_message(stream_id: str, data: dict) -> bytes:
    return f"id: {stream_id}\nevent: chat\ndata: {json.dumps(data)}\n\n".encode()


def console_fanout(redis_url: str, key: str) -> FanOut:
    """The process's one reader of the console stream: every event, encoded once, to every console stream."""

    def route(stream_id: str, fields: dict) -> tuple[Hashable, tuple[tuple[int, int], bytes]] | None:
        data: dict
        raw = fields.get(b"d") or fields.get("d") or b"{}"
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        # Every console stream takes it (BROADCAST); a web-chat stream follows its conversation's.
        return (str(data.get("conversation_id") or "") or BROADCAST,
                (stream_id_key(stream_id), _chat_message(stream_id, data)))

    return FanOut(redis_url, key, route, name="chatgate-live-console", linger=LINGER)


class Figures:
    """The Inbox figures every stream sends along, computed at most once per ``every`` seconds per process
    (one Redis read for all the streams, not one per stream and event)."""

    def __init__(self, compute: Callable[[], Awaitable[dict[str, Any]]], every: float = 1.0):
        self.compute, self.every = compute, every
        self.message = b""
        self.at = -1e9
        self.pending: asyncio.Future | None = None

    async def __call__(self) -> bytes:
        if time.monotonic() - self.at < self.every and self.message:
            return self.message
        if self.pending is None:
            self.pending = asyncio.ensure_future(self._refresh())
        pending = self.pending
        try:
            return await asyncio.shield(pending)
        finally:
            if pending.done() and self.pending is pending:
                self.pending = None

    async def _refresh(self) -> bytes:
        self.message = _figures_message(await self.compute())
        self.at = time.monotonic()
        return self.message


def sse_handler(events: EventLog, fanout: FanOut, ping_every: Callable[[], float], figures: Figures,
                prepare: Callable[[web.StreamResponse], object], limits: list[tuple[Slots, Hashable]],
                signed_in: Callable[[], Awaitable[bool]]) -> Callable:
    """``GET /console/api/events`` (the caller checks the session first and names its ``limits``)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            with hold(*limits):
                return await _serve(request)
        except TooManyStreams as refused:
            response = web.json_response({"error": refused.code, "message": refused.message}, status=429,
                                         headers={"Retry-After": str(refused.retry_after)})
            prepare(response)
            return response

    async def _serve(request: web.Request) -> web.StreamResponse:
        with fanout.subscribe() as subscription:
            # Subscribed first, then the starting point: whatever is newer reaches this stream once.
            start = _start_id(request)
            after = start or await events.last_id()
            missed = await events.since(after) if start else []
            first_figures = await figures()
            response = web.StreamResponse(headers={
                "Content-Type": "text/event-stream", "Cache-Control": "no-cache, no-store",
                "X-Accel-Buffering": "no",  # nginx: pass each event on at once
            })
            prepare(response)
            await response.prepare(request)
            try:
                # How soon a browser retries after a dropped connection.
                await response.write(b"retry: 2000\n\n")
                head = b"".join(message for _id, message in missed)
                if missed:
                    after = missed[-1][0]
                await response.write(head + first_figures)
                position = stream_id_key(after)
                # Streams opened together check their sessions apart: no burst of reads on the shared pool.
                pinged = time.monotonic()
                checked = pinged - random.uniform(0, SESSION_CHECK_EVERY)
                while True:
                    every = ping_every()
                    now = time.monotonic()
                    batch = await subscription.next(max(0.01, min(every - (now - pinged),
                                                                  SESSION_CHECK_EVERY - (now - checked))))
                    if time.monotonic() - checked >= SESSION_CHECK_EVERY:
                        if not await signed_in():
                            break  # signed out (or no longer an agent): the stream ends with the session
                        checked = time.monotonic()
                    fresh = [message for key, message in batch if key > position]
                    if batch:
                        position = max(position, batch[-1][0])
                    if fresh:
                        # The figures (waiting, ...) change with the chats: send them along.
                        await response.write(b"".join(fresh) + await figures())
                    if time.monotonic() - pinged >= every:
                        await response.write(b": ping\n\n" + await figures())
                        pinged = time.monotonic()
            except StreamEnded as ended:
                log.debug("console stream ended: %s", ended)
            except ConnectionResetError:
                pass  # the browser went away; it reconnects with Last-Event-ID
            except (redis.exceptions.RedisError, OSError) as exc:
                log.warning("console stream ended, Redis unavailable: %s", exc)  # the browser reconnects
            return response

    return handle


def _figures_message(figures: dict[str, Any]) -> bytes:
    return f"event: figures\ndata: {json.dumps(figures)}\n\n".encode()
