"""The composition root: the only code that turns the config into concrete channels and consoles.

The web app, the worker and the CLI all build their ``Services`` here. The
registries below name every channel and console by dotted path (reading them
imports nothing): adding one is one line here. A test may pass its own classes
instead (``connect(..., channels=[...], consoles=[...])``).
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Callable, Iterable, Sequence

import redis.asyncio as aioredis

from gateway import config as config_module
from gateway import retention
from gateway.config import Config
from gateway.conversations import Conversations
from gateway.jobs import JobSettings
from gateway.media import Media, attach_sources
from gateway.message import ReplyWindow
from gateway.ports import Channel, Console, Runtime
from gateway.refs import Refs
from gateway.services import Services
from gateway.store import Store
from gateway.team import Agent, Team
from gateway.topics import Topics

__all__ = ["CHANNELS", "CONSOLES", "plugin", "channel_classes", "console_classes", "load_config", "connect",
           "plugin_refs", "run_retention"]

# Customer channels, by config section.
CHANNELS = {
    "telegram": "channels.telegram:Telegram",
    "twilio": "channels.twilio:Twilio",
    "webchat": "channels.webchat:WebChat",
}

# With no [[agents]] configured, the first admin: `chatgate run` prints a one-time sign-in link for them.
FIRST_ADMIN = Agent(id="admin", name="Admin", admin=True)

# Agent consoles, by config section.
CONSOLES = {
    "slack": "agent_console.slack:SlackConsole",
    "web": "agent_console.web:WebConsole",
}


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def plugin(section: str) -> Any:
    """The channel or console class that reads the table ``section``."""
    return _load({**CHANNELS, **CONSOLES}[section])


def channel_classes() -> list[type[Channel]]:
    """Every registered channel class (all are imported: each checks its own config table)."""
    return [_load(path) for path in CHANNELS.values()]


def console_classes() -> list[type[Console]]:
    return [_load(path) for path in CONSOLES.values()]


def load_config(path: str | os.PathLike, extra: Iterable[Any] = ()) -> Config:
    """Load and check the file with every registered channel's and console's table (and ``extra`` ones)."""
    return config_module.load(path, plugins=[*channel_classes(), *console_classes(), *extra])


def job_settings(config: Config) -> JobSettings:
    """The RQ jobs' retries and timeout, from ``[delivery]``."""
    return JobSettings(retry_intervals=tuple(config.delivery.retry_intervals),
                       timeout=int(config.delivery.timeout * 4 + 60))


def connect(config: Config, redis_url: str, channels: Sequence[type[Channel]] | None = None,
            consoles: Sequence[type[Console]] | None = None, clock: Callable[[], float] | None = None) -> Services:
    """The core wired to Redis, the RQ workers and the channels and consoles the config enables."""
    channels = channel_classes() if channels is None else channels
    consoles = console_classes() if consoles is None else consoles
    # A burst of webhooks waits for a free connection rather than failing with "Too many connections".
    pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=64, timeout=30, health_check_interval=30)
    store = Store(aioredis.Redis(connection_pool=pool), config.redis.key_prefix, job_settings(config))
    media = Media(store, base_url=config.server.media_url)
    runtime = Runtime(config=config, store=store, media=media)
    built_channels: dict[str, Channel] = {}
    labels = {name: label for cls in channels for name, label in cls.labels.items()}
    for cls in channels:
        if config.enabled(cls.section):
            channel = cls(config.section(cls.section), runtime)
            built_channels.update({name: channel for name in cls.labels})
    built_consoles: dict[str, Console] = {cls.name: cls(config.section(cls.section), runtime)
                                          for cls in consoles if config.enabled(cls.section)}
    # Every console may vouch for members of its own groups (Slack user groups): ``Console.role``.
    sources = list(built_consoles.values())
    declares_members = bool(config.agents) or any(console.declares_members for console in sources)
    team = Team(config.agents or (FIRST_ADMIN,), sources, open_team=not declares_members)
    extra = {"clock": clock} if clock is not None else {}
    attach_sources(media, [*built_consoles.items(), *built_channels.items()])
    checks = {name: channel.check_attachment for name, channel in built_channels.items()}
    windows: dict[str, ReplyWindow] = {}
    for name, channel in built_channels.items():
        window = channel.reply_window(name)
        if window is not None:
            windows[name] = window
    conversations = Conversations(store, config.conversation, Topics.compile(config.topics), team,
                                  consoles=tuple(built_consoles), routing=config.routing, windows=windows,
                                  attachment_checks=checks, topic_rules=config.topics,
                                  hours=config.business_hours, saved_replies=config.saved_replies,
                                  **extra)
    return Services(config=config, redis_url=redis_url, store=store, conversations=conversations, team=team,
                    channels=built_channels, consoles=built_consoles, channel_labels=labels, media=media)


def plugin_refs(config: Config) -> list[Refs]:
    """What every registered channel and console keeps per conversation, enabled or not: one switched
    off since still left its refs behind."""
    return [cls.refs(config.section(cls.section)) for cls in [*channel_classes(), *console_classes()]]


async def run_retention(services: Services, now: float | None = None, limit: int | None = None) -> retention.Pass:
    """One retention pass (``gateway.retention.run``), told the plugins' refs and the consoles not enabled
    (their leftover outboxes go with the chats)."""
    return await retention.run(services, refs=plugin_refs(services.config),
                               stale_consoles=sorted(set(CONSOLES) - set(services.consoles)), now=now, limit=limit)
