"""The web console in-process on the real core: ``chatgate.compose.connect`` and ``gateway.app.create_app``.

The only stand-in is the worker: ``InlineDispatch`` drains each conversation's
web-console outbox at once (with the workers' own ``drain``), so events reach
the browsers' stream as soon as an operation returns. Customer outboxes are
left queued (no channel sends in these tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from agent_console.web import WebConsole
from agent_console.web.passwords import hash_password
from chatgate.compose import connect, load_config
from gateway.app import create_app
from gateway.events import AgentEvent
from gateway.message import InboundMessage
from tests.conftest import TOPICS
from tests.fakes.ports import FakeChannel
from workers.outbox import drain

# Cheaper hashes than the default, for speed; the format and the check are the same.
PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-2", "ada": "ada-secret-3"}
_HASHES = {user: hash_password(password, n=2**12) for user, password in PASSWORDS.items()}

AGENTS_TOML = f"""
[[agents]]
id = "alice"
name = "Alice"
password_hash = "{_HASHES['alice']}"

[[agents]]
id = "bob"
name = "Bob"
slack = "U0BOB"
password_hash = "{_HASHES['bob']}"

[[agents]]
id = "ada"
name = "Ada Admin"
admin = true
password_hash = "{_HASHES['ada']}"
"""


class DemoChannels(FakeChannel):
    """The fake channel under the names agents know, so lists read as they do in production."""

    section = "demochannels"
    labels = {"telegram": "Telegram", "sms": "SMS", "whatsapp": "WhatsApp"}


class InlineDispatch:
    """The core's Dispatch with the web console's delivery done at once, in this process."""

    def __init__(self, services: Any):
        self.services = services

    async def to_consoles(self, conversation_id: str) -> None:
        console = self.services.consoles["web"]

        async def send(item: bytes) -> None:
            await console.deliver(AgentEvent.from_json(item), self.services)

        await drain(self.services.store, self.services.store.console_outbox("web", conversation_id), send)

    async def enqueue(self, conversations=(), customers=(), cancel_auto_close=()) -> None:
        for conversation_id in conversations:
            await self.to_consoles(conversation_id)

    async def to_customer(self, channel, customer_id) -> None: ...

    async def auto_close(self, conversation_id, token, delay) -> None: ...

    async def auto_close_many(self, pending, delay) -> None: ...

    async def cancel_auto_close(self, conversation_id) -> None: ...

    async def offer_later(self, conversation_id, delay) -> None: ...

    async def console_task(self, console, task, args=(), delay=0.0) -> None: ...

    async def open_to_all_later(self, conversation_id, delay) -> None: ...  # issue 11 routing

    async def escalate_later(self, conversation_id, delay, count=0) -> None: ...  # issue 11 routing


@dataclass
class WebHarness:
    app: web.Application
    console: WebConsole
    services: Any
    sent: int = 0

    async def customer_writes(self, text: str, customer: str = "1001", channel: str = "telegram", name: str = "Carla",
                              phone: str = "", location: str = "") -> str:
        """A customer message through the core, as a channel would hand it over; the conversation id."""
        self.sent += 1
        received = await self.services.conversations.receive(InboundMessage(
            channel=channel, customer_id=customer, platform_id=f"{channel}-{customer}-{self.sent}", text=text,
            name=name, phone=phone, location=location))
        return received.conversation_id

    async def close(self) -> None:
        await self.services.close()


def build(tmp_path: Path, redis_url: str, web_toml: str = "") -> WebHarness:
    """The real web app (demo channels + web console) on ``redis_url``."""
    path = tmp_path / "web-console.toml"
    path.write_text(TOPICS + AGENTS_TOML + "\n[demochannels]\nenabled = true\n\n[web]\n" + web_toml)
    config = load_config(path, extra=[WebConsole, DemoChannels])
    services = connect(config, redis_url, channels=[DemoChannels], consoles=[WebConsole])
    services.conversations.dispatch = InlineDispatch(services)
    app = create_app(services)
    return WebHarness(app, services.consoles["web"], services)
