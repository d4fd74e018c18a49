"""How many Redis round trips the web process makes per inbound customer message.

Counts every request written to Redis (a pipeline is one round trip) by the
web side's one (async) client while ``Conversations.receive`` takes N messages
spread over M customers, on the embedded Redis: the state machine queues the
drain jobs itself, so there is no RQ client on the web side any more. Prints
the figure, the time per message and the Redis time of one state-machine call
(``INFO commandstats``: EVALSHA's microseconds per call).

    .venv/bin/python bench/round_trips.py [--messages 2000] [--customers 100]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

import redis.asyncio as aioredis
from redis.asyncio.connection import UnixDomainSocketConnection as AsyncUnixConnection

from gateway.config import Config
from gateway.conversations import Conversations
from gateway.message import InboundMessage
from gateway.redis_server import EmbeddedRedis
from gateway.store import Store
from gateway.team import Team
from gateway.topics import Topics

COUNT = {"async": 0}


class CountingAsync(AsyncUnixConnection):
    async def send_packed_command(self, command, check_health=True):
        COUNT["async"] += 1
        return await super().send_packed_command(command, check_health)


async def run(messages: int, customers: int, socket_path: str) -> None:
    config = Config()
    async_pool = aioredis.ConnectionPool(connection_class=CountingAsync, path=socket_path)
    store = Store(aioredis.Redis(connection_pool=async_pool))
    # Two consoles (Slack and the web console, as deployed): each message goes to two outboxes.
    consoles = ("slack", "web")
    conversations = Conversations(store, config.conversation, Topics.compile(config.topics),
                                  Team((), [], open_team=True), consoles=consoles)
    # Warm up: load the script and open connections, not counted.
    await conversations.receive(InboundMessage("telegram", "warmup", "warmup:1", "hello"))
    COUNT.update({"async": 0})
    await store.redis.config_resetstat()
    started = time.perf_counter()
    for i in range(messages):
        customer = str(i % customers)
        await conversations.receive(InboundMessage("telegram", customer, f"{customer}:{i}", f"message {i}"))
    elapsed = time.perf_counter() - started
    calls = (await store.redis.info("commandstats")).get("cmdstat_evalsha", {})
    jobs = await store.redis.llen("rq:queue:chatgate")
    ready = await store.redis.llen(store.key("ready"))
    print(f"messages: {messages} over {customers} customers, consoles: {', '.join(consoles)}")
    print(f"round trips per inbound message: {COUNT['async'] / messages:.2f} (drain jobs queued in the same call)")
    print(f"outboxes on the ready list: {ready} (each once), drain jobs queued for them: {jobs}")
    print(f"time per message (receive, one client, in-process): {elapsed / messages * 1000:.2f} ms")
    print(f"Redis time per state-machine call: {calls.get('usec_per_call', 0):.1f} µs ({calls.get('calls', 0)} calls)")
    await store.redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--customers", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cg-bench-") as data_dir:
        with EmbeddedRedis(data_dir) as server:
            asyncio.run(run(args.messages, args.customers, str(server.socket_path)))


if __name__ == "__main__":
    main()
