"""The ``[slack]`` table: the workspace, the channels of chat cards, how the App Home is refreshed,
the pace of posts, and the reaction shortcuts."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.config import ConfigReader, url_setting
from gateway.hosts import hosts_setting
from gateway.operations import controls
from gateway.pacing import rate_setting

__all__ = ["SlackConfig", "load_config"]


@dataclass(frozen=True)
class SlackConfig:
    enabled: bool = False
    bot_token: str = ""
    signing_secret: str = ""
    channel: str = ""
    api_url: str = "https://slack.com/api/"
    # Hosts a shared file (its url_private) may be on to be downloaded with the bot token: Slack serves
    # them from files.slack.com; api_url's origin is allowed too (gateway/hosts.py).
    file_hosts: tuple[str, ...] = ("files.slack.com",)
    # Members of these Slack user groups ("S…") are agents / admins, besides the
    # [[agents]] linked to a Slack user. With none of these, everyone is an agent.
    agent_group: str = ""
    admin_group: str = ""
    # Socket Mode (no public URL needed): an app-level token "xapp-…".
    socket_mode: bool = False
    app_token: str = ""
    # App Home refresh: at most one views.publish per agent per interval (bursts
    # coalesce), and at most this many per second for the workspace (Slack's
    # Tier 4 allows about 100 a minute).
    home_refresh_interval: float = 5.0
    home_publishes_per_second: int = 1
    # chat.postMessage per channel (cards, thread posts, DMs), shared by every process: Slack allows
    # about one message a second per channel, with short bursts. 0: no pacing.
    post_rate: float = 1.0
    post_burst: int = 4
    # Topic name -> the channel its chat cards go to instead of ``channel``.
    topic_channels: tuple[tuple[str, str], ...] = ()
    # A reaction on a chat card runs a control (emoji name -> operation).
    reactions: tuple[tuple[str, str], ...] = (("eyes", "accept"), ("white_check_mark", "resolve"))

    def topic_channel(self, topic: str) -> str:
        """Where a new chat card of ``topic`` goes: the topic's own channel, else ``channel``."""
        return dict(self.topic_channels).get(topic, self.channel)

    def card_channels(self) -> set[str]:
        """Every channel chat cards may be in."""
        return {self.channel, *(channel for _, channel in self.topic_channels)} - {""}


def load_config(sl: ConfigReader) -> SlackConfig:
    """Read and check the ``[slack]`` table."""
    sl.env_required = sl.boolean("enabled", SlackConfig.enabled)
    slack = SlackConfig(
        enabled=sl.env_required,
        bot_token=sl.string("bot_token", ""),
        signing_secret=sl.string("signing_secret", ""),
        channel=sl.string("channel", ""),
        api_url=url_setting(sl, "api_url", SlackConfig.api_url),
        file_hosts=hosts_setting(sl, "file_hosts", SlackConfig.file_hosts),
        agent_group=sl.string("agent_group", ""),
        admin_group=sl.string("admin_group", ""),
        socket_mode=sl.boolean("socket_mode", SlackConfig.socket_mode),
        app_token=sl.string("app_token", ""),
        home_refresh_interval=sl.duration("home_refresh_interval", SlackConfig.home_refresh_interval),
        home_publishes_per_second=sl.integer("home_publishes_per_second", SlackConfig.home_publishes_per_second,
                                             minimum=1),
        post_rate=rate_setting(sl, "post_rate", SlackConfig.post_rate),
        post_burst=sl.integer("post_burst", SlackConfig.post_burst, minimum=1),
        topic_channels=_topic_channels(sl.table("topic_channels")),
        reactions=_reactions(sl),
    )
    for name in ("agent_group", "admin_group"):
        value = getattr(slack, name)
        if value and not re.match(r"^S[A-Z0-9]{2,}$", value):
            sl.problem(name, "a Slack user group id like S0123ABCD", value)
    if slack.enabled:
        if not slack.bot_token.startswith("xoxb-"):
            sl.problem("bot_token", "a bot token starting with xoxb-")
        if not slack.signing_secret and not slack.socket_mode:
            sl.problem("signing_secret", "the app's signing secret (Basic Information page)")
        if slack.socket_mode and not slack.app_token.startswith("xapp-"):
            sl.problem("app_token", "an app-level token starting with xapp- (needed with socket_mode = true;"
                       " Basic Information > App-Level Tokens, scope connections:write)")
        if not slack.channel:
            sl.problem("channel", "the id of the channel where chat cards are posted, like C0123456789")
    for moved, where in (("agents", "[[agents]] tables with slack = \"U…\""),
                         ("admins", "[[agents]] tables with admin = true"),
                         ("returning_head_start", "[routing] returning_head_start")):
        if moved in sl.data:
            sl.seen.add(moved)
            sl.problem(moved, f"nothing here: this setting moved to {where}")
    sl.unknown_keys({"enabled", "bot_token", "signing_secret", "channel", "api_url", "file_hosts",
                     "agent_group", "admin_group", "agents", "admins", "returning_head_start",
                     "socket_mode", "app_token", "home_refresh_interval", "home_publishes_per_second",
                     "post_rate", "post_burst", "topic_channels", "reactions"})
    return slack


def _topic_channels(topics: ConfigReader) -> tuple[tuple[str, str], ...]:
    """``topic_channels = {billing = "C0BILLING"}``: each topic's own channel for its chat cards."""
    channels = []
    for topic in topics.data:
        channel = topics.string(topic, "")
        if not re.match(r"^[CG][A-Z0-9]{2,}$", channel):
            topics.problem(topic, "the id of the Slack channel for this topic's chat cards, like C0123456789",
                           channel)
        else:
            channels.append((topic, channel))
    return tuple(channels)


def reaction_operations() -> list[str]:
    """What a reaction may do: the declared controls that need no more than the chat and the agent."""
    return [op.name for op in controls() if op.asks_nothing]


def _reactions(sl: ConfigReader) -> tuple[tuple[str, str], ...]:
    """``reactions = {eyes = "accept", white_check_mark = "resolve"}``: emoji name (no colons) -> control."""
    raw = sl.data.get("reactions")
    sl.seen.add("reactions")
    if raw is None:
        return SlackConfig.reactions
    expected = ('a table of emoji names to controls, like {eyes = "accept", white_check_mark = "resolve"} '
                f"(controls: {', '.join(reaction_operations())})")
    if not isinstance(raw, dict) or not all(
            isinstance(v, str) and v in reaction_operations() and re.match(r"^[a-z0-9_+'-]+$", k)
            for k, v in raw.items()):
        sl.problem("reactions", expected, raw)
        return SlackConfig.reactions
    return tuple(raw.items())
