"""Hands work from the core to the RQ workers.

RQ and its Redis client are synchronous, so every enqueue runs in a thread and
never blocks the web server's event loop.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job

from gateway.config import DeliveryConfig

from . import jobs

__all__ = ["RQDispatch", "QUEUE_NAME"]

QUEUE_NAME = "chatgate"


def _auto_close_id(conversation_id: str) -> str:
    return f"chatgate-auto-close-{conversation_id}"


class RQDispatch:
    """The core's ``Dispatch``: each outbox with new items gets a drain job."""

    def __init__(self, connection: Redis, delivery: DeliveryConfig):
        self.connection = connection
        self.queue = Queue(QUEUE_NAME, connection=connection)
        self.retry = Retry(max=len(delivery.retry_intervals), interval=list(delivery.retry_intervals))
        self.timeout = int(delivery.timeout * 4 + 60)

    def _enqueue(self, func, *args) -> None:
        self.queue.enqueue(func, *args, retry=self.retry, job_timeout=self.timeout,
                           result_ttl=60, failure_ttl=7 * 24 * 3600)

    async def to_customer(self, channel: str, customer_id: str) -> None:
        await asyncio.to_thread(self._enqueue, jobs.deliver_to_customer, channel, customer_id)

    async def to_agents(self, conversation_id: str) -> None:
        await asyncio.to_thread(self._enqueue, jobs.deliver_to_agents, conversation_id)

    async def auto_close(self, conversation_id: str, token: str, delay: float) -> None:
        await asyncio.to_thread(
            self.queue.enqueue_in, timedelta(seconds=delay), jobs.close_resolved, conversation_id, token,
            job_id=_auto_close_id(conversation_id), retry=self.retry, result_ttl=60,
        )

    async def cancel_auto_close(self, conversation_id: str) -> None:
        def cancel() -> None:
            try:
                Job.fetch(_auto_close_id(conversation_id), connection=self.connection).delete()
            except NoSuchJobError:
                pass

        # The close token in the store already makes a stale job harmless; this
        # just keeps the scheduled registry clean.
        await asyncio.to_thread(cancel)
