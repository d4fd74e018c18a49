"""Slack: chat cards with buttons in a channel, one thread per conversation, and the App Home."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Sequence

from aiohttp import web

from gateway.events import AgentEvent
from gateway.message import File, Refused
from gateway.refusals import render
from gateway.hosts import check_host
from gateway.pacing import Pacer
from gateway.ports import Console, DeliveryError, Runtime
from gateway.team import Role

from .config import SlackConfig, load_config
from .deliver import already_delivered, client, deliver_event
from .refs import slack_refs
from .team import SlackGroups, mention

if TYPE_CHECKING:
    from gateway.services import Services

__all__ = ["SlackConsole", "SlackConfig"]

log = logging.getLogger(__name__)

# Slack's own words for some refusals: where to add someone to the team, here.
SLACK_WORDS = {
    "not_agent": "You are not on the support team in chatgate, so you cannot work on chats. "
                 "Ask an admin to add you ([[agents]] in the config, or slack.agent_group).",
}


class SlackConsole(Console[SlackConfig]):
    """The Slack console: ``POST /slack/events`` (or Socket Mode) in, Web API out."""

    section = "slack"
    name = "slack"
    load_config = staticmethod(load_config)
    refs = staticmethod(slack_refs)

    def __init__(self, config: SlackConfig, runtime: Runtime):
        super().__init__(config, runtime)
        self.web = client(config)
        self.groups = SlackGroups(config, self.web)
        # Posts per channel are paced in Redis, shared with every other process (slack.post_rate).
        self.pacer = Pacer.for_store(runtime.store)

    # Slack user groups vouch for their members (``Console.role``).
    @property
    def declares_members(self) -> bool:
        return self.groups.declares_members

    async def role(self, agent_id: str) -> Role:
        return await self.groups.role(agent_id)

    async def group_members(self, group: str) -> frozenset[str]:
        """The agents in a topic's ``group`` (a user group id, cached): the agent linked to each Slack user
        in ``[[agents]]``, else the user id itself (a group member is an agent by that id)."""
        linked = {agent.identities["slack"]: agent.id for agent in self.runtime.config.agents
                  if agent.identities.get("slack")}
        return frozenset(linked.get(user, user) for user in await self.groups._members(group))

    def mount(self, app: web.Application, services: "Services") -> None:
        from .app import build, events_handler, socket_mode_handler

        bolt = build(self, services)
        if self.config.signing_secret:
            app.router.add_post("/slack/events", events_handler(bolt, self.config.signing_secret))
        if self.config.socket_mode:
            sockets = []  # made on startup: its aiohttp session needs the running loop

            async def connect_socket(_app: web.Application) -> None:
                sockets.append(socket_mode_handler(bolt, self.config))
                await sockets[0].connect_async()

            async def close_socket(_app: web.Application) -> None:
                for socket in sockets:
                    await socket.close_async()

            app.on_startup.append(connect_socket)
            app.on_cleanup.append(close_socket)

    async def deliver(self, event: AgentEvent, services: "Services") -> None:
        if self.web.session is None or self.web.session.closed:
            # One connection pool for the process's lifetime (slack_sdk opens one per call otherwise).
            import aiohttp

            self.web.session = aiohttp.ClientSession()
        await deliver_event(self, event, services)

    async def aclose(self) -> None:
        """Close the Web API connections (the process is stopping)."""
        if self.web.session is not None:
            await self.web.session.close()
            self.web.session = None

    async def already_delivered(self, event: AgentEvent, services: "Services") -> bool:
        """Whether Slack already shows a message posted for ``event`` (its message metadata id): asked by a
        drainer that took over an outbox whose previous drainer died mid-send, so True means acknowledge the
        event without showing it again. A Slack error raises ``DeliveryError`` (the drainer retries)."""
        return await already_delivered(self, event, services)

    async def delivered(self, conversation_id: str, events: Sequence[AgentEvent], services: "Services") -> None:
        """Mark the App Homes showing this chat for a (debounced, paced) refresh."""
        from .home_refresh import HomePublisher

        try:
            publisher = HomePublisher(self, services)
            delay = await publisher.changed(conversation_id, events)
            if delay is not None:
                await services.conversations.console_task_later(self.name, "refresh_homes", delay=delay)
        except Exception:  # noqa: BLE001 - the events are delivered; a Home refresh must not redo them
            log.exception("marking App Homes for chat %s failed", conversation_id)

    async def run_task(self, task: str, args: Sequence[str], services: "Services") -> None:
        if task != "refresh_homes":
            raise ValueError(f"no Slack task {task!r}")
        from .home_refresh import HomePublisher

        delay = await HomePublisher(self, services).pump()
        if delay is not None:
            await services.conversations.console_task_later(self.name, "refresh_homes", delay=delay)

    async def open_file(self, attachment: dict) -> File:
        """A file an agent shared in Slack (its ``url_private``), downloaded with the bot token."""
        import aiohttp

        url = str(attachment.get("ref", ""))
        # The bot token goes to Slack's own file hosts only: a file elsewhere is not fetched at all.
        check_host(url, self.config.file_hosts, self.config.api_url, "the shared file", "slack.file_hosts")
        timeout = aiohttp.ClientTimeout(total=self.runtime.config.delivery.timeout)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async with session.get(url, headers={"Authorization": f"Bearer {self.config.bot_token}"}) as got:
                    if got.status >= 400:
                        raise DeliveryError(f"Slack refused the file download ({got.status})",
                                            permanent=400 <= got.status < 500 and got.status != 429)
                    if got.content_type == "text/html":
                        # Slack answers a login page, not the file, when the token may not read it.
                        raise DeliveryError("Slack did not give the file (the app needs the files:read scope)",
                                            permanent=True)
                    data = await got.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"Slack file download failed: {exc.__class__.__name__}") from None
        return File(data, str(attachment.get("name") or "file"), str(attachment.get("content_type") or ""))

    def refusal(self, refused: Refused, services: "Services") -> str:
        """The catalogue's sentence with agents as Slack mentions, in Slack's own words where it has them
        (``SLACK_WORDS``); one that names no one is the core's own (it may say more: which file, and why)."""
        if refused.code not in SLACK_WORDS and not refused.detail and refused.reason:
            return refused.reason
        return render(refused.code, refused.detail, who=lambda agent: mention(services.team, agent),
                      templates=SLACK_WORDS)
