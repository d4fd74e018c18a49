"""Runs an aiohttp app on a background thread at a free loopback port."""

from __future__ import annotations

import asyncio
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


class FakeServer:
    """Base for the fakes: records calls; ``app()`` builds the routes."""

    def __init__(self):
        self.calls: list[Call] = []
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

    def take_failure(self) -> tuple[int, dict, dict] | None:
        with self._lock:
            return self.failures.pop(0) if self.failures else None

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, predicate, timeout: float = 15.0, what: str = "a call"):
        """Poll until ``predicate(self)`` is truthy; its value. AssertionError on timeout."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = predicate(self)
            if value:
                return value
            time.sleep(0.05)
        with self._lock:
            seen = [(c.method, c.params) for c in self.calls]
        raise AssertionError(f"timed out waiting for {what}; calls so far: {seen}")

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
