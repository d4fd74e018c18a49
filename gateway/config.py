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
from typing import Any

__all__ = [
    "Config",
    "ConfigError",
    "ServerConfig",
    "RedisConfig",
    "TelegramConfig",
    "SlackConfig",
    "TwilioConfig",
    "ConversationConfig",
    "DeliveryConfig",
    "TopicRule",
    "load",
    "find_config_file",
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
    max_body_bytes: int = 1024 * 1024


@dataclass(frozen=True)
class RedisConfig:
    # Empty: chatgate starts its own server with its data under data_dir.
    url: str = ""
    data_dir: str = "data"
    # All keys share one hash tag so a Redis Cluster keeps them in one slot,
    # which lets the Lua transitions touch several keys atomically.
    key_prefix: str = "chatgate"


@dataclass(frozen=True)
class TelegramConfig:
    enabled: bool = False
    token: str = ""
    secret_token: str = ""
    api_url: str = "https://api.telegram.org/bot"
    greeting: str = "Hello! Write your question and one of our agents will answer shortly."


@dataclass(frozen=True)
class SlackConfig:
    enabled: bool = False
    bot_token: str = ""
    signing_secret: str = ""
    channel: str = ""
    api_url: str = "https://slack.com/api/"
    # Who may work chats (Slack user ids, or members of a user group id "S…").
    # With neither agents nor agent_group set, every workspace member is an agent.
    agents: tuple[str, ...] = ()
    agent_group: str = ""
    admins: tuple[str, ...] = ()
    admin_group: str = ""
    # A returning customer's previous agent gets the new chat alone this long.
    returning_head_start: float = 60.0
    # Socket Mode (no public URL needed): an app-level token "xapp-…".
    socket_mode: bool = False
    app_token: str = ""
    # App Home refresh: at most one views.publish per agent per interval (bursts
    # coalesce), and at most this many per second for the workspace (Slack's
    # Tier 4 allows about 100 a minute).
    home_refresh_interval: float = 5.0
    home_publishes_per_second: int = 1


@dataclass(frozen=True)
class TwilioConfig:
    enabled: bool = False
    account_sid: str = ""
    auth_token: str = ""
    api_url: str = "https://api.twilio.com"
    # Senders: an SMS number, a WhatsApp sender (E.164) and/or a Messaging Service.
    sms_from: str = ""
    whatsapp_from: str = ""
    messaging_service_sid: str = ""
    # Off only for local development: then anyone can post as Twilio.
    validate_signatures: bool = True


@dataclass(frozen=True)
class ConversationConfig:
    auto_close: bool = True
    auto_close_after: float = 15 * 60.0
    rating_question: str = (
        "Your chat has been resolved. How would you rate our help from 1 (poor) to 5 (excellent)?"
    )
    rating_thanks: str = "Thank you for your rating!"


@dataclass(frozen=True)
class DeliveryConfig:
    # Backoff between attempts; its length is the number of retries.
    retry_intervals: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 600.0)
    timeout: float = 30.0
    # An outbox left with messages and no worker draining it this long (its
    # worker died) is drained again.
    recovery_after: float = 60.0


@dataclass(frozen=True)
class TopicRule:
    name: str
    keywords: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    path: str = "<defaults>"
    server: ServerConfig = field(default_factory=ServerConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    telegram: TelegramConfig = field(default_factory=TelegramConfig)
    slack: SlackConfig = field(default_factory=SlackConfig)
    twilio: TwilioConfig = field(default_factory=TwilioConfig)
    conversation: ConversationConfig = field(default_factory=ConversationConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    topics: tuple[TopicRule, ...] = ()


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class _Reader:
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

    def table(self, name: str) -> "_Reader":
        value = self._raw(name)
        if value is None:
            value = {}
        elif not isinstance(value, dict):
            self.problem(name, "a table", value)
            value = {}
        return _Reader(value, self.path, self.problems, self.key(name))

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


def _url(reader: _Reader, name: str, default: str) -> str:
    value = reader.string(name, default)
    if value and not re.match(r"^https?://[^/\s]+", value):
        reader.problem(name, "an http:// or https:// URL", value)
        return default
    return value


def _load_topics(raw: Any, path: str, problems: list[str]) -> tuple[TopicRule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.append(f"{path}: topics: expected [[topics]] tables, got {raw!r}")
        return ()
    rules = []
    for index, item in enumerate(raw):
        section = f"topics[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{path}: {section}: expected a table with name and keywords or patterns")
            continue
        reader = _Reader(item, path, problems, section)
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
        reader.unknown_keys({"name", "keywords", "patterns"})
        if name:
            rules.append(TopicRule(name=name, keywords=keywords, patterns=patterns))
    return tuple(rules)


_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def _load_twilio(tw: _Reader) -> TwilioConfig:
    tw.env_required = tw.boolean("enabled", TwilioConfig.enabled)
    whatsapp_from = tw.string("whatsapp_from", "")
    twilio = TwilioConfig(
        enabled=tw.env_required,
        account_sid=tw.string("account_sid", ""),
        auth_token=tw.string("auth_token", ""),
        api_url=_url(tw, "api_url", TwilioConfig.api_url).rstrip("/"),
        sms_from=tw.string("sms_from", ""),
        # Written with or without Twilio's "whatsapp:" prefix; kept without it.
        whatsapp_from=whatsapp_from.removeprefix("whatsapp:"),
        messaging_service_sid=tw.string("messaging_service_sid", ""),
        validate_signatures=tw.boolean("validate_signatures", TwilioConfig.validate_signatures),
    )
    for name in ("sms_from", "whatsapp_from"):
        value = getattr(twilio, name)
        if value and not _E164.match(value):
            tw.problem(name, "a phone number in E.164 form like \"+14155550123\"", value)
    if twilio.messaging_service_sid and not re.match(r"^MG[0-9a-fA-F]{32}$", twilio.messaging_service_sid):
        tw.problem("messaging_service_sid", "a Messaging Service SID: MG followed by 32 hex digits",
                   twilio.messaging_service_sid)
    if twilio.enabled:
        if not re.match(r"^AC[0-9a-fA-F]{32}$", twilio.account_sid):
            tw.problem("account_sid", "the Account SID from the Twilio console: AC followed by 32 hex digits")
        if not twilio.auth_token:
            tw.problem("auth_token", "the account's Auth Token (or \"env:TWILIO_AUTH_TOKEN\")")
        if not (twilio.sms_from or twilio.whatsapp_from or twilio.messaging_service_sid):
            tw.problem("sms_from", "at least one sender: sms_from, whatsapp_from or messaging_service_sid")
    tw.unknown_keys({"enabled", "account_sid", "auth_token", "api_url", "sms_from", "whatsapp_from",
                     "messaging_service_sid", "validate_signatures"})
    return twilio


def load(path: str | os.PathLike) -> Config:
    """Load and check the TOML file at ``path``; raise ConfigError listing every problem."""
    path_text = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path_text}: cannot read the file ({exc.strerror})"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path_text}: not valid TOML ({exc})"]) from None
    return from_dict(data, path_text)


def from_dict(data: dict, path: str = "<dict>") -> Config:
    """Build a Config from already-parsed TOML data (used by load and by tests)."""
    problems: list[str] = []
    top = _Reader(data, path, problems)

    s = top.table("server")
    server = ServerConfig(
        host=s.string("host", ServerConfig.host),
        port=s.integer("port", ServerConfig.port, minimum=0),
        public_url=_url(s, "public_url", ServerConfig.public_url).rstrip("/"),
        max_body_bytes=s.integer("max_body_bytes", ServerConfig.max_body_bytes, minimum=1024),
    )
    s.unknown_keys({"host", "port", "public_url", "max_body_bytes"})

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

    t = top.table("telegram")
    t.env_required = t.boolean("enabled", TelegramConfig.enabled)
    telegram = TelegramConfig(
        enabled=t.env_required,
        token=t.string("token", ""),
        secret_token=t.string("secret_token", ""),
        api_url=_url(t, "api_url", TelegramConfig.api_url),
        greeting=t.string("greeting", TelegramConfig.greeting),
    )
    if telegram.enabled:
        if not telegram.token:
            t.problem("token", "the bot token from @BotFather (or \"env:TELEGRAM_TOKEN\")")
        if not re.match(r"^[A-Za-z0-9_-]{1,256}$", telegram.secret_token):
            t.problem("secret_token", "1-256 characters A-Z a-z 0-9 _ - (Telegram's rule for the webhook secret)")
    t.unknown_keys({"enabled", "token", "secret_token", "api_url", "greeting"})

    sl = top.table("slack")
    sl.env_required = sl.boolean("enabled", SlackConfig.enabled)
    slack = SlackConfig(
        enabled=sl.env_required,
        bot_token=sl.string("bot_token", ""),
        signing_secret=sl.string("signing_secret", ""),
        channel=sl.string("channel", ""),
        api_url=_url(sl, "api_url", SlackConfig.api_url),
        agents=sl.strings("agents"),
        agent_group=sl.string("agent_group", ""),
        admins=sl.strings("admins"),
        admin_group=sl.string("admin_group", ""),
        returning_head_start=sl.duration("returning_head_start", SlackConfig.returning_head_start),
        socket_mode=sl.boolean("socket_mode", SlackConfig.socket_mode),
        app_token=sl.string("app_token", ""),
        home_refresh_interval=sl.duration("home_refresh_interval", SlackConfig.home_refresh_interval),
        home_publishes_per_second=sl.integer("home_publishes_per_second", SlackConfig.home_publishes_per_second,
                                             minimum=1),
    )
    for name in ("agents", "admins"):
        for user in getattr(slack, name):
            if not re.match(r"^[UW][A-Z0-9]{2,}$", user):
                sl.problem(name, "Slack user ids like U0123ABCD", user)
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
    sl.unknown_keys({"enabled", "bot_token", "signing_secret", "channel", "api_url",
                     "agents", "agent_group", "admins", "admin_group", "returning_head_start",
                     "socket_mode", "app_token", "home_refresh_interval", "home_publishes_per_second"})

    twilio = _load_twilio(top.table("twilio"))

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

    topics = _load_topics(top._raw("topics"), path, problems)
    top.unknown_keys({"server", "redis", "telegram", "slack", "twilio", "conversation", "delivery", "topics"})

    if problems:
        raise ConfigError(problems)
    return Config(
        path=path,
        server=server,
        redis=redis,
        telegram=telegram,
        slack=slack,
        twilio=twilio,
        conversation=conversation,
        delivery=delivery,
        topics=topics,
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
