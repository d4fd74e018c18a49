"""The ports are contracts: every registered channel and console, built as ``chatgate.compose.connect``
builds it from a config that enables it, is an instance of its base class (``gateway.ports``),
implements the essentials itself and keeps the base's signature in every method it overrides.

The core calls the optional capabilities (``reply_window``, ``already_delivered``, ``role``, …) without
asking first, so a plugin that stops subclassing, or renames or reorders an argument, fails here.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from chatgate.compose import channel_classes, connect, console_classes
from gateway.events import AgentEvent, EventKind
from gateway.message import NO_FILES
from gateway.ports import Channel, Console, Plugin
from tests.fakes.ports import FakeChannel, FakeConsole

ENABLED = """
[telegram]
enabled = true
token = "123456:ports-token"
secret_token = "ports-secret"
api_url = "http://127.0.0.1:9/bot"
[twilio]
enabled = true
account_sid = "AC00000000000000000000000000000000"
auth_token = "ports-twilio-token"
sms_from = "+15005550006"
api_url = "http://127.0.0.1:9"
[webchat]
enabled = true
[slack]
enabled = true
bot_token = "xoxb-ports"
signing_secret = "ports-signing-secret"
channel = "C0PORTS"
api_url = "http://127.0.0.1:9/api/"
[web]
enabled = true
[fakechannel]
enabled = true
[fakeconsole]
enabled = true
"""

# What a plugin must implement itself, per base class; everything else has a default there.
ESSENTIALS = {Channel: ("load_config", "mount", "send"), Console: ("load_config", "mount", "deliver")}
# The names a plugin declares as class attributes, per base class.
DECLARED = {Channel: ("section", "labels"), Console: ("section", "name")}
_BASES = (Plugin, Channel, Console)


@pytest.fixture
async def built(make_config, redis_url):
    """Every registered channel and console (and the tests' fakes), built as the web app builds them."""
    services = connect(make_config(ENABLED), redis_url, channels=[*channel_classes(), FakeChannel],
                       consoles=[*console_classes(), FakeConsole])
    yield services
    await services.close()


def _port_members(base: type) -> dict[str, Any]:
    """The methods and properties ``base`` and its port ancestors define (``__init__`` included)."""
    members: dict[str, Any] = {}
    for klass in reversed([k for k in base.__mro__ if k in _BASES]):
        for name, value in vars(klass).items():
            if name.startswith("_") and name != "__init__":
                continue
            if isinstance(value, (staticmethod, property)) or inspect.isfunction(value):
                members[name] = value
    return members


def _compatible(base: inspect.Signature, mine: inspect.Signature) -> list[str]:
    """How ``mine`` differs from ``base``: same parameters, names and kinds (a positional-only parameter
    of the base may take any name)."""
    if len(base.parameters) != len(mine.parameters):
        return [f"takes ({', '.join(mine.parameters)}), the port ({', '.join(base.parameters)})"]
    problems = []
    for theirs, ours in zip(base.parameters.values(), mine.parameters.values()):
        if theirs.kind is inspect.Parameter.POSITIONAL_ONLY:
            if ours.kind not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
                problems.append(f"{ours.name} must be positional, as the port's {theirs.name}")
        elif (ours.name, ours.kind) != (theirs.name, theirs.kind):
            problems.append(f"{ours.name} ({ours.kind.description}) where the port has "
                            f"{theirs.name} ({theirs.kind.description})")
    return problems


def contract_problems(cls: type, base: type) -> list[str]:
    """Everything in which the plugin class ``cls`` breaks the port ``base``; empty when it keeps it."""
    if not issubclass(cls, base):
        return [f"{cls.__name__} does not subclass {base.__name__}"]
    problems = []
    for name in DECLARED[base]:
        if not getattr(cls, name, None):
            problems.append(f"{cls.__name__}.{name} is not set")
    for name in ESSENTIALS[base]:
        if inspect.getattr_static(cls, name) is inspect.getattr_static(base, name):
            problems.append(f"{cls.__name__} does not implement {name}")
    for name, port in _port_members(base).items():
        mine = inspect.getattr_static(cls, name)
        if mine is port:
            continue  # the port's default
        where = f"{cls.__name__}.{name}"
        if isinstance(port, property):
            if not isinstance(mine, property):
                problems.append(f"{where} must be a property, as the port's")
            continue
        if isinstance(port, staticmethod) != isinstance(mine, staticmethod):
            problems.append(f"{where} must {'' if isinstance(port, staticmethod) else 'not '}be a static method")
            continue
        theirs, ours = getattr(base, name), getattr(cls, name)
        if not callable(ours):
            problems.append(f"{where} is not a method")
            continue
        if inspect.iscoroutinefunction(theirs) != inspect.iscoroutinefunction(ours):
            problems.append(f"{where} must {'' if inspect.iscoroutinefunction(theirs) else 'not '}be async")
        problems += [f"{where}: {problem}" for problem in
                     _compatible(inspect.signature(theirs), inspect.signature(ours))]
    if base is Channel and cls.fetches_files != (inspect.getattr_static(cls, "fetch") is not Channel.fetch):
        problems.append(f"{cls.__name__}.fetches_files says {cls.fetches_files}, but fetch says otherwise")
    return problems


async def test_every_registered_channel_and_console_is_built_and_keeps_its_port(built):
    channels = {type(channel) for channel in built.channels.values()}
    consoles = {type(console) for console in built.consoles.values()}
    assert channels == {*channel_classes(), FakeChannel}
    assert consoles == {*console_classes(), FakeConsole}
    problems = []
    for plugin, base in [*((c, Channel) for c in built.channels.values()),
                         *((c, Console) for c in built.consoles.values())]:
        assert isinstance(plugin, base)
        problems += contract_problems(type(plugin), base)
    assert problems == []


async def test_the_defaults_answer_for_a_plugin_without_the_capability(built):
    webchat, fake = built.channels["webchat"], built.consoles["fake"]
    assert webchat.reply_window("webchat") is None
    assert webchat.check_attachment("webchat", {"name": "a.pdf"}, "customer") == NO_FILES
    assert not webchat.fetches_files
    assert not await fake.already_delivered(AgentEvent("c1", EventKind.CREATED), built)
    assert await fake.group_members("S0TEAM") == frozenset()
    assert not fake.declares_members


class _Detached:
    """A channel that forgot its base class."""

    section = "detached"
    labels = {"detached": "Detached"}


class _Renamed(FakeChannel):
    """A channel whose reply window takes another argument name, and whose check is not a method."""

    section = "renamed"

    def reply_window(self, name: str):  # the port's argument is ``channel``
        return None

    async def check_attachment(self, channel: str, attachment: dict, customer_id: str = "") -> str:
        return ""

    async def fetch(self, attachment: dict):
        raise NotImplementedError


class _Quiet(FakeConsole):
    """A console whose optional capabilities change shape."""

    section = "quiet"
    declares_members = True

    def role(self, agent_id: str, extra: str = ""):
        return None


def test_the_contract_check_finds_a_broken_plugin():
    assert contract_problems(_Detached, Channel) == ["_Detached does not subclass Channel"]
    assert contract_problems(_Renamed, Channel) == [
        "_Renamed.reply_window: name (positional or keyword) where the port has channel (positional or keyword)",
        "_Renamed.check_attachment must not be async",
        "_Renamed.fetches_files says False, but fetch says otherwise",
    ]
    assert contract_problems(_Quiet, Console) == [
        "_Quiet.declares_members must be a property, as the port's",
        "_Quiet.role must be async",
        "_Quiet.role: takes (self, agent_id, extra), the port (self, agent_id)",
    ]
