"""The worker's configuration and long-lived state, made available to the jobs it runs.

RQ calls job functions with their arguments only; the worker puts its context
here before each job (like Flask's ``current_app``). The context keeps one event
loop and one ``Services`` (platform clients, HTTP sessions, Redis connections)
for the worker's lifetime: a job is a few milliseconds of I/O, and building
those per job cost more than the job.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Coroutine, TypeVar

from gateway.config import Config

__all__ = ["WorkerContext", "current", "current_context"]

T = TypeVar("T")


@dataclass
class WorkerContext:
    config: Config
    redis_url: str
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    services: Any = None
    _connection: Any = None
    # When this worker runs its next retention pass (time.monotonic()).
    retention_at: float = 0.0

    @property
    def connection(self) -> Any:
        """A synchronous Redis client (for RQ's own calls), made once."""
        if self._connection is None:
            from redis import Redis

            self._connection = Redis.from_url(self.redis_url)
        return self._connection

    def run(self, work: Callable[[Any], Coroutine[Any, Any, T]], connect: Callable[..., Any]) -> T:
        """Run ``work(services)`` on the worker's loop, building the services with ``connect`` once."""
        if self.services is None:
            self.services = connect(self.config, self.redis_url)
        task = self.loop.create_task(work(self.services))
        try:
            return self.loop.run_until_complete(task)
        except BaseException:
            # RQ's job timeout interrupts the loop from a signal handler: leave no half-run job behind.
            task.cancel()
            with contextlib.suppress(BaseException):
                self.loop.run_until_complete(task)
            raise

    def close(self) -> None:
        """Close the services and the loop (the worker is stopping)."""
        if self.services is not None:
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(self.services.close())
            self.services = None
        self.loop.close()


current_context: ContextVar[WorkerContext] = ContextVar("chatgate_worker_context")


def current() -> WorkerContext:
    """The running worker's context; RuntimeError outside a chatgate worker."""
    try:
        return current_context.get()
    except LookupError:
        raise RuntimeError("chatgate jobs run only in `chatgate worker`") from None
