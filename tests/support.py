"""The tests' own plumbing: waiting for a condition, and chatgate's Redis keys.

``eventually(check)`` is the one way a test waits: it polls ``check`` until it
returns something truthy and returns that, or fails naming what it waited for
and the last value it saw. Tests wait for a condition, never for a fixed time.
``eventually_async`` is the same for a test on an event loop (``check`` may be
a coroutine function), so the loop keeps serving while it waits.

``keys()`` is the store's own key function (``gateway.store.Store.key``) for a
``[redis] key_prefix``, for code that reads Redis with a plain client and has
no ``Store`` at hand: build it once per module (``KEY = keys()``) rather than
spelling the prefix out by hand.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any, Awaitable, Callable, TypeVar

import redis.asyncio as aioredis

from gateway.config import RedisConfig
from gateway.store import Store

__all__ = ["eventually", "eventually_async", "keys", "TIMEOUT"]

T = TypeVar("T")

# Seconds a wait lasts unless a test says otherwise: long enough for a loaded machine, and
# a test that waits on the real processes (a restart, a retry's backoff) says so.
TIMEOUT = 15.0
INTERVAL = 0.05


class _Poll:
    """One wait: its deadline, the last value seen, and the failure."""

    def __init__(self, timeout: float, what: str | Callable[[], str]):
        self.timeout, self.what = timeout, what
        self.deadline = time.monotonic() + timeout
        self.last: Any = None
        self.tries = 0

    def done(self, value: Any) -> bool:
        self.last, self.tries = value, self.tries + 1
        return bool(value)

    def over(self) -> bool:
        return time.monotonic() >= self.deadline

    def failure(self) -> AssertionError:
        what = self.what() if callable(self.what) else self.what
        seen = repr(self.last)
        if len(seen) > 2000:
            seen = seen[:2000] + "…"
        return AssertionError(f"timed out after {self.timeout:g}s ({self.tries} checks) waiting for {what}; "
                              f"last seen: {seen}")


def eventually(check: Callable[[], T], timeout: float = TIMEOUT, what: str | Callable[[], str] = "the condition",
               interval: float = INTERVAL) -> T:
    """Call ``check()`` until it returns something truthy; that value. An exception from ``check``
    is not retried: it is the test's failure. On timeout, AssertionError naming ``what`` (a string,
    or a function giving one at that moment) and the last value ``check`` returned."""
    poll = _Poll(timeout, what)
    while True:
        value = check()
        if poll.done(value):
            return value
        if poll.over():
            raise poll.failure()
        time.sleep(interval)


async def eventually_async(check: Callable[[], T | Awaitable[T]], timeout: float = TIMEOUT,
                           what: str | Callable[[], str] = "the condition", interval: float = INTERVAL) -> T:
    """``eventually`` on the running event loop: ``check`` may return an awaitable (a coroutine
    function's call), which is awaited; between checks the loop runs."""
    poll = _Poll(timeout, what)
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if poll.done(value):
            return value
        if poll.over():
            raise poll.failure()
        await asyncio.sleep(interval)


def keys(prefix: str = RedisConfig.key_prefix) -> Callable[..., str]:
    """``Store.key`` for ``[redis] key_prefix = prefix``: ``keys()("conv", "1")`` is the key the store
    reads conversation 1 from. The client is never connected: only the key layout is used."""
    return Store(aioredis.Redis(), prefix).key


def slack_agents(*users: str, admins: tuple[str, ...] = (), extra: dict[str, str] | None = None) -> str:
    """``[[agents]]`` tables for Slack users, each agent's id its Slack user id; ``admins`` are admins too,
    ``extra`` adds a line to an agent's table (``{"UAGENT2": "max_active = 1"}``)."""
    tables = []
    for user in (*users, *admins):
        lines = ["[[agents]]", f'id = "{user}"', f'slack = "{user}"']
        if user in admins:
            lines.append("admin = true")
        if extra and user in extra:
            lines.append(extra[user])
        tables.append("\n".join(lines))
    return "\n" + "\n".join(tables) + "\n"
