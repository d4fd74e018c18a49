"""An in-process web console for the tests: the core on the real Redis, the console mounted on an app.

Until the composition root (``chatgate/compose.py``) builds it, this builds what
the console needs from ``Services`` by hand: the store, a ``Team``, the
conversation operations (adapted to the post-"Seams" signatures of
contract.md), and a dispatch that delivers each agent event to the console at
once, as a worker would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web

from agent_console.web import WebConsole
from agent_console.web.config import WebConfig
from agent_console.web.passwords import hash_password
from gateway.conversations import Conversations, refusal_text
from gateway.message import InboundMessage, Refused
from gateway.store import Store
from gateway.team import Agent, Team
from gateway.topics import Topics

# Cheaper hashes than the default for speed; the format and the check are the same.
PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-2", "ada": "ada-secret-3"}
AGENTS = (
    Agent("alice", "Alice", password_hash=hash_password(PASSWORDS["alice"], n=2**12)),
    Agent("bob", "Bob", password_hash=hash_password(PASSWORDS["bob"], n=2**12), identities={"slack": "U0BOB"}),
    Agent("ada", "Ada Admin", admin=True, password_hash=hash_password(PASSWORDS["ada"], n=2**12)),
)
LABELS = {"telegram": "Telegram", "sms": "SMS", "whatsapp": "WhatsApp", "webchat": "Web chat"}


class InlineDispatch:
    """Delivers each conversation's agent events to the console at once; customer outboxes are left alone."""

    def __init__(self) -> None:
        self.store: Store | None = None
        self.console: WebConsole | None = None
        self.services: Any = None

    async def _drain(self, conversation_id: str) -> None:
        outbox = self.store.agent_outbox(conversation_id)
        while (raw := await self.store.redis.lpop(outbox)) is not None:
            data = json.loads(raw)
            event = SimpleNamespace(conversation_id=data["conversation_id"], kind=data["event"],
                                    seq=int(data.get("seq") or 0), by=data.get("by", ""), to=data.get("to", ""))
            await self.console.deliver(event, self.services)

    async def to_agents(self, conversation_id: str) -> None:
        await self._drain(conversation_id)

    to_consoles = to_agents

    async def enqueue(self, agents=(), customers=(), cancel_auto_close=(), conversations=()) -> None:
        for conversation_id in (*agents, *conversations):
            await self._drain(conversation_id)

    async def to_customer(self, channel, customer_id) -> None: ...

    async def auto_close(self, conversation_id, token, delay) -> None: ...

    async def auto_close_many(self, pending, delay) -> None: ...

    async def cancel_auto_close(self, conversation_id) -> None: ...

    async def offer_later(self, conversation_id, delay) -> None: ...


class DetailedConversations(Conversations):
    """Today's core keeps a refusal's detail (who has the chat) in its sentence only; contract.md has ``.detail``."""

    async def _run(self, op: str, *args: str) -> list[str]:
        reply = await self.store.run(op, self.clock(), *args)
        if reply[0] == "refused":
            refused = Refused(reply[1], refusal_text(reply[1], reply[2]))
            refused.detail = reply[2]
            raise refused
        return reply


class ContractConversations:
    """Today's ``Conversations`` with contract.md's signatures: role checks in the core, ``via``, ``by=``."""

    def __init__(self, inner: Conversations, team: Team):
        self.inner = inner
        self.team = team

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def _agent(self, agent: str) -> None:
        if not await self.team.is_agent(agent):
            raise Refused("not_agent", "not an agent")

    async def accept(self, cid, agent):
        await self._agent(agent)
        return await self.inner.accept(cid, agent)

    async def reject(self, cid, agent):
        await self._agent(agent)
        return await self.inner.reject(cid, agent)

    async def resolve(self, cid, agent):
        await self._agent(agent)
        return await self.inner.resolve(cid, agent)

    async def leave(self, cid, agent):
        await self._agent(agent)
        return await self.inner.leave(cid, agent)

    async def set_sound(self, cid, agent, on):
        await self._agent(agent)
        return await self.inner.set_sound(cid, agent, on)

    async def reply(self, cid, agent, text, platform_id="", via=""):
        await self._agent(agent)
        return await self.inner.reply(cid, agent, text, platform_id)

    async def note(self, cid, agent, text, platform_id="", via=""):
        await self._agent(agent)
        return await self.inner.note(cid, agent, text, platform_id)

    async def redeliver(self, cid, seq, agent):
        await self._agent(agent)
        return await self.inner.redeliver(cid, seq, agent)

    async def reassign(self, cid, admin, to):
        if not await self.team.is_admin(admin):
            raise Refused("not_admin", "not an admin")
        if not await self.team.is_agent(to):
            refused = Refused("not_agent_target", "not an agent")
            refused.detail = to
            raise refused
        return await self.inner.reassign(cid, admin, to)

    async def set_auto_close(self, enabled, after, by=""):
        return await self.inner.set_auto_close(enabled, after, by, await self.team.is_admin(by))


@dataclass
class WebHarness:
    app: web.Application
    console: WebConsole
    services: Any
    writes: list = field(default_factory=list)

    async def customer_writes(self, text: str, customer: str = "1001", channel: str = "telegram", name: str = "Carla",
                              phone: str = "", location: str = "") -> str:
        """A customer message through the core, as a channel would send it; the conversation id."""
        self.writes.append(text)
        received = await self.services.conversations.receive(InboundMessage(
            channel=channel, customer_id=customer, platform_id=f"{channel}-{customer}-{len(self.writes)}", text=text,
            name=name, phone=phone, location=location))
        return received.conversation_id

    async def close(self) -> None:
        await self.services.store.redis.aclose()


def build(config, redis_url: str, web_config: WebConfig | None = None) -> WebHarness:
    """The app with the web console mounted, on ``redis_url``; ``config`` is the gateway Config."""
    store = Store(aioredis.from_url(redis_url), config.redis.key_prefix)
    team = Team(AGENTS)
    dispatch = InlineDispatch()
    conversations = ContractConversations(
        DetailedConversations(store, dispatch, config.conversation, Topics.compile(config.topics)), team)
    services = SimpleNamespace(config=config, store=store, conversations=conversations, team=team,
                               channel_labels=LABELS)
    console = WebConsole(web_config or WebConfig(), SimpleNamespace(config=config, store=store))
    dispatch.store, dispatch.console, dispatch.services = store, console, services
    app = web.Application(client_max_size=1024 * 1024)
    console.mount(app, services)
    return WebHarness(app, console, services)
