"""Runs an aiohttp app on a background thread at a free loopback port."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Call:
    """One request a fake received."""

    method: str  # the API method, e.g. "chat.postMessage" or "sendMessage"
    params: dict
    at: float = field(default_factory=time.time)


# Seconds early a request may come and still conform (see ``Buckets``).
TOLERANCE = 0.5


class Buckets:
    """The platform's rate limit as token buckets, one per key (a channel, a chat, a sender): at most
    ``burst`` requests at once, then ``rate`` a second.

    Like a real API it tolerates requests that arrive a little early (``tolerance`` seconds, the network's
    jitter between a sender that paced itself and the server): GCRA's delay variation tolerance.
    """

    def __init__(self, rate: float, burst: int, tolerance: float = TOLERANCE):
        self.rate, self.burst, self.tolerance = rate, burst, tolerance
        self._state: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> float | None:
        """None when a token is taken, else the seconds until one is free (Retry-After)."""
        with self._lock:
            now = time.monotonic()
            tokens, at = self._state.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens < 1 - self.tolerance * self.rate:
                self._state[key] = (tokens, now)
                return (1 - tokens) / self.rate
            self._state[key] = (tokens - 1, now)
            return None


class FakeServer:
    """Base for the fakes: records calls; ``app()`` builds the routes."""

    def __init__(self):
        self.calls: list[Call] = []
        # Requests refused with the platform's 429 because a rate limit (see ``Buckets``) was exceeded.
        self.limited: list[Call] = []
        self._buckets: dict[str, Buckets] = {}
        self._lock = threading.Lock()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        # Queued failures: each entry is (status, body, headers) answered once, first in first out.
        self.failures: list[tuple[int, dict, dict]] = []

    def app(self) -> web.Application:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def record(self, method: str, params: dict) -> None:
        with self._lock:
            self.calls.append(Call(method, params))

    def over_limit(self, name: str, limit: tuple[float, int] | None, key: str, method: str,
                   params: dict) -> int | None:
        """Whether a request exceeds the rate limit ``name`` (``limit`` = (rate, burst), None: off) for ``key``:
        None if not, else the whole seconds to tell it to wait (the request is recorded in ``limited``)."""
        if limit is None:
            return None
        with self._lock:
            buckets = self._buckets.get(name)
            if buckets is None or (buckets.rate, buckets.burst) != tuple(limit):
                buckets = self._buckets[name] = Buckets(*limit)
        wait = buckets.take(key)
        if wait is None:
            return None
        with self._lock:
            self.limited.append(Call(method, dict(params, limit=name, key=key)))
        return max(1, math.ceil(wait))

    def take_failure(self) -> tuple[int, dict, dict] | None:
        with self._lock:
            return self.failures.pop(0) if self.failures else None

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def start(self) -> "FakeServer":
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._runner = web.AppRunner(self.app())
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)
