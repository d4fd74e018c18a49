"""In-process implementations of the core's ports, for testing the core and the workers without HTTP.

``FakeChannel`` is a customer platform whose webhook is ``POST /webhooks/fake``
(JSON ``{"customer", "id", "text"}``) and whose sends are recorded.
``FakeConsole`` records every event it is given, and answers ``POST
/fake-console/<op>`` by calling the core operation as the agent named in the body.
Both are registered by the tests alone (``connect(..., channels=[...], consoles=[...])``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

from aiohttp import web

from gateway.config import ConfigReader
from gateway.events import AgentEvent
from gateway.message import InboundMessage, OutboundMessage, Refused
from gateway.ports import Channel, Console, DeliveryError, Runtime

__all__ = ["FakeChannel", "FakeConsole", "SENT", "SHOWN"]

# What the fakes did, by customer / by conversation (class-level: a worker job builds fresh instances).
SENT: dict[str, list[str]] = {}
SHOWN: dict[str, list[AgentEvent]] = {}
_ids = itertools.count(1)


@dataclass(frozen=True)
class FakeConfig:
    enabled: bool = False
    fail: bool = False  # every send fails (permanently)


def _load(reader: ConfigReader) -> FakeConfig:
    config = FakeConfig(enabled=reader.boolean("enabled", False), fail=reader.boolean("fail", False))
    reader.unknown_keys({"enabled", "fail"})
    return config


class FakeChannel(Channel[FakeConfig]):
    section = "fakechannel"
    labels = {"fake": "Fake channel"}
    load_config = staticmethod(_load)

    def __init__(self, config: FakeConfig, runtime: Runtime):
        super().__init__(config, runtime)

    def mount(self, app: web.Application, services) -> None:
        async def webhook(request: web.Request) -> web.Response:
            body = await request.json()
            received = await services.conversations.receive(InboundMessage(
                channel="fake", customer_id=body["customer"], platform_id=body["id"], text=body["text"],
                name=body.get("name", "")))
            return web.json_response({"event": received.event, "conversation_id": received.conversation_id})

        app.router.add_post("/webhooks/fake", webhook)

    async def send(self, message: OutboundMessage) -> str:
        if self.config.fail:
            raise DeliveryError("the fake channel refuses everything", permanent=True)
        SENT.setdefault(message.customer_id, []).append(message.text)
        return f"fake-{next(_ids)}"


class FakeConsole(Console[FakeConfig]):
    section = "fakeconsole"
    name = "fake"
    load_config = staticmethod(_load)

    def __init__(self, config: FakeConfig, runtime: Runtime):
        super().__init__(config, runtime)
        self.batches: list[tuple[str, int]] = []

    def mount(self, app: web.Application, services) -> None:
        async def operate(request: web.Request) -> web.Response:
            body = await request.json()
            op, conversation_id, agent = request.match_info["op"], body["conversation_id"], body["agent"]
            try:
                if op == "reply":
                    await services.conversations.reply(conversation_id, agent, body["text"], via=self.name)
                else:
                    await getattr(services.conversations, op)(conversation_id, agent, via=self.name)
            except Refused as refused:
                return web.json_response({"refused": refused.code, "text": self.refusal(refused, services)},
                                         status=409)
            return web.json_response({"ok": True})

        app.router.add_post("/fake-console/{op}", operate)

    async def deliver(self, event: AgentEvent, services) -> None:
        if self.config.fail:
            raise DeliveryError("the fake console is down")
        SHOWN.setdefault(event.conversation_id, []).append(event)

    async def delivered(self, conversation_id: str, events: Sequence[AgentEvent], services) -> None:
        self.batches.append((conversation_id, len(events)))

    async def run_task(self, task: str, args: Sequence[str], services) -> None:
        raise ValueError(f"no task {task!r}")

    def refusal(self, refused: Refused, services) -> str:
        return f"[fake console] {refused.reason}"
