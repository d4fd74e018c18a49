"""The RQ jobs: deliver to customers, deliver to agents, close resolved chats.

Each job drains one outbox in order (see ``outbox.py``). A failed send stays at
the head of its outbox and the job raises, so RQ retries it with backoff; on
the last attempt, or for an error no retry can fix, the message is marked
failed in the history and the agents are told.
"""

from __future__ import annotations

import asyncio
import logging

from rq import get_current_job

# Imported here, in the worker, rather than in each job: RQ forks a work horse
# per job, which then starts with these (slow to import) modules loaded.
from agent_console.slack.deliver import client, deliver_event
from agent_console.slack.home_refresh import HomePublisher
from agent_console.slack.team import Team
from channels import DeliveryError, telegram, twilio
from gateway.message import OutboundMessage
from gateway.services import Services, connect

from .context import current
from .outbox import drain

__all__ = ["deliver_to_customer", "deliver_to_agents", "close_resolved", "offer_to_everyone",
           "refresh_homes"]

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


async def _send_to_customer(services: Services, message: OutboundMessage) -> str:
    config = services.config
    if message.channel == telegram.CHANNEL:
        return await telegram.send(config.telegram, message)
    if message.channel in twilio.CHANNELS:
        return await twilio.send(config.twilio, config.server.public_url, message, services.store,
                                 timeout=config.delivery.timeout)
    raise DeliveryError(f"no connector for channel {message.channel!r}", permanent=True)


def deliver_to_customer(channel: str, customer_id: str) -> None:
    """Send the customer's queued messages, in order."""

    async def work(services: Services) -> None:
        async def send(item: bytes) -> None:
            message = OutboundMessage.from_json(item)
            record = services.conversations.record_delivery
            try:
                ref = await _send_to_customer(services, message)
            except DeliveryError as exc:
                if exc.opted_out:
                    # The platform knows they unsubscribed: refuse the agents' next replies at once.
                    await services.conversations.set_opt_out(channel, customer_id, True)
                if exc.permanent or _last_attempt():
                    log.warning("giving up on a message to %s %s: %s", channel, customer_id, exc)
                    await services.store.through_outage(
                        lambda: record(message.conversation_id, message.seq, "failed", str(exc)))
                    return
                raise
            # The platform has it: record that even through a Redis outage, or a retry resends it.
            await services.store.through_outage(lambda: record(message.conversation_id, message.seq, "sent", ref))

        await drain(services.store, services.store.customer_outbox(channel, customer_id), send)

    _run(work)


def deliver_to_agents(conversation_id: str) -> None:
    """Show the conversation's queued events in the agents' console, in order."""

    async def work(services: Services) -> None:
        slack = services.config.slack
        web = client(slack) if slack.enabled else None

        delivered: list[bytes] = []

        async def send(item: bytes) -> None:
            delivered.append(item)
            if web is None:
                return
            try:
                await deliver_event(web, services.store, slack, item,
                                    schedule_offer=services.conversations.dispatch.offer_later)
            except DeliveryError as exc:
                if exc.permanent or _last_attempt():
                    log.error("dropping a Slack update for chat %s: %s", conversation_id, exc)
                    return
                raise

        await drain(services.store, services.store.agent_outbox(conversation_id), send)
        if web is not None and delivered:
            await _refresh_homes_after(services, web, conversation_id, delivered)

    _run(work)


def _home_publisher(services: Services, web):
    return HomePublisher(services.config.slack, services.conversations, web, Team(services.config.slack, web))


async def _refresh_homes_after(services: Services, web, conversation_id: str, delivered: list[bytes]) -> None:
    """Mark the App Homes showing this chat for a (debounced, paced) refresh."""
    try:
        publisher = _home_publisher(services, web)
        delay = await publisher.changed(conversation_id, publisher.events(delivered))
        if delay is not None:
            await services.conversations.dispatch.refresh_homes(delay)
    except Exception:  # noqa: BLE001 - the events are delivered; a Home refresh must not redo them
        log.exception("marking App Homes for chat %s failed", conversation_id)


def refresh_homes() -> None:
    """The App Home pump: publish the Homes that are due, then run again when the next one is."""

    async def work(services: Services) -> None:
        if not services.config.slack.enabled:
            return
        delay = await _home_publisher(services, client(services.config.slack)).pump()
        if delay is not None:
            await services.conversations.dispatch.refresh_homes(delay)

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
