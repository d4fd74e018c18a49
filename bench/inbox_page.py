"""What an Inbox page costs as the Inbox grows: p50/p99/max of ``Store.inbox_for`` at 1k, 10k, 100k waiting chats.

Fills the embedded Redis (or ``--redis-url``) by calling the state machine directly, in pipelines:
waiting chats over four channels and six topics, two of them team-only (half of those already opened
to all), some declined by other agents, and by the measured agent 100 old ones and 10 of the newest
at each size. Then reads, many times each, the pages the consoles show: the first page of 20, one
filtered by channel, one by topic, the agent with declines and topic teams,
the page at offset 200 and the deepest one served (offset 1,000). Last, times the one-time rebuild of the indexes (an upgraded deployment).

    .venv/bin/python bench/inbox_page.py [--sizes 1000,10000,100000] [--reads 300]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import random
import statistics
import tempfile
import time

import redis
import redis.asyncio as aioredis

from gateway.redis_server import EmbeddedRedis
from gateway.operations import machine_source
from gateway.store import Store

PREFIX = "bench_inbox"
CHANNELS = ("telegram", "sms", "whatsapp", "webchat")
TOPICS = ("", "delivery", "returns", "sales", "billing", "tech")
TEAM_TOPICS = ("billing", "tech")  # team-only when created
AGENT = "UDECLINES"  # declines about 100 chats, serves billing
PLAIN = "UPLAIN"  # declined nothing
DECLINES = 100


def ingest_args(channel: str, customer: str, topic: str, team_only: bool) -> dict[str, str]:
    """The ``ingest`` operation's arguments for a first message (as Conversations.receive passes them)."""
    return {"channel": channel, "customer": customer, "platform_id": "", "text": "where is my order", "name": "",
            "phone": "", "location": "", "attachments": "[]", "topic": topic, "rating_thanks": "", "seen_ttl": "60",
            "head_start": "0", "team_only": "1" if team_only else "0"}


class Filler:
    """Adds waiting chats through the state machine, a pipeline at a time."""

    def __init__(self, client: redis.Redis, tag: str):
        self.client, self.tag = client, tag
        self.machine = client.register_script(machine_source())
        # The script's arguments as the store passes them (time, consoles, job settings first).
        self.store_args = Store(aioredis.Redis())._args
        self.now = 1_767_225_600.0
        self.count = 0
        self.rng = random.Random(11)

    def run(self, pipe, op: str, **args: str) -> None:
        self.now += 0.001  # distinct activity times, like real traffic
        self.machine(keys=[self.tag], args=self.store_args(op, self.now, "", args), client=pipe)

    def fill(self, size: int, batch: int = 2000) -> None:
        while self.count < size:
            pipe = self.client.pipeline(transaction=False)
            first = self.count + 1
            for n in range(first, min(size, self.count + batch) + 1):
                topic = TOPICS[n % len(TOPICS)]
                self.run(pipe, "ingest", **ingest_args(CHANNELS[n % len(CHANNELS)], f"c{n}", topic,
                                                      topic in TEAM_TOPICS))
            pipe.execute()
            self.count = min(size, self.count + batch)
            # Ids are 1, 2, ... in order of creation (the first use of this prefix).
            pipe = self.client.pipeline(transaction=False)
            for n in range(first, self.count + 1):
                if TOPICS[n % len(TOPICS)] in TEAM_TOPICS and n % 2:
                    self.run(pipe, "open_to_all", conversation=str(n))
                if n % 7 == 0:
                    self.run(pipe, "reject", conversation=str(n), agent=f"UOTHER{n % 5}")
                if n <= DECLINES * 5 and n % 5 == 0:
                    self.run(pipe, "reject", conversation=str(n), agent=AGENT)
            pipe.execute()
        # And a few of the newest, which the agent's first page skips.
        pipe = self.client.pipeline(transaction=False)
        for n in range(self.count, max(0, self.count - 30), -3):
            self.run(pipe, "reject", conversation=str(n), agent=AGENT)
        pipe.execute()


def quiet(client: redis.Redis) -> None:
    """Wait for the server's background save or AOF rewrite after a fill: its fork shares the CPUs."""
    for _ in range(600):
        info = client.info("persistence")
        if not info.get("aof_rewrite_in_progress") and not info.get("rdb_bgsave_in_progress"):
            return
        time.sleep(0.1)


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    return (statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], ordered[-1])


PAGES = (
    ("first page", dict(agent=PLAIN)),
    ("channel sms", dict(agent=PLAIN, channel="sms")),
    ("topic delivery", dict(agent=PLAIN, topic="delivery")),
    ("declines+teams", dict(agent=AGENT, served=("billing",))),
    ("offset 200", dict(agent=PLAIN, offset=200)),
    # The deepest page the consoles serve (gateway.store.MAX_OFFSET): a page's cost grows with its offset.
    ("offset 1000", dict(agent=PLAIN, offset=1000)),
)


async def timed(call, reads: int) -> tuple[list[float], object]:
    await call()  # warm up: the script loaded
    samples = []
    for _ in range(reads):
        started = time.perf_counter()
        result = await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples, result


async def measure(store: Store, reads: int) -> list[tuple[str, int, tuple, tuple]]:
    """Per page: the page script alone (what Redis is busy with, plus the round trip) and the whole
    ``inbox_for`` call (the script, then the page's 20 conversations read and parsed in Python)."""
    rows = []
    for name, kwargs in PAGES:
        kwargs = dict(kwargs)
        served = kwargs.get("served")
        args = [kwargs.get("channel", ""), kwargs.get("topic", ""), kwargs["agent"], kwargs.get("offset", 0), 20,
                "0" if served is None else "1", ",".join(served or ())]
        script, _ = await timed(lambda: store._inbox_page(keys=[store.tag], args=args), reads)
        whole, page = await timed(lambda: store.inbox_for(**kwargs), reads)
        rows.append((name, page.total, percentiles(script), percentiles(whole)))
    return rows


async def timed_rebuild(store: Store) -> tuple[float, float]:
    """What Store.rebuild_indexes(force=True) does, timed: the whole (s) and its longest step (ms)."""
    started, longest, restart = time.perf_counter(), 0.0, "1"
    while True:
        step = time.perf_counter()
        reply = await store.run("rebuild_indexes", time.time(), "", {"restart": restart, "count": "1000"})
        longest, restart = max(longest, (time.perf_counter() - step) * 1000), "0"
        if reply["done"]:
            return time.perf_counter() - started, longest


async def run(url: str, sizes: list[int], reads: int) -> None:
    client = redis.Redis.from_url(url)
    for stale in client.scan_iter(match="{" + PREFIX + "}:*", count=10_000):
        client.delete(stale)
    filler = Filler(client, "{" + PREFIX + "}")
    store = Store(aioredis.Redis.from_url(url), PREFIX)
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}, "
          f"Redis {client.info('server').get('redis_version')}; "
          f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"Inbox page reads, {reads} each, ms: the page script alone (Redis) and the whole Store.inbox_for")
    print(f"{'waiting':>8}  {'page':<16} {'total':>7} | {'script p50':>10} {'p99':>6} {'max':>6} | "
          f"{'whole p50':>9} {'p99':>6} {'max':>6}")
    for size in sizes:
        started = time.perf_counter()
        filler.fill(size)
        fill_seconds = time.perf_counter() - started
        quiet(client)
        for name, total, script, whole in await measure(store, reads):
            print(f"{size:>8}  {name:<16} {total:>7} | {script[0]:>10.2f} {script[1]:>6.2f} {script[2]:>6.2f} | "
                  f"{whole[0]:>9.2f} {whole[1]:>6.2f} {whole[2]:>6.2f}")
        rebuild, longest = await timed_rebuild(store)
        print(f"{'':>8}  (filled in {fill_seconds:.1f} s; the one-time rebuild of the indexes: {rebuild:.2f} s, "
              f"its longest step of 1,000 chats {longest:.0f} ms)")
    await store.redis.aclose()
    for stale in client.scan_iter(match="{" + PREFIX + "}:*", count=10_000):
        client.delete(stale)
    client.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="waiting chats, comma-separated, growing")
    parser.add_argument("--reads", type=int, default=300, help="reads of each page at each size")
    parser.add_argument("--redis-url", default="", help="a Redis to use instead of an embedded one")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    if args.redis_url:
        asyncio.run(run(args.redis_url, sizes, args.reads))
        return
    with tempfile.TemporaryDirectory(prefix="cg-bench-") as data_dir:
        with EmbeddedRedis(data_dir) as server:
            asyncio.run(run(f"unix://{server.socket_path}", sizes, args.reads))


if __name__ == "__main__":
    main()
