"""How long the admin's auto-close switch takes with many resolved chats.

Resolves N chats on the embedded Redis, then times ``Conversations.set_auto_close``
off (every pending auto-close cancelled) and on (every resolved chat scheduled),
as the Slack handler runs it before answering the click.

    .venv/bin/python bench/auto_close_switch.py [--resolved 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

import redis.asyncio as aioredis

from gateway.config import Config
from gateway.conversations import Conversations
from gateway.message import InboundMessage
from gateway.redis_server import EmbeddedRedis
from gateway.store import Store
from gateway.team import Agent, Team
from gateway.topics import Topics


async def run(resolved: int, socket_path: str) -> None:
    config = Config()
    store = Store(aioredis.Redis(unix_socket_path=socket_path))
    team = Team((Agent("UAGENT1"), Agent("UADMIN", admin=True)), [], open_team=False)
    conversations = Conversations(store, config.conversation, Topics.compile(config.topics), team)
    for i in range(resolved):
        received = await conversations.receive(InboundMessage("telegram", str(i), f"m{i}", "hello"))
        await conversations.accept(received.conversation_id, "UAGENT1")
        await conversations.resolve(received.conversation_id, "UAGENT1")
    async def pending() -> int:
        return sum(1 for timer, _ in await store.timers() if timer.kind == "auto_close")

    print(f"resolved chats: {resolved}, scheduled auto-closes: {await pending()}")
    for enabled in (False, True):
        started = time.perf_counter()
        affected = await conversations.set_auto_close(enabled, 900, "UADMIN")
        elapsed = time.perf_counter() - started
        print(f"switch {'on ' if enabled else 'off'}: {affected} chats in {elapsed * 1000:.0f} ms; "
              f"scheduled auto-closes now: {await pending()}")
    await store.redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolved", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cg-bench-") as data_dir:
        with EmbeddedRedis(data_dir) as server:
            asyncio.run(run(args.resolved, str(server.socket_path)))


if __name__ == "__main__":
    main()
