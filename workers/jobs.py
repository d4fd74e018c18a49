"""The RQ jobs: deliver to customers, deliver to consoles, fire due timers.

The state machine queues them (``gateway/jobs.py``). ``drain_ready`` drains the
outboxes on the ready list, several at once (``ready.py``); each outbox is
drained in order (``outbox.py``). A failed send stays at the head of its outbox,
which is handed to a job of its own (``deliver_to_customer``,
``deliver_to_console``) that RQ retries with backoff; on the last attempt, or
for an error no retry can fix, the message is marked failed in the history and
the agents are told.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from rq import Queue, Retry, get_current_job

# Imported once, when the worker loads the jobs, not in each job.
from chatgate.compose import connect, job_settings
from gateway.jobs import QUEUE, SERIALIZER
from gateway.events import AgentEvent
from gateway.message import OutboundMessage
from gateway.ports import Channel, Console, DeliveryError
from gateway.services import Services

from . import ready
from .context import current
from .outbox import drain
from .timers import fire_due

__all__ = ["deliver_to_customer", "deliver_to_console", "drain_ready", "fire_timers", "retry_job"]

log = logging.getLogger(__name__)


def _last_attempt() -> bool:
    job = get_current_job()
    return job is None or not job.retries_left


def _run(work) -> None:
    # ``connect`` is looked up here, at run time: a test may swap in its own channels and consoles.
    current().run(work, connect)


def deliver_to_customer(channel: str, customer_id: str) -> None:
    """Send the customer's queued messages, in order (a retry, or a restart after a crash)."""
    _run(lambda services: drain_customer(services, channel, customer_id, _last_attempt()))


def deliver_to_console(console_name: str, conversation_id: str) -> None:
    """Show the conversation's queued events in one console, in order (a retry, or a restart)."""
    _run(lambda services: drain_console(services, console_name, conversation_id, _last_attempt()))


def drain_ready(_name: str = "ready") -> None:
    """Drain the outboxes on the ready list (``gateway/jobs.py``), several at once, for up to a second."""
    _run(lambda services: ready.drain_ready(services, drain_outbox, retry_later, queue_drainer))


async def queue_drainer() -> None:
    """Queue one more ``drain_ready`` job (its mark is set: see ``ready.py``)."""
    await asyncio.to_thread(retry_job, current().connection, current().config, "workers.jobs.drain_ready",
                            "ready", first=False)


async def drain_outbox(services: Services, outbox: str) -> None:
    """Drain one outbox from the ready list (a failure that a retry may fix raises)."""
    kind, name, subject = services.store.outbox_parts(outbox)
    if kind == "customer":
        await drain_customer(services, name, subject, last_attempt=False)
    elif kind == "console":
        await drain_console(services, name, subject, last_attempt=False)
    else:
        log.error("not an outbox: %r", outbox)


async def retry_later(services: Services, outbox: str) -> None:
    """Hand an outbox whose send failed to its own job, retried with the configured backoff."""
    kind, name, subject = services.store.outbox_parts(outbox)
    function = {"customer": "workers.jobs.deliver_to_customer", "console": "workers.jobs.deliver_to_console"}[kind]
    config = current().config
    await asyncio.to_thread(retry_job, current().connection, config, function, name, subject)


async def drain_customer(services: Services, channel: str, customer_id: str, last_attempt: bool) -> None:
    """Send the customer's queued messages in order; on the last attempt a failure is final."""
    connector: Channel | None = services.channels.get(channel)

    async def send(item: bytes, maybe_sent: bool) -> None:
        message = OutboundMessage.from_json(item)
        record = services.conversations.record_delivery
        try:
            if connector is None:
                raise DeliveryError(f"no enabled channel sends to {channel!r}", permanent=True)
            ref = await connector.send(message)
        except DeliveryError as exc:
            if exc.opted_out:
                # The platform knows they unsubscribed: refuse the agents' next replies at once.
                await services.conversations.set_opt_out(channel, customer_id, True)
            if exc.permanent or last_attempt:
                log.warning("giving up on a message to %s %s: %s", channel, customer_id, exc)
                reason = str(exc)
                await services.store.through_outage(
                    lambda: record(message.conversation_id, message.seq, "failed", reason))
                return
            raise
        # The platform has it: record that even through a Redis outage.
        await services.store.through_outage(lambda: record(message.conversation_id, message.seq, "sent", ref))

    await drain(services.store, services.store.customer_outbox(channel, customer_id), send)


async def drain_console(services: Services, console_name: str, conversation_id: str, last_attempt: bool) -> None:
    """Show the conversation's queued events in one console, in order; on the last attempt a failed
    update is dropped (logged)."""
    console: Console | None = services.consoles.get(console_name)
    delivered: list[AgentEvent] = []

    async def send(item: bytes, maybe_sent: bool) -> None:
        event = AgentEvent.from_json(item)
        if console is not None:
            if maybe_sent and await console.already_delivered(event, services):
                log.info("%s already shows %s of chat %s; not posting it again",
                         console_name, event.kind.value, conversation_id)
                delivered.append(event)
                return
            try:
                await console.deliver(event, services)
            except DeliveryError as exc:
                if exc.permanent or last_attempt:
                    log.error("dropping a %s update for chat %s: %s", console_name, conversation_id, exc)
                    return
                raise
        delivered.append(event)

    try:
        await drain(services.store, services.store.console_outbox(console_name, conversation_id), send)
    finally:
        if console is not None and delivered:
            await console.delivered(conversation_id, delivered, services)


def fire_timers(due: str) -> None:
    """Run the timers due now (auto-close, head start, topic wait, SLA, queue positions, console tasks).

    ``due`` is the second this wake-up was scheduled for, or "now"; every due timer runs, whichever.
    """

    async def work(services: Services) -> None:
        if due == "now":
            # Cleared before reading: a timer due from now on queues a firing of its own.
            await services.store.redis.delete(services.store.key("timers", "now"))
        fired = await fire_due(services)
        log.info("timers due at %s: %d acted", due, fired)

    _run(work)


def retry_job(connection, config, function: str, *args: str, first: bool = True) -> None:
    """Queue ``function(*args)`` (a drain of one outbox) with the configured backoff: after the first
    interval when ``first`` (its first attempt already failed), else at once with every retry."""
    settings = job_settings(config)
    intervals = list(settings.retry_intervals[1:] if first else settings.retry_intervals)
    queue = Queue(QUEUE, connection=connection, serializer=SERIALIZER)
    # rq annotates intervals as int but schedules them with timedelta(seconds=...): fractions of a
    # second work, and delivery.retry_intervals may hold them.
    retry = Retry(max=len(intervals), interval=intervals) if intervals else None  # type: ignore[arg-type]
    options = dict(retry=retry, job_timeout=settings.timeout, result_ttl=0, failure_ttl=7 * 24 * 3600)
    if first and settings.retry_intervals:
        queue.enqueue_in(timedelta(seconds=settings.retry_intervals[0]), function, *args, **options)
    else:
        queue.enqueue(function, *args, **options)
