"""The web console in-process on the real core: ``chatgate.compose.connect`` and ``gateway.app.create_app``.

The only stand-in is the worker: ``show_at_once`` drains each conversation's
web-console outbox after each operation (with the workers' own ``drain``), so
events reach the browsers' stream as soon as an operation returns. Customer
outboxes are left queued (no channel sends in these tests).
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


def show_at_once(services: Any) -> None:
    """After each operation, drain the conversation's web-console outbox in this process (as the
    worker's job would), so its events are on the browsers' stream when the operation returns."""
    console = services.consoles["web"]
    conversations = services.conversations
    run = conversations._run

    async def send(item: bytes, _maybe_sent: bool) -> None:
        await console.deliver(AgentEvent.from_json(item), services)

    async def run_then_show(op: str, *args: str) -> dict:
        reply = await run(op, *args)
        if reply.get("id"):
            await drain(services.store, services.store.console_outbox("web", reply["id"]), send)
        return reply

    conversations._run = run_then_show


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
    show_at_once(services)
    app = create_app(services)
    return WebHarness(app, services.consoles["web"], services)
