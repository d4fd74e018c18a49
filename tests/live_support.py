"""Many live streams from one process (the tests of ``gateway.fanout`` and ``bench/live_streams.py``).

``Sse`` reads one server-sent-events response in a task of its own, keeping
every event (id, kind, data, arrival time) and the pings; ``chat_customer``
starts a web-chat customer (its cookie) from an address of its choosing
(``[server] trust_forwarded_for`` on); ``console_cookie`` signs an agent in
through a one-time link, as ``chatgate run``'s is used.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field

import aiohttp
import redis as redis_sync

from tests.support import keys

__all__ = ["Sse", "chat_customer", "console_cookie", "open_chat_stream", "open_console_stream", "connected_clients", "process_connections",
           "session"]


@dataclass
class Sse:
    """One open SSE response, read in the background."""

    response: aiohttp.ClientResponse
    events: list[tuple[str, str, dict, float]] = field(default_factory=list)
    pings: int = 0
    ended: bool = False
    task: asyncio.Task | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> "Sse":
        self.task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        current: dict[str, str] = {}
        try:
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    break
                line = raw.decode().rstrip("\n")
                if line == "":
                    if "event" in current and "data" in current:
                        self.events.append((current.get("id", ""), current["event"], json.loads(current["data"]),
                                            time.monotonic()))
                        self.changed.set()
                    current.clear()
                elif line.startswith(":"):
                    self.pings += line.startswith(": ping")
                    self.changed.set()
                else:
                    name, _, value = line.partition(": ")
                    current[name] = value
        except (aiohttp.ClientError, asyncio.CancelledError, ConnectionError):
            pass
        finally:
            self.ended = True
            self.changed.set()

    def of(self, kind: str) -> list[tuple[str, dict]]:
        return [(event_id, data) for event_id, k, data, _ in self.events if k == kind]

    @property
    def last_id(self) -> str:
        ids = [event_id for event_id, *_ in self.events if event_id]
        return ids[-1] if ids else ""

    async def wait(self, check, timeout: float = 15.0):
        """Until ``check(self)`` holds (or the stream ends: then whatever ``check`` says)."""
        deadline = time.monotonic() + timeout
        while True:
            value = check(self)
            if value or self.ended:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting on a stream; events: {self.events[-5:]}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def close(self) -> None:
        self.response.close()
        if self.task is not None:
            self.task.cancel()
            # Bounded: a cancel redis-py or aiohttp swallows must not hang the test's teardown.
            await asyncio.wait({self.task}, timeout=5)


def session() -> aiohttp.ClientSession:
    """A client session for many connections, keeping no cookies (each request names its own)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar(),
                                 timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))


async def chat_customer(http: aiohttp.ClientSession, base: str, address: str, name: str = "Ada") -> str:
    """A new web-chat customer's ``Cookie`` header."""
    async with http.post(f"{base}/chat/api/start", json={"name": name},
                         headers={"X-Forwarded-For": address}) as response:
        assert response.status == 200, await response.text()
        return "; ".join(f"{k}={v.value}" for k, v in response.cookies.items())


async def open_chat_stream(http: aiohttp.ClientSession, base: str, cookie: str, address: str,
                           last_id: str = "") -> aiohttp.ClientResponse:
    headers = {"Cookie": cookie, "X-Forwarded-For": address}
    if last_id:
        headers["Last-Event-ID"] = last_id
    return await http.get(f"{base}/chat/api/events", headers=headers)


def console_cookie_token(redis_url: str, agent: str, key_prefix: str = "chatgate") -> str:
    """A one-time sign-in token for ``agent``, put where ``issue_login_token`` puts it."""
    token = secrets.token_urlsafe(32)
    key = keys(key_prefix)("web", "login_token", hashlib.sha256(token.encode()).hexdigest())
    redis_sync.Redis.from_url(redis_url).set(key, agent, ex=600)
    return token


async def console_cookie(http: aiohttp.ClientSession, base: str, redis_url: str, agent: str = "admin") -> str:
    """A signed-in agent's ``Cookie`` header (one session each call)."""
    token = console_cookie_token(redis_url, agent)
    async with http.get(f"{base}/console/login/token", params={"t": token}, allow_redirects=False) as response:
        assert response.status == 303, await response.text()
        return "; ".join(f"{k}={v.value}" for k, v in response.cookies.items())


async def open_console_stream(http: aiohttp.ClientSession, base: str, cookie: str,
                              last_id: str = "") -> aiohttp.ClientResponse:
    headers = {"Cookie": cookie}
    if last_id:
        headers["Last-Event-ID"] = last_id
    return await http.get(f"{base}/console/api/events", headers=headers)


def connected_clients(redis_url: str) -> int:
    """Redis's ``INFO clients`` count: every process's connections."""
    return int(redis_sync.Redis.from_url(redis_url).info("clients")["connected_clients"])


def process_connections(pid: int) -> int:
    """The sockets one process holds other than TCP (the deployment's Redis is a unix socket): its Redis
    connections, whatever the workers do meanwhile."""
    import psutil

    return len(psutil.Process(pid).net_connections(kind="unix"))
