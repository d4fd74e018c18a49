"""The RQ jobs: deliver to customers, deliver to consoles, close resolved chats, console tasks.

Each delivery job drains one outbox in order (see ``outbox.py``). A failed send
stays at the head of its outbox and the job raises, so RQ retries it with
backoff; on the last attempt, or for an error no retry can fix, the message is
marked failed in the history and the agents are told.
"""

from __future__ import annotations

import asyncio
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

__all__ = ["deliver_to_customer", "deliver_to_console", "close_resolved", "offer_to_everyone", "console_task",
           "tell_queue_positions", "open_to_all", "escalate"]

log = logging.getLogger(__name__)


def _last_attempt() -> bool:
    job = get_current_job()
    return job is None or not job.retries_left


def _run(work) -> None:
    context = current()

    async def main() -> None:
        services = connect(context.config, context.redis_url)
        try:
            await work(services)
        finally:
            await services.close()

    asyncio.run(main())


def deliver_to_customer(channel: str, customer_id: str) -> None:
    """Send the customer's queued messages, in order."""

    async def work(services: Services) -> None:
        connector = services.channels.get(channel)

        async def send(item: bytes) -> None:
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
                if exc.permanent or _last_attempt():
                    log.warning("giving up on a message to %s %s: %s", channel, customer_id, exc)
                    reason = str(exc)
                    await services.store.through_outage(
                        lambda: record(message.conversation_id, message.seq, "failed", reason))
                    return
                raise
            # The platform has it: record that even through a Redis outage, or a retry resends it.
            await services.store.through_outage(lambda: record(message.conversation_id, message.seq, "sent", ref))

        await drain(services.store, services.store.customer_outbox(channel, customer_id), send)

    _run(work)


def deliver_to_console(console_name: str, conversation_id: str) -> None:
    """Show the conversation's queued events in one console, in order."""

    async def work(services: Services) -> None:
        console = services.consoles.get(console_name)
        delivered: list[AgentEvent] = []

        async def send(item: bytes) -> None:
            event = AgentEvent.from_json(item)
            if console is not None:
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


def console_task(console_name: str, task: str, args: list[str]) -> None:
    """A console's own job (the Slack App Home refresh, say)."""

    async def work(services: Services) -> None:
        console = services.consoles.get(console_name)
        if console is not None:
            await console.run_task(task, args, services)

    _run(work)


def close_resolved(conversation_id: str, token: str) -> None:
    """The auto-close: close the chat if it is still resolved since ``token``."""

    async def work(services: Services) -> None:
        closed = await services.conversations.auto_close(conversation_id, token)
        log.info("auto-close of chat %s: %s", conversation_id, "closed" if closed else "not needed")

    _run(work)


def offer_to_everyone(conversation_id: str) -> None:
    """The end of a returning customer's head start: the chat is offered to all agents if still new."""

    async def work(services: Services) -> None:
        offered = await services.conversations.offer(conversation_id)
        log.info("head start of chat %s over: %s", conversation_id, "offered to everyone" if offered else "not needed")

    _run(work)


# --- desk (issue 11) ---
def tell_queue_positions() -> None:
    """Waiting customers who moved up in the queue hear their new place (one pass, coalesced)."""
    from .dispatch import QUEUE_POSITIONS_PENDING

    async def work(services: Services) -> None:
        # Cleared first: a chat leaving the Inbox from now on asks for a pass of its own.
        await services.store.redis.delete(QUEUE_POSITIONS_PENDING)
        told = await services.conversations.tell_queue_positions()
        log.info("queue positions: %d customers told", told)

    _run(work)
# --- end desk ---


# --- issue 11 routing ---------------------------------------------------------------------

def open_to_all(conversation_id: str) -> None:
    """The topic team's wait is over: the chat is offered to everyone if still new."""

    async def work(services: Services) -> None:
        opened = await services.conversations.open_to_all(conversation_id)
        log.info("topic team wait of chat %s over: %s", conversation_id,
                 "offered to everyone" if opened else "not needed")

    _run(work)


def escalate(conversation_id: str) -> None:
    """First-response SLA: escalate the chat if it still waits for Accept (the next one is scheduled)."""

    async def work(services: Services) -> None:
        count = await services.conversations.escalate(conversation_id)
        log.info("SLA check of chat %s: %s", conversation_id, f"escalation {count}" if count else "not needed")

    _run(work)
