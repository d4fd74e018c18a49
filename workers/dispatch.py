"""Hands work from the core to the RQ workers.

RQ and its Redis client are synchronous, so every enqueue runs in a thread and
never blocks the web server's event loop.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import datetime, timedelta, timezone
from typing import Sequence

from redis import Redis
from rq import Queue, Retry
from rq.job import Job

from gateway.config import DeliveryConfig

__all__ = ["RQDispatch", "QUEUE_NAME"]

QUEUE_NAME = "chatgate"

# The jobs, by dotted path: RQ imports them in the worker, so nothing here imports them.
_DELIVER_TO_CONSOLE = "workers.jobs.deliver_to_console"
_DELIVER_TO_CUSTOMER = "workers.jobs.deliver_to_customer"
_CLOSE_RESOLVED = "workers.jobs.close_resolved"
_OFFER_TO_EVERYONE = "workers.jobs.offer_to_everyone"
_CONSOLE_TASK = "workers.jobs.console_task"
_QUEUE_POSITIONS = "workers.jobs.tell_queue_positions"  # desk (issue 11)
# Set while a queue-position pass is queued: later requests ride on it (desk, issue 11).
QUEUE_POSITIONS_PENDING = "chatgate:queue-positions-pending"
_OPEN_TO_ALL = "workers.jobs.open_to_all"  # issue 11 routing
_ESCALATE = "workers.jobs.escalate"  # issue 11 routing


def _auto_close_id(conversation_id: str) -> str:
    return f"chatgate-auto-close-{conversation_id}"


class RQDispatch:
    """The core's ``Dispatch``: each outbox with new items gets a drain job."""

    def __init__(self, connection: Redis, delivery: DeliveryConfig, consoles: Sequence[str] = ()):
        self.connection = connection
        # Each conversation has one outbox per console, each drained by its own job.
        self.consoles = tuple(consoles)
        self.queue = Queue(QUEUE_NAME, connection=connection)
        self.retry = Retry(max=len(delivery.retry_intervals), interval=list(delivery.retry_intervals))
        self.timeout = int(delivery.timeout * 4 + 60)

    def _enqueue_all(self, conversations: tuple[str, ...], customers: tuple[tuple[str, str], ...],
                     cancel_auto_close: tuple[str, ...], outboxes: tuple[tuple[str, str], ...] = ()) -> None:
        # One pipeline, so storing a webhook's message costs one Lua call plus
        # one round trip here, whatever it triggers.
        with self.connection.pipeline() as pipe:
            options = dict(retry=self.retry, job_timeout=self.timeout, result_ttl=60,
                           failure_ttl=7 * 24 * 3600, pipeline=pipe)
            for conversation_id in conversations:
                for console in self.consoles:
                    self.queue.enqueue(_DELIVER_TO_CONSOLE, console, conversation_id, **options)
            for console, conversation_id in outboxes:
                self.queue.enqueue(_DELIVER_TO_CONSOLE, console, conversation_id, **options)
            for channel, customer_id in customers:
                self.queue.enqueue(_DELIVER_TO_CUSTOMER, channel, customer_id, **options)
            for conversation_id in cancel_auto_close:
                job_id = _auto_close_id(conversation_id)
                self.queue.scheduled_job_registry.remove(job_id, pipeline=pipe)
                pipe.delete(Job.key_for(job_id))
            pipe.execute()

    async def enqueue(self, conversations: tuple[str, ...] = (), customers: tuple[tuple[str, str], ...] = (),
                      cancel_auto_close: tuple[str, ...] = (), outboxes: tuple[tuple[str, str], ...] = ()) -> None:
        """Drain jobs for these conversations' console outboxes (or single ``(console, conversation)``
        outboxes) and customers' outboxes, and auto-close cancellations, in one round trip."""
        await asyncio.to_thread(self._enqueue_all, conversations, customers, cancel_auto_close, outboxes)

    async def to_customer(self, channel: str, customer_id: str) -> None:
        await self.enqueue(customers=((channel, customer_id),))

    async def to_consoles(self, conversation_id: str) -> None:
        await self.enqueue(conversations=(conversation_id,))

    async def auto_close(self, conversation_id: str, token: str, delay: float) -> None:
        await asyncio.to_thread(
            self.queue.enqueue_in, timedelta(seconds=delay), _CLOSE_RESOLVED, conversation_id, token,
            job_id=_auto_close_id(conversation_id), retry=self.retry, result_ttl=60,
        )

    async def offer_later(self, conversation_id: str, delay: float) -> None:
        """Offer a returning customer's chat to everyone once its head start ends."""
        # RQ keeps schedule times in whole seconds, dropping the fraction: round up,
        # so the head start is never cut short.
        when = datetime.fromtimestamp(math.ceil(time.time() + delay), tz=timezone.utc)
        await asyncio.to_thread(
            self.queue.enqueue_at, when, _OFFER_TO_EVERYONE, conversation_id,
            job_id=f"chatgate-head-start-{conversation_id}", retry=self.retry, result_ttl=60,
        )

    # --- issue 11 routing -------------------------------------------------------------------

    def _at(self, delay: float) -> datetime:
        # RQ keeps schedule times in whole seconds: round up, never early.
        return datetime.fromtimestamp(math.ceil(time.time() + delay), tz=timezone.utc)

    async def open_to_all_later(self, conversation_id: str, delay: float) -> None:
        """Offer a topic team's chat to everyone once its wait ends (if nobody accepted)."""
        await asyncio.to_thread(
            self.queue.enqueue_at, self._at(delay), _OPEN_TO_ALL, conversation_id,
            job_id=f"chatgate-topic-fallback-{conversation_id}", retry=self.retry, result_ttl=60,
        )

    async def escalate_later(self, conversation_id: str, delay: float, count: int = 0) -> None:
        """The first-response SLA check of a new chat (the ``count``-th escalation), after ``delay``."""
        await asyncio.to_thread(
            self.queue.enqueue_at, self._at(delay), _ESCALATE, conversation_id,
            job_id=f"chatgate-sla-{conversation_id}-{count}", retry=self.retry, result_ttl=60,
        )

    # --- end issue 11 routing ---------------------------------------------------------------

    async def auto_close_many(self, pending: tuple[tuple[str, str], ...], delay: float) -> None:
        """Schedule the auto-close of several chats (conversation id, close token) in one round trip."""

        def schedule() -> None:
            with self.connection.pipeline() as pipe:
                for conversation_id, token in pending:
                    self.queue.enqueue_in(timedelta(seconds=delay), _CLOSE_RESOLVED, conversation_id, token,
                                          job_id=_auto_close_id(conversation_id), retry=self.retry,
                                          result_ttl=60, pipeline=pipe)
                pipe.execute()

        await asyncio.to_thread(schedule)

    async def console_task(self, console: str, task: str, args: Sequence[str] = (), delay: float = 0.0) -> None:
        """Run a console's own job (``Console.run_task``) now or in ``delay`` seconds; no retries:
        such tasks reschedule themselves."""
        if delay <= 0:
            await asyncio.to_thread(self.queue.enqueue, _CONSOLE_TASK, console, task, list(args),
                                    result_ttl=60, failure_ttl=3600)
            return
        await asyncio.to_thread(self.queue.enqueue_in, timedelta(seconds=delay), _CONSOLE_TASK, console, task,
                                list(args), result_ttl=60, failure_ttl=3600)

    # --- desk (issue 11) ---
    async def queue_positions(self) -> None:
        """One pass over the Inbox soon (``Conversations.tell_queue_positions``); requests made while one
        is queued and not started yet are served by it."""

        def enqueue() -> None:
            if self.connection.set(QUEUE_POSITIONS_PENDING, "1", nx=True, ex=60):
                self.queue.enqueue(_QUEUE_POSITIONS, result_ttl=60, failure_ttl=3600)

        await asyncio.to_thread(enqueue)
    # --- end desk ---

    async def cancel_auto_close(self, conversation_id: str) -> None:
        # The close token in the store already makes a stale job harmless; this
        # just keeps the scheduled registry clean.
        await self.enqueue(cancel_auto_close=(conversation_id,))
