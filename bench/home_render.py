"""What one App Home render costs: Redis round trips and time, with a full Inbox.

Fills the embedded Redis with W waiting chats and A accepted ones that got a
first reply today (and R rated), then renders an agent's Home (team figures,
one page of the Inbox, filtered by channel, and the Assigned tab) the way the
workers do before each ``views.publish``. Slack is not called: no card was
posted, so no permalink is asked for.

    .venv/bin/python bench/home_render.py [--waiting 1000] [--answered 2000] [--renders 50]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

import redis
import redis.asyncio as aioredis
from redis.asyncio.connection import UnixDomainSocketConnection as AsyncUnixConnection

from agent_console.slack.home import HomeState
from agent_console.slack.home_refresh import HomePublisher
from agent_console.slack.team import Team
from gateway.config import Config, SlackConfig
from gateway.conversations import Conversations
from gateway.message import InboundMessage
from gateway.redis_server import EmbeddedRedis
from gateway.store import Store
from gateway.topics import Topics
from workers.dispatch import RQDispatch

COUNT = {"async": 0}
AGENT = "UAGENT1"


class CountingAsync(AsyncUnixConnection):
    async def send_packed_command(self, command, check_health=True):
        COUNT["async"] += 1
        return await super().send_packed_command(command, check_health)


async def run(waiting: int, answered: int, renders: int, socket_path: str) -> None:
    config = Config()
    slack = SlackConfig(enabled=True, bot_token="xoxb-bench", channel="C1", agents=(AGENT,))
    store = Store(aioredis.Redis(connection_pool=aioredis.ConnectionPool(connection_class=CountingAsync,
                                                                          path=socket_path)))
    conversations = Conversations(store, RQDispatch(redis.Redis(unix_socket_path=socket_path), config.delivery),
                                  config.conversation, Topics.compile(config.topics))
    channels = ("telegram", "sms", "whatsapp")
    for i in range(answered):
        received = await conversations.receive(InboundMessage(channels[i % 3], f"a{i}", f"a{i}", "hello", name=f"A{i}"))
        await conversations.accept(received.conversation_id, AGENT if i < 30 else f"U{i % 20:08d}")
        await conversations.reply(received.conversation_id, AGENT if i < 30 else f"U{i % 20:08d}", "hi")
    for i in range(waiting):
        await conversations.receive(InboundMessage(channels[i % 3], f"w{i}", f"w{i}", "where is it", name=f"W{i}"))

    publisher = HomePublisher(slack, conversations, web=None, team=Team(slack, None))  # type: ignore[arg-type]
    views = (("inbox", ""), ("inbox", "sms"), ("assigned", ""))
    for tab, channel in views:
        await publisher.save_state(AGENT, HomeState(tab=tab, channel=channel))
        await publisher.render(AGENT)  # warm up
        COUNT["async"] = 0
        started = time.perf_counter()
        for _ in range(renders):
            view = await publisher.render(AGENT)
        elapsed = time.perf_counter() - started
        print(f"{tab:<8} channel={channel or 'any':<8} round trips per render: {COUNT['async'] / renders:5.1f}  "
              f"time per render: {elapsed / renders * 1000:6.2f} ms  blocks: {len(view['blocks'])}")
    figures_started = time.perf_counter()
    COUNT["async"] = 0
    for _ in range(renders):
        figures = await store.figures(time.time())
    print(f"team figures alone: {COUNT['async'] / renders:.1f} round trips, "
          f"{(time.perf_counter() - figures_started) / renders * 1000:.2f} ms "
          f"(waiting {figures.waiting}, median first response over {answered} replies today)")
    await store.redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, default=1000)
    parser.add_argument("--answered", type=int, default=2000)
    parser.add_argument("--renders", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cg-bench-") as data_dir:
        with EmbeddedRedis(data_dir) as server:
            asyncio.run(run(args.waiting, args.answered, args.renders, str(server.socket_path)))


if __name__ == "__main__":
    main()
