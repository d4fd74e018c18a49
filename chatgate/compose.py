"""The composition root: the only code that turns the config into concrete channels and consoles.

The web app, the worker and the CLI all build their ``Services`` here. The
registries below name every channel and console by dotted path (reading them
imports nothing): adding one is one line here. A test may pass its own classes
instead (``connect(..., channels=[...], consoles=[...])``).
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Iterable, Sequence

import redis.asyncio as aioredis

from gateway import config as config_module
from gateway.config import Config
from gateway.conversations import Conversations
from gateway.jobs import JobSettings
from gateway.media import Media, attach_sources
from gateway.ports import Runtime
from gateway.services import Services
from gateway.store import Store
from gateway.team import Agent, Team
from gateway.topics import Topics

__all__ = ["CHANNELS", "CONSOLES", "plugin", "channel_classes", "console_classes", "load_config", "connect"]

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


def channel_classes() -> list[Any]:
    """Every registered channel class (all are imported: each checks its own config table)."""
    return [_load(path) for path in CHANNELS.values()]


def console_classes() -> list[Any]:
    return [_load(path) for path in CONSOLES.values()]


def load_config(path: str | os.PathLike, extra: Iterable[Any] = ()) -> Config:
    """Load and check the file with every registered channel's and console's table (and ``extra`` ones)."""
    return config_module.load(path, plugins=[*channel_classes(), *console_classes(), *extra])


def job_settings(config: Config) -> JobSettings:
    """The RQ jobs' retries and timeout, from ``[delivery]``."""
    return JobSettings(retry_intervals=tuple(config.delivery.retry_intervals),
                       timeout=int(config.delivery.timeout * 4 + 60))


def connect(config: Config, redis_url: str, channels: Sequence[Any] | None = None,
            consoles: Sequence[Any] | None = None, clock=None) -> Services:
    """The core wired to Redis, the RQ workers and the channels and consoles the config enables."""
    channels = channel_classes() if channels is None else channels
    consoles = console_classes() if consoles is None else consoles
    # A burst of webhooks waits for a free connection rather than failing with "Too many connections".
    pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=64, timeout=30, health_check_interval=30)
    store = Store(aioredis.Redis(connection_pool=pool), config.redis.key_prefix, job_settings(config))
    media = Media(store)
    runtime = Runtime(config=config, store=store, media=media)
    built_channels = {}
    labels = {name: label for cls in channels for name, label in cls.labels.items()}
    for cls in channels:
        if config.enabled(cls.section):
            channel = cls(config.section(cls.section), runtime)
            built_channels.update({name: channel for name in cls.labels})
    built_consoles = {cls.name: cls(config.section(cls.section), runtime)
                      for cls in consoles if config.enabled(cls.section)}
    # Consoles that know members of their own groups (Slack user groups) vouch for them.
    sources = [console for console in built_consoles.values() if hasattr(console, "role")]
    declares_members = bool(config.agents) or any(getattr(s, "declares_members", False) for s in sources)
    team = Team(config.agents or (FIRST_ADMIN,), sources, open_team=not declares_members)
    extra = {"clock": clock} if clock is not None else {}
    attach_sources(media, [*built_consoles.items(), *built_channels.items()])
    checks = {name: channel.check_attachment for name, channel in built_channels.items()
              if hasattr(channel, "check_attachment")}
    windows = {}
    for name, channel in built_channels.items():
        window = channel.reply_window(name) if hasattr(channel, "reply_window") else None
        if window is not None:
            windows[name] = window
    conversations = Conversations(store, config.conversation, Topics.compile(config.topics), team,
                                  consoles=tuple(built_consoles), routing=config.routing, windows=windows,
                                  attachment_checks=checks, topic_rules=config.topics,
                                  hours=config.business_hours, saved_replies=config.saved_replies,  # desk
                                  **extra)
    return Services(config=config, redis_url=redis_url, store=store, conversations=conversations, team=team,
                    channels=built_channels, consoles=built_consoles, channel_labels=labels, media=media)
