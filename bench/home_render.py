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
import dataclasses
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis
from redis.asyncio.connection import UnixDomainSocketConnection as AsyncUnixConnection

from agent_console.slack.home import HomeState
from agent_console.slack.home_refresh import HomePublisher
from chatgate.compose import connect, load_config
from gateway.message import InboundMessage
from gateway.redis_server import EmbeddedRedis
from gateway.store import Store

COUNT = {"async": 0}
AGENT = "UAGENT1"


class CountingAsync(AsyncUnixConnection):
    async def send_packed_command(self, command, check_health=True):
        COUNT["async"] += 1
        return await super().send_packed_command(command, check_health)


async def run(waiting: int, answered: int, renders: int, socket_path: str) -> None:
    # Slack and the three customer channels enabled (their labels and filters); the Slack team is open.
    with tempfile.TemporaryDirectory(prefix="cg-bench-config-") as folder:
        path = Path(folder) / "config.toml"
        path.write_text('[slack]\nenabled = true\nbot_token = "xoxb-bench"\nsigning_secret = "x"\nchannel = "C1"\n'
                        '[telegram]\nenabled = true\ntoken = "1:bench"\nsecret_token = "bench"\n'
                        '[twilio]\nenabled = true\naccount_sid = "AC00000000000000000000000000000000"\n'
                        'auth_token = "bench"\nsms_from = "+15005550006"\nwhatsapp_from = "whatsapp:+14155238886"\n')
        config = load_config(path)
    services = connect(config, f"unix://{socket_path}")
    await services.close()
    # The same services, counting the round trips of the store.
    store = Store(aioredis.Redis(connection_pool=aioredis.ConnectionPool(connection_class=CountingAsync,
                                                                          path=socket_path)))
    services.conversations.store = store
    services = dataclasses.replace(services, store=store)
    conversations = services.conversations
    channels = ("telegram", "sms", "whatsapp")
    for i in range(answered):
        received = await conversations.receive(InboundMessage(channels[i % 3], f"a{i}", f"a{i}", "hello", name=f"A{i}"))
        await conversations.accept(received.conversation_id, AGENT if i < 30 else f"U{i % 20:08d}")
        await conversations.reply(received.conversation_id, AGENT if i < 30 else f"U{i % 20:08d}", "hi")
    for i in range(waiting):
        await conversations.receive(InboundMessage(channels[i % 3], f"w{i}", f"w{i}", "where is it", name=f"W{i}"))

    publisher = HomePublisher(services.consoles["slack"], services)
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
