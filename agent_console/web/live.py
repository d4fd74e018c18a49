"""Live updates for the browser: a Redis stream of small events, served as server-sent events.

``deliver`` (in a worker) appends ``{conversation_id, kind, seq, by, to}`` to one
stream; every web process reads it with ``XREAD BLOCK``, so a browser connected
to any process sees every event. Each SSE message carries the stream id, and the
browser's ``EventSource`` sends it back as ``Last-Event-ID`` when it reconnects:
the events it missed meanwhile are sent first. No customer text goes into the
stream; the browser fetches what it needs through the signed-in API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any, Awaitable, Callable

from aiohttp import web

DEFAULT_SOCKET_TIMEOUT: float | None
try:
    from redis._defaults import DEFAULT_SOCKET_TIMEOUT
except ImportError:  # older redis-py: no timeout unless configured
    DEFAULT_SOCKET_TIMEOUT = None

__all__ = ["EventLog", "sse_handler", "MAXLEN"]

log = logging.getLogger(__name__)

MAXLEN = 10_000
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

    async def read(self, after: str, block_ms: int, count: int = 200) -> list[tuple[str, dict]]:
        """Events after ``after`` (waiting up to ``block_ms`` for one); [] on timeout."""
        reply = await self.redis.xread({self.key: after}, count=count, block=block_ms)
        events = []
        for _stream, entries in reply or ():
            for stream_id, fields in entries:
                sid = stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)
                raw = fields.get(b"d") or fields.get("d") or b"{}"
                try:
                    events.append((sid, json.loads(raw)))
                except ValueError:
                    continue
        return events


def _start_id(request: web.Request) -> str | None:
    for value in (request.headers.get("Last-Event-ID", ""), request.query.get("since", "")):
        if value and _STREAM_ID.match(value):
            return value
    return None


def sse_handler(events: EventLog, ping_every: float, figures: Callable[[], Awaitable[dict[str, Any]]],
                prepare: Callable[[web.StreamResponse], object], tracked: set) -> Callable:
    """``GET /console/api/events`` (the caller checks the session first)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        after = _start_id(request) or await events.last_id()
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache, no-store",
            "X-Accel-Buffering": "no",  # nginx: pass each event on at once
        })
        prepare(response)
        await response.prepare(request)
        task = asyncio.current_task()
        tracked.add(task)
        try:
            # How soon a browser retries after a dropped connection.
            await response.write(b"retry: 2000\n\n")
            await response.write(_figures_message(await figures()))
            block = _block_seconds(events.redis, ping_every)
            pinged = time.monotonic()
            while request.transport is not None and not request.transport.is_closing():
                batch = await events.read(after, int(block * 1000))
                if not batch:
                    if time.monotonic() - pinged >= ping_every:
                        await response.write(b": ping\n\n" + _figures_message(await figures()))
                        pinged = time.monotonic()
                    continue
                chunks = []
                for stream_id, data in batch:
                    after = stream_id
                    chunks.append(f"id: {stream_id}\nevent: chat\ndata: {json.dumps(data)}\n\n")
                # The figures (waiting, ...) change with the chats: send them along.
                await response.write("".join(chunks).encode() + _figures_message(await figures()))
        except ConnectionResetError:
            pass  # the browser went away; it reconnects with Last-Event-ID
        finally:
            tracked.discard(task)
        return response

    return handle


def _block_seconds(redis, ping_every: float) -> float:
    """How long one XREAD may block: under the client's socket timeout, which would cut it off."""
    kwargs = redis.connection_pool.connection_kwargs
    # redis-py 8 gives every connection a 5 s socket timeout unless told otherwise.
    timeout = kwargs.get("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
    if timeout:
        return max(0.1, min(ping_every, float(timeout) / 2))
    return ping_every


def _figures_message(figures: dict[str, Any]) -> bytes:
    return f"event: figures\ndata: {json.dumps(figures)}\n\n".encode()
