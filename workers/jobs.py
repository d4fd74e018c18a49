"""The RQ jobs: deliver to customers, deliver to consoles, fire due timers.

The state machine queues them (``gateway/jobs.py``). Each delivery job drains
one outbox in order (see ``outbox.py``). A failed send stays at the head of its
outbox and the job raises, so RQ retries it with backoff; on the last attempt,
or for an error no retry can fix, the message is marked failed in the history
and the agents are told.
"""

from __future__ import annotations

import logging

from rq import get_current_job

# Imported once, when the worker loads the jobs, not in each job.
from chatgate.compose import connect
from gateway.events import AgentEvent
from gateway.message import OutboundMessage
from gateway.ports import DeliveryError
from gateway.services import Services

from .context import current
from .outbox import drain
from .timers import fire_due

__all__ = ["deliver_to_customer", "deliver_to_console", "fire_timers"]

log = logging.getLogger(__name__)


def _last_attempt() -> bool:
    job = get_current_job()
    return job is None or not job.retries_left


def _run(work) -> None:
    # ``connect`` is looked up here, at run time: a test may swap in its own channels and consoles.
    current().run(work, connect)


def deliver_to_customer(channel: str, customer_id: str) -> None:
    """Send the customer's queued messages, in order."""

    async def work(services: Services) -> None:
        connector = services.channels.get(channel)

        async def send(item: bytes, maybe_sent: bool) -> None:
            message = OutboundMessage.from_json(item)
            record = services.conversations.record_delivery
            if maybe_sent and await _already_sent(connector, message):
                log.info("message %s/%s is already with %s; not sending it again",
                         message.conversation_id, message.seq, channel)
                return
            try:
                if connector is None:
                    raise DeliveryError(f"no enabled channel sends to {channel!r}", permanent=True)
                ref = await connector.send(message)
            except DeliveryError as exc:
                if exc.opted_out:
                    # The platform knows they unsubscribed: refuse the agents' next replies at once.
                    await services.conversations.set_opt_out(channel, customer_id, True)
                if exc.permanent or _last_attempt():
                    log.warning("giving up on a message to %s %s: %s", channel, customer_id, exc)
                    reason = str(exc)
                    await services.store.through_outage(
                        lambda: record(message.conversation_id, message.seq, "failed", reason))
                    return
                raise
            # The platform has it: record that even through a Redis outage.
            await services.store.through_outage(lambda: record(message.conversation_id, message.seq, "sent", ref))

        await drain(services.store, services.store.customer_outbox(channel, customer_id), send)

    _run(work)


async def _already_sent(connector, message: OutboundMessage) -> bool:
    # Only a channel whose platform can be asked has ``already_sent``.
    check = getattr(connector, "already_sent", None)
    return bool(check and await check(message))


def deliver_to_console(console_name: str, conversation_id: str) -> None:
    """Show the conversation's queued events in one console, in order."""

    async def work(services: Services) -> None:
        console = services.consoles.get(console_name)
        delivered: list[AgentEvent] = []

        async def send(item: bytes, maybe_sent: bool) -> None:
            event = AgentEvent.from_json(item)
            if console is not None:
                check = getattr(console, "already_delivered", None)
                if maybe_sent and check is not None and await check(event, services):
                    log.info("%s already shows %s of chat %s; not posting it again",
                             console_name, event.kind.value, conversation_id)
                    delivered.append(event)
                    return
                try:
                    await console.deliver(event, services)
                except DeliveryError as exc:
                    if exc.permanent or _last_attempt():
                        log.error("dropping a %s update for chat %s: %s", console_name, conversation_id, exc)
                        return
                    raise
            delivered.append(event)

        await drain(services.store, services.store.console_outbox(console_name, conversation_id), send)
        if console is not None and delivered:
            await console.delivered(conversation_id, delivered, services)

    _run(work)


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
