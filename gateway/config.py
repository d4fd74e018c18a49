"""Configuration: one TOML file loaded once into frozen, typed objects.

Every problem is reported with the key, the file and what was expected, and
all problems are collected before anything is raised, so ``chatgate
check-config`` can list them in one go.

A string value of the form ``"env:NAME"`` is read from the environment
variable ``NAME``, so secrets need not live in the file.  Durations accept a
number of seconds or a string such as ``"90s"``, ``"15m"`` or ``"1h"``.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol

from .hours import DAYS, BusinessHours, parse_ranges
from .team import Agent

__all__ = [
    "Config",
    "ConfigError",
    "ConfigReader",
    "ServerConfig",
    "RedisConfig",
    "ConversationConfig",
    "RoutingConfig",
    "DeliveryConfig",
    "RetentionConfig",
    "MetricsConfig",
    "TopicRule",
    "Section",
    "load",
    "from_dict",
    "find_config_file",
    "url_setting",
]


class ConfigError(Exception):
    """The configuration file has one or more problems; ``problems`` lists them."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    # The URL the platforms reach us at (behind proxies); used for webhooks.
    public_url: str = "http://127.0.0.1:8080"
    # Where links to the files agents send point (``GET /media/<token>`` of this server), best on an
    # origin of their own, away from the web console; empty: under public_url.
    media_url: str = ""
    max_body_bytes: int = 1024 * 1024
    # Behind a proxy or load balancer that appends the client's address to X-Forwarded-For: every
    # per-IP limit (console sign-in, web chat) counts its last hop. Off: the connecting address.
    trust_forwarded_for: bool = False
    # Live streams (console and web chat together) one web process serves at most.
    max_streams: int = 5000


@dataclass(frozen=True)
class RedisConfig:
    # Empty: chatgate starts its own server with its data under data_dir.
    url: str = ""
    data_dir: str = "data"
    # All keys share one hash tag so a Redis Cluster keeps them in one slot,
    # which lets the Lua transitions touch several keys atomically.
    key_prefix: str = "chatgate"


@dataclass(frozen=True)
class ConversationConfig:
    auto_close: bool = True
    auto_close_after: float = 15 * 60.0
    rating_question: str = (
        "Your chat has been resolved. How would you rate our help from 1 (poor) to 5 (excellent)?"
    )
    rating_thanks: str = "Thank you for your rating!"


@dataclass(frozen=True)
class RoutingConfig:
    # A returning customer's previous agent gets the new chat alone this long
    # before it is offered to everyone (0: offered to everyone at once).
    returning_head_start: float = 60.0
    # Tell a waiting customer their place in the Inbox (and today's typical wait) on their
    # first message, and again each time it improved by queue_position_step places.
    queue_position: bool = False
    queue_position_step: int = 3
    queue_position_message: str = "You are number {position} in the queue. Typical wait today: {wait}."
    queue_position_message_no_wait: str = "You are number {position} in the queue."
    # A chat whose topic team accepted nothing this long is offered to everyone (0: never).
    topic_fallback_after: float = 120.0
    # Active chats an agent may hold at once (0: unlimited); ``[[agents]] max_active`` overrides it.
    max_active_per_agent: int = 0
    # A new chat waiting this long without Accept is escalated (0: never), again every ``sla_repeat``.
    sla_first_response: float = 0.0
    sla_repeat: float = 300.0


@dataclass(frozen=True)
class DeliveryConfig:
    # Backoff between attempts; its length is the number of retries.
    retry_intervals: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 600.0)
    timeout: float = 30.0
    # An outbox left with messages and no worker draining it this long (its
    # worker died) is drained again.
    recovery_after: float = 60.0


@dataclass(frozen=True)
class RetentionConfig:
    # Closed conversations older than this are exported to export_dir and removed from
    # Redis (gateway/retention.py); 0 keeps them forever.
    closed_after: float = 30 * 86400.0
    # One JSON Lines file per UTC day; "" is <redis.data_dir>/exports.
    export_dir: str = ""


@dataclass(frozen=True)
class MetricsConfig:
    # ``GET /metrics`` (and /healthz's details) need ``Authorization: Bearer <token>``; empty: /metrics
    # is open to anyone who reaches the server (keep it off the public internet) and /healthz says
    # only ok or not.
    token: str = ""


@dataclass(frozen=True)
class TopicRule:
    name: str
    keywords: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    # The topic's team: agent ids and/or a group.
    agents: tuple[str, ...] = ()
    group: str = ""


@dataclass(frozen=True)
class SavedReplyConfig:
    name: str
    text: str


# The variables a saved reply may use.
SAVED_REPLY_VARIABLES = ("customer_name", "agent_name")


@dataclass(frozen=True)
class Config:
    path: str = "<defaults>"
    server: ServerConfig = field(default_factory=ServerConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    conversation: ConversationConfig = field(default_factory=ConversationConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    topics: tuple[TopicRule, ...] = ()
    agents: tuple[Agent, ...] = ()
    business_hours: BusinessHours = field(default_factory=BusinessHours)
    saved_replies: tuple[SavedReplyConfig, ...] = ()
    # Each channel's and console's own table, as its ``load_config`` read it.
    sections: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> Any:
        """The config object of the channel or console reading table ``name``."""
        return self.sections[name]

    def enabled(self, name: str) -> bool:
        section = self.sections.get(name)
        return bool(section is not None and section.enabled)


class Section(Protocol):
    """A channel or console class that reads a table of its own (see ``gateway.ports.Plugin``)."""

    # The table's name. Not a ClassVar: the plugins are classes, and a class object matches no ClassVar member.
    section: str

    @staticmethod
    def load_config(reader: "ConfigReader", /) -> Any: ...


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class ConfigReader:
    """Reads one table of the file, recording problems instead of raising."""

    def __init__(self, data: dict, path: str, problems: list[str], section: str = ""):
        self.data = data
        self.path = path
        self.problems = problems
        self.section = section
        self.seen: set[str] = set()
        # A disabled platform's missing secrets are no problem.
        self.env_required = True

    def key(self, name: str) -> str:
        return f"{self.section}.{name}" if self.section else name

    def problem(self, name: str, expected: str, got: Any = None) -> None:
        # One problem per key: the first one says the most (a missing env var, say).
        prefix = f"{self.path}: {self.key(name)}: "
        if any(p.startswith(prefix) for p in self.problems):
            return
        got_text = "" if got is None else f", got {got!r}"
        self.problems.append(f"{self.path}: {self.key(name)}: expected {expected}{got_text}")

    def _raw(self, name: str) -> Any:
        self.seen.add(name)
        return self.data.get(name)

    def string(self, name: str, default: str) -> str:
        value = self._raw(name)
        if value is None:
            return default
        if not isinstance(value, str):
            self.problem(name, "a string", value)
            return default
        if value.startswith("env:"):
            var = value[4:]
            if var not in os.environ:
                if not self.env_required:
                    return default
                self.problem(name, f"environment variable {var} to be set (the value says {value!r})")
                return default
            return os.environ[var]
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self._raw(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(name, "true or false", value)
            return default
        return value

    def integer(self, name: str, default: int, minimum: int = 0) -> int:
        value = self._raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.problem(name, f"a whole number >= {minimum}", value)
            return default
        return value

    def duration(self, name: str, default: float) -> float:
        value = self._raw(name)
        if value is None:
            return default
        seconds = parse_duration(value)
        if seconds is None:
            self.problem(name, 'a duration: seconds as a number, or a string like "90s", "15m", "1h"', value)
            return default
        return seconds

    def durations(self, name: str, default: tuple[float, ...]) -> tuple[float, ...]:
        value = self._raw(name)
        if value is None:
            return default
        if not isinstance(value, list) or not value:
            self.problem(name, "a non-empty list of durations", value)
            return default
        parsed = [parse_duration(v) for v in value]
        if any(p is None for p in parsed):
            self.problem(name, 'a list of durations (seconds, or strings like "5s", "2m")', value)
            return default
        return tuple(parsed)  # type: ignore[arg-type]

    def strings(self, name: str) -> tuple[str, ...]:
        value = self._raw(name)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.problem(name, "a list of non-empty strings", value)
            return ()
        return tuple(value)

    def table(self, name: str) -> "ConfigReader":
        value = self._raw(name)
        if value is None:
            value = {}
        elif not isinstance(value, dict):
            self.problem(name, "a table", value)
            value = {}
        return ConfigReader(value, self.path, self.problems, self.key(name))

    def unknown_keys(self, known: set[str]) -> None:
        for name in self.data:
            if name not in known:
                self.problems.append(
                    f"{self.path}: {self.key(name)}: unknown key (expected one of: {', '.join(sorted(known))})"
                )


def parse_duration(value: Any) -> float | None:
    """Seconds for a number or a string like ``"15m"``; None when unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value >= 0 else None
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return None


def url_setting(reader: ConfigReader, name: str, default: str) -> str:
    value = reader.string(name, default)
    if value and not re.match(r"^https?://[^/\s]+", value):
        reader.problem(name, "an http:// or https:// URL", value)
        return default
    return value


def _base_url(reader: ConfigReader, name: str) -> str:
    """An optional base URL (scheme and host, maybe a port and path; no query, fragment or user); "" when unset."""
    from urllib.parse import urlsplit

    value = reader.string(name, "")
    if not value:
        return ""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        parts = None
    if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.query
            or parts.fragment or parts.username is not None or any(c.isspace() for c in value)):
        reader.problem(name, 'a base URL like "https://media.example.com" (http:// or https://, a host, '
                             "no query, fragment or user name)", value)
        return ""
    return value.rstrip("/")


def _tables(raw: Any, path: str, problems: list[str], name: str, each: str,
            expected: str) -> Iterator[ConfigReader]:
    """A reader for each table of an array of tables ``[[name]]``; problems for what is not one."""
    if raw is None:
        return
    if not isinstance(raw, list):
        problems.append(f"{path}: {name}: expected [[{name}]] tables{each}, got {raw!r}")
        return
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            problems.append(f"{path}: {name}[{index}]: expected a table {expected}")
            continue
        yield ConfigReader(item, path, problems, f"{name}[{index}]")


def _load_retention(t: ConfigReader, redis: RedisConfig) -> RetentionConfig:
    """The ``[retention]`` table; the export folder defaults to ``exports`` under ``redis.data_dir``."""
    closed_after = t.duration("closed_after", RetentionConfig.closed_after)
    export_dir = t.string("export_dir", "") or os.path.join(redis.data_dir, "exports")
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        t.problem("export_dir", "a folder (this path is a file)", export_dir)
    t.unknown_keys({"closed_after", "export_dir"})
    return RetentionConfig(closed_after=closed_after, export_dir=export_dir)


def _load_topics(raw: Any, path: str, problems: list[str]) -> tuple[TopicRule, ...]:
    rules = []
    for reader in _tables(raw, path, problems, "topics", "", "with name and keywords or patterns"):
        name = reader.string("name", "")
        if not name:
            reader.problem("name", "a non-empty topic name")
        keywords = reader.strings("keywords")
        patterns = reader.strings("patterns")
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                reader.problem("patterns", f"valid regular expressions ({pattern!r}: {exc})")
        if not keywords and not patterns:
            reader.problem("keywords", "at least one keyword or pattern for this topic")
        if "slack_channel" in reader.data:
            # Where a console shows a topic's chats is that console's own setting.
            moved = f'{name or "<topic>"} = "{reader.data["slack_channel"]}"'
            reader.problem("slack_channel", f"nothing here: it moved to [slack] topic_channels = {{ {moved} }}")
        team_agents = reader.strings("agents")
        group = reader.string("group", "")
        if group and not re.match(r"^S[A-Z0-9]{2,}$", group):
            reader.problem("group", "a Slack user group id like S0123ABCD", group)
        reader.unknown_keys({"name", "keywords", "patterns", "slack_channel", "agents", "group"})
        if name:
            rules.append(TopicRule(name=name, keywords=keywords, patterns=patterns, agents=team_agents, group=group))
    return tuple(rules)


def _load_agents(raw: Any, path: str, problems: list[str]) -> tuple[Agent, ...]:
    agents: list[Agent] = []
    for reader in _tables(raw, path, problems, "agents", " with an id each",
                          "with id, name, admin, slack, password_hash"):
        agent_id = reader.string("id", "")
        if not re.match(r"^[A-Za-z0-9_.@-]{1,64}$", agent_id):
            reader.problem("id", "an agent id: 1-64 of A-Z a-z 0-9 _ . @ -", agent_id or None)
        elif any(agent.id == agent_id for agent in agents):
            reader.problem("id", "a different id for each agent (this one is used twice)", agent_id)
        slack = reader.string("slack", "")
        if slack and not re.match(r"^[UW][A-Z0-9]{2,}$", slack):
            reader.problem("slack", "a Slack user id like U0123ABCD", slack)
        password_hash = reader.string("password_hash", "")
        if password_hash and not password_hash.startswith("scrypt$"):
            reader.problem("password_hash", "a hash made by `chatgate hash-password` (scrypt$…)", "…")
        max_active = reader.integer("max_active", -1, minimum=0)  # -1: routing.max_active_per_agent
        reader.unknown_keys({"id", "name", "admin", "slack", "password_hash", "max_active"})
        identities = {"slack": slack} if slack else {}
        agents.append(Agent(id=agent_id, name=reader.string("name", ""), admin=reader.boolean("admin", False),
                            identities=identities, password_hash=password_hash,
                            max_active=None if max_active < 0 else max_active))
    return tuple(agents)


def _load_business_hours(b: ConfigReader, channel_names: set[str]) -> BusinessHours:
    """The ``[business_hours]`` table; no table (or no open day) means always open."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    from datetime import date

    default = BusinessHours()
    zone = b.string("timezone", default.timezone)
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        b.problem("timezone", 'an IANA time zone name like "Europe/Paris" or "America/New_York"', zone)
        zone = default.timezone
    week = {}
    for index, day in enumerate(DAYS):
        text = b.string(day, "")
        ranges = parse_ranges(text)
        if ranges is None:
            b.problem(day, 'opening hours like "09:00-17:00" or "09:00-12:30, 13:30-18:00" (24h, '
                           'ranges in order, not overlapping), or "closed"', text)
            ranges = ()
        if ranges:
            week[index] = ranges
    holidays = set()
    for text in b.strings("holidays"):
        try:
            holidays.add(date.fromisoformat(text))
        except ValueError:
            b.problem("holidays", 'dates like "2026-12-25"', text)
    away = b.string("away_message", default.away_message)
    away_messages = {}
    for name in list(b.data):
        if name.startswith("away_message_"):
            channel = name[len("away_message_"):]
            if channel_names and channel not in channel_names:
                b.seen.add(name)
                b.problem(name, f"away_message_<channel> for a known channel ({', '.join(sorted(channel_names))})")
                continue
            away_messages[channel] = b.string(name, away)
    hours = BusinessHours(
        timezone=zone, week=week, holidays=frozenset(holidays), away_message=away, away_messages=away_messages,
        pause_auto_close=b.boolean("pause_auto_close", default.pause_auto_close),
        pause_sla=b.boolean("pause_sla", default.pause_sla),
    )
    if b.data and not hours.enabled and any(day in b.data for day in DAYS):
        b.problem("monday", "at least one open day in the weekly schedule (or no [business_hours] table)")
    b.unknown_keys({"timezone", *DAYS, "holidays", "away_message", "pause_auto_close", "pause_sla",
                    *(name for name in b.data if name.startswith("away_message_"))})
    return hours


def _load_saved_replies(raw: Any, path: str, problems: list[str]) -> tuple[SavedReplyConfig, ...]:
    replies: list[SavedReplyConfig] = []
    for reader in _tables(raw, path, problems, "saved_replies", " with name and text", "with name and text"):
        name = reader.string("name", "").strip()
        text = reader.string("text", "")
        if not name or len(name) > 60:
            reader.problem("name", "a name of 1-60 characters")
        elif any(r.name.lower() == name.lower() for r in replies):
            reader.problem("name", "a different name for each saved reply (this one is used twice)", name)
        if not text.strip():
            reader.problem("text", "the reply's text")
        unknown = sorted(set(re.findall(r"\{([a-z_]+)\}", text)) - set(SAVED_REPLY_VARIABLES))
        if unknown:
            reader.problem("text", "only the variables {customer_name} and {agent_name}",
                           "{" + unknown[0] + "}")
        reader.unknown_keys({"name", "text"})
        if name and text.strip():
            replies.append(SavedReplyConfig(name=name, text=text))
    return tuple(replies)


def load(path: str | os.PathLike, plugins: Iterable[Section] = ()) -> Config:
    """Load and check the TOML file at ``path``; raise ConfigError listing every problem.

    ``plugins`` are the channels and consoles whose tables the file may hold.
    """
    path_text = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path_text}: cannot read the file ({exc.strerror})"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path_text}: not valid TOML ({exc})"]) from None
    return from_dict(data, path_text, plugins)


def from_dict(data: dict, path: str = "<dict>", plugins: Iterable[Section] = ()) -> Config:
    """Build a Config from already-parsed TOML data (used by load and by tests)."""
    plugins = tuple(plugins)
    problems: list[str] = []
    top = ConfigReader(data, path, problems)

    s = top.table("server")
    server = ServerConfig(
        host=s.string("host", ServerConfig.host),
        port=s.integer("port", ServerConfig.port, minimum=0),
        public_url=url_setting(s, "public_url", ServerConfig.public_url).rstrip("/"),
        media_url=_base_url(s, "media_url"),
        max_body_bytes=s.integer("max_body_bytes", ServerConfig.max_body_bytes, minimum=1024),
        trust_forwarded_for=s.boolean("trust_forwarded_for", ServerConfig.trust_forwarded_for),
        max_streams=s.integer("max_streams", ServerConfig.max_streams, minimum=1),
    )
    s.unknown_keys({"host", "port", "public_url", "media_url", "max_body_bytes", "trust_forwarded_for", "max_streams"})

    r = top.table("redis")
    redis = RedisConfig(
        url=r.string("url", RedisConfig.url),
        data_dir=r.string("data_dir", RedisConfig.data_dir),
        key_prefix=r.string("key_prefix", RedisConfig.key_prefix),
    )
    if redis.url and not re.match(r"^(redis|rediss|unix)://", redis.url):
        r.problem("url", "a redis://, rediss:// or unix:// URL, or empty for the embedded server", redis.url)
    if not re.match(r"^[A-Za-z0-9_.:-]+$", redis.key_prefix):
        r.problem("key_prefix", "letters, digits and _ . : - only", redis.key_prefix)
    r.unknown_keys({"url", "data_dir", "key_prefix"})

    sections = {}
    for plugin in plugins:
        sections[plugin.section] = plugin.load_config(top.table(plugin.section))

    c = top.table("conversation")
    conversation = ConversationConfig(
        auto_close=c.boolean("auto_close", ConversationConfig.auto_close),
        auto_close_after=c.duration("auto_close_after", ConversationConfig.auto_close_after),
        rating_question=c.string("rating_question", ConversationConfig.rating_question),
        rating_thanks=c.string("rating_thanks", ConversationConfig.rating_thanks),
    )
    c.unknown_keys({"auto_close", "auto_close_after", "rating_question", "rating_thanks"})

    d = top.table("delivery")
    delivery = DeliveryConfig(
        retry_intervals=d.durations("retry_intervals", DeliveryConfig.retry_intervals),
        timeout=d.duration("timeout", DeliveryConfig.timeout),
        recovery_after=d.duration("recovery_after", DeliveryConfig.recovery_after),
    )
    d.unknown_keys({"retry_intervals", "timeout", "recovery_after"})

    retention = _load_retention(top.table("retention"), redis)

    m = top.table("metrics")
    metrics = MetricsConfig(token=m.string("token", ""))
    if metrics.token and len(metrics.token) < 16:
        m.problem("token", 'a secret of at least 16 characters (or "env:NAME")', "…")
    m.unknown_keys({"token"})

    ro = top.table("routing")
    routing = RoutingConfig(
        returning_head_start=ro.duration("returning_head_start", RoutingConfig.returning_head_start),
        topic_fallback_after=ro.duration("topic_fallback_after", RoutingConfig.topic_fallback_after),
        max_active_per_agent=ro.integer("max_active_per_agent", RoutingConfig.max_active_per_agent, minimum=0),
        sla_first_response=ro.duration("sla_first_response", RoutingConfig.sla_first_response),
        sla_repeat=ro.duration("sla_repeat", RoutingConfig.sla_repeat),
        queue_position=ro.boolean("queue_position", RoutingConfig.queue_position),
        queue_position_step=ro.integer("queue_position_step", RoutingConfig.queue_position_step, minimum=1),
        queue_position_message=ro.string("queue_position_message", RoutingConfig.queue_position_message),
        queue_position_message_no_wait=ro.string("queue_position_message_no_wait",
                                                 RoutingConfig.queue_position_message_no_wait),
    )
    for name in ("queue_position_message", "queue_position_message_no_wait"):
        if "{position}" not in getattr(routing, name):
            ro.problem(name, "a message with {position} in it", getattr(routing, name))
    if routing.sla_first_response > 0 and routing.sla_repeat <= 0:
        ro.problem("sla_repeat", "a duration above zero (the escalation repeats at this interval)",
                   ro.data.get("sla_repeat"))
    ro.unknown_keys({"returning_head_start",
                     "queue_position", "queue_position_step", "queue_position_message", "queue_position_message_no_wait",
                     "topic_fallback_after", "max_active_per_agent", "sla_first_response", "sla_repeat"})

    topics = _load_topics(top._raw("topics"), path, problems)
    agents = _load_agents(top._raw("agents"), path, problems)
    # A topic's team names configured agents.
    known_agents = {agent.id for agent in agents}
    for index, rule in enumerate(topics):
        for member in rule.agents:
            if agents and member not in known_agents:
                problems.append(f"{path}: topics[{index}].agents: expected ids of [[agents]] "
                                f"({', '.join(sorted(known_agents))}), got {member!r}")
    channel_names = {name for plugin in plugins for name in getattr(plugin, "labels", {})}
    business_hours = _load_business_hours(top.table("business_hours"), channel_names)
    saved_replies = _load_saved_replies(top._raw("saved_replies"), path, problems)
    top.unknown_keys({"server", "redis", "conversation", "routing", "delivery", "retention", "metrics", "topics",
                      "agents",
                      "business_hours", "saved_replies",
                      *(plugin.section for plugin in plugins)})

    if problems:
        raise ConfigError(problems)
    return Config(
        path=path,
        server=server,
        redis=redis,
        conversation=conversation,
        routing=routing,
        delivery=delivery,
        retention=retention,
        metrics=metrics,
        topics=topics,
        agents=agents,
        business_hours=business_hours,
        saved_replies=saved_replies,
        sections=sections,
    )


def find_config_file(explicit: str | None = None) -> Path:
    """The file to use: the argument, $CHATGATE_CONFIG, ./config.toml, else the example."""
    if explicit:
        return Path(explicit)
    if os.environ.get("CHATGATE_CONFIG"):
        return Path(os.environ["CHATGATE_CONFIG"])
    if Path("config.toml").exists():
        return Path("config.toml")
    return Path("config.example.toml")
