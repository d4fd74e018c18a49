"""The web console in-process on the real core: ``chatgate.compose.connect`` and ``gateway.app.create_app``.

The worker runs here too, on the test's event loop: ``OutboxWorker`` takes the
ready list (the outboxes with new items) with the workers' own code
(``workers.ready.drain_ready`` and ``workers.jobs.drain_outbox``), as
``chatgate worker``'s ``drain_ready`` job does. So an operation's events reach
the browsers' stream a moment after it returns, as in production, and a test
waits for them (Playwright's ``expect``, or ``tests.support.eventually_async``).
The demo channels' sends are recorded (``tests.fakes.ports.SENT``). Timers are
not fired: no test here waits for one.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from agent_console.web import WebConsole
from agent_console.web.passwords import hash_password
from chatgate.compose import connect, load_config
from gateway.app import create_app
from gateway.message import InboundMessage
from tests.conftest import TOPICS
from tests.fakes.ports import FakeChannel
from workers.jobs import drain_outbox
from workers.ready import drain_ready

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


class OutboxWorker:
    """A worker in this process: whenever outboxes are on the ready list, ``drain_ready`` drains them
    with ``drain_outbox`` (the web console's events onto its stream, the customers' messages to the demo
    channels), as the ``drain_ready`` job of ``chatgate worker`` does.

    The two hand-offs a worker makes through RQ are this class's: it is the only drainer and comes back
    to the ready list by itself (so another drainer is never queued), and an outbox whose send failed is
    noted in ``failed`` (the harness fails the test with it) rather than handed to a retry job nobody runs.
    """

    # How often an idle worker looks at the ready list (seconds).
    IDLE = 0.01

    def __init__(self, services: Any):
        self.services = services
        self.failed: list[str] = []
        self._stopping = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        store = self.services.store
        while not self._stopping.is_set():
            if await store.redis.llen(store.key("ready")):
                await drain_ready(self.services, drain_outbox, self._retry_later, self._queue_drainer)
            else:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.IDLE)

    async def _retry_later(self, _services: Any, outbox: str) -> None:
        self.failed.append(outbox)

    async def _queue_drainer(self) -> None:
        pass  # this worker takes the ready list again itself

    async def stop(self) -> None:
        """A warm shutdown, as ``chatgate worker``'s: the round under way (a second at most) ends first."""
        self._stopping.set()
        await self._task
        assert not self.failed, f"deliveries failed (see the log): {self.failed}"


@dataclass
class WebHarness:
    app: web.Application
    console: WebConsole
    services: Any
    worker: OutboxWorker = field(repr=False)
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
        try:
            await self.worker.stop()
        finally:
            await self.services.close()


def build(tmp_path: Path, redis_url: str, web_toml: str = "", toml: str = "") -> WebHarness:
    """The real web app (demo channels + web console) on ``redis_url``, built by the composition root from
    a config file, with its worker (``OutboxWorker``; call from a running event loop). ``web_toml`` goes in
    the ``[web]`` table, ``toml`` is more of the file (``[routing]``, ``[[saved_replies]]``)."""
    path = tmp_path / "web-console.toml"
    path.write_text(TOPICS + AGENTS_TOML + toml + "\n[demochannels]\nenabled = true\n\n[web]\n" + web_toml)
    config = load_config(path, extra=[WebConsole, DemoChannels])
    services = connect(config, redis_url, channels=[DemoChannels], consoles=[WebConsole])
    app = create_app(services)
    return WebHarness(app, services.consoles["web"], services, OutboxWorker(services))
