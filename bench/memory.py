"""Redis memory per customer message: before delivery, after delivery, after close and retention.

Starts its own embedded Redis and pushes N customer messages of a fixed length through the real
core (``Conversations.receive`` from ``chatgate.compose.connect``, one console: the web console, as
the example config), spread over N / per-conversation customers. Measures ``INFO memory``
used_memory against a warmed-up baseline, and ``MEMORY USAGE`` summed by key type, at three points:

  (a) before delivery: the console outboxes and RQ's queued jobs are still in Redis;
  (b) after delivery: every outbox drained by the real ``workers.outbox.drain`` (a no-op send), RQ's
      jobs deleted (a worker's finished jobs expire after 60 s) and the outbox sweep run;
  (c) after every chat was closed (accept, resolve, leave), delivered again, and a retention pass
      (``gateway.retention.export_and_remove``) exported and removed it.

    python bench/memory.py [--messages 20000] [--per-conversation 10] [--text 100]
    python bench/memory.py --soak 120   # chats created, closed and expired for 120 s; used_memory every 10 s
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import redis as redis_sync
from rq import Queue

from chatgate.compose import connect, load_config, plugin_refs
from gateway import conversations as conversations_module
from gateway.message import InboundMessage
from gateway.redis_server import EmbeddedRedis
from gateway.retention import export_and_remove
from gateway.jobs import QUEUE, SERIALIZER
from workers.outbox import drain, sweep

AGENT = "bench-agent"
DAY = 86400.0


def machine() -> str:
    return (f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}")


def config_text(data_dir: Path, closed_after: str) -> str:
    # Head start off: it schedules an RQ job per returning customer, which a bench has no worker to run.
    return (f'[redis]\ndata_dir = "{data_dir}"\n[web]\nenabled = true\n'
            f'[routing]\nreturning_head_start = 0\n'
            f'[retention]\nclosed_after = "{closed_after}"\nexport_dir = "{data_dir / "exports"}"\n')


def kind(key: str, tag: str) -> str:
    """A key's type for the breakdown: ids replaced by *, e.g. ``msgs:*``, ``out:console:web:*``."""
    if not key.startswith(tag + ":"):
        parts = key.split(":")
        return ":".join(parts[:2]) + (":*" if len(parts) > 2 else "")
    parts = key[len(tag) + 1:].split(":")
    named = {"out": 3 if parts[1:2] == ["console"] else 2, "ref": 2, "web": 2, "webchat": 2, "home": 2}
    keep = named.get(parts[0], 1)
    return ":".join(parts[:keep]) + (":*" if len(parts) > keep else "")


class Bench:
    """The core on the bench's Redis, and the workers' part done in-process."""

    def __init__(self, data_dir: Path, url: str, closed_after: str = "30d"):
        path = data_dir / "config.toml"
        path.write_text(config_text(data_dir, closed_after))
        self.config = load_config(path)
        self.services = connect(self.config, url)
        self.store = self.services.store
        self.sync = redis_sync.Redis.from_url(url)
        self.queue = Queue(QUEUE, connection=self.sync, serializer=SERIALIZER)
        self.exports = data_dir / "exports"
        self.consoles = tuple(self.services.consoles)

    async def close(self) -> None:
        await self.services.close()
        self.sync.close()

    def used(self) -> int:
        return int(self.sync.info("memory")["used_memory"])

    async def receive(self, customer: str, number: int, text: str) -> str:
        message = InboundMessage("telegram", customer, f"{customer}:{number}", text, name="Bench Customer")
        return (await self.services.conversations.receive(message)).conversation_id

    async def close_chat(self, conversation_id: str, rating: str = "") -> None:
        c = self.services.conversations
        await c.accept(conversation_id, AGENT)
        await c.resolve(conversation_id, AGENT)
        if rating:
            conversation = await self.store.get(conversation_id)
            await c.receive(InboundMessage(conversation.channel, conversation.customer_id, "", rating))
        await c.leave(conversation_id, AGENT)

    async def deliver(self, sweep_after: bool = True) -> None:
        """Drain every outbox (a no-op send), delete RQ's jobs, and sweep the dirty set, as the workers do."""
        async def send(item: bytes, _maybe_sent: bool) -> None:
            return None

        for raw in await self.store.redis.zrange(self.store.key("dirty"), 0, -1):
            await drain(self.store, raw.decode(), send)
        # What a drainer takes off the ready list, and the queued drainer itself.
        await self.store.redis.delete(self.store.key("ready"), self.store.key("drainer"))
        self.queue.empty()
        scheduled = self.queue.scheduled_job_registry
        for job_id in scheduled.get_job_ids():
            scheduled.remove(job_id, delete_job=True)
        if sweep_after:
            await self.sweep()

    async def sweep(self) -> None:
        # A sweep looks at 500 outboxes at a time; the workers' maintenance repeats it.
        left = await self.store.redis.zcard(self.store.key("dirty"))
        while left:
            await sweep(self.store, 0)
            left, before = await self.store.redis.zcard(self.store.key("dirty")), left
            if left >= before:
                break  # an outbox with items left: not ours to drop

    async def retention(self, older_than: float, now: float) -> int:
        return await export_and_remove(self.store, older_than, self.exports, now, consoles=self.consoles,
                                       refs=plugin_refs(self.config))

    def breakdown(self) -> dict[str, tuple[int, int]]:
        """MEMORY USAGE (exact: SAMPLES 0) and key count by key type."""
        totals: dict[str, list[int]] = {}
        keys = [k.decode() for k in self.sync.scan_iter(count=1000)]
        for start in range(0, len(keys), 1000):
            chunk = keys[start:start + 1000]
            with self.sync.pipeline(transaction=False) as pipe:
                for key in chunk:
                    pipe.memory_usage(key, samples=0)
                sizes = pipe.execute()
            for key, size in zip(chunk, sizes):
                entry = totals.setdefault(kind(key, self.store.tag), [0, 0])
                entry[0] += size or 0
                entry[1] += 1
        return {name: (size, count) for name, (size, count) in totals.items()}


async def push(bench: Bench, messages: int, per_conversation: int, text: str, prefix: str) -> list[str]:
    """``messages`` customer messages, round-robin over ``messages / per_conversation`` customers."""
    customers = max(1, messages // per_conversation)
    ids: dict[str, str] = {}
    for number in range(messages):
        customer = f"{prefix}{number % customers}"
        ids[customer] = await bench.receive(customer, number, text)
    return list(dict.fromkeys(ids.values()))


async def measure(messages: int, per_conversation: int, text_length: int, data_dir: Path, url: str) -> str:
    bench = Bench(data_dir, url)
    text = ("x" * text_length)[:text_length]
    # Warm-up: the scripts loaded, the connections open, the structures used once.
    warm = await push(bench, 500, per_conversation, text, "warm")
    await bench.deliver()
    for conversation_id in warm:
        await bench.close_chat(conversation_id)
    await bench.deliver()
    await bench.retention(30 * DAY, time.time() + 31 * DAY)
    base, base_keys = bench.used(), bench.breakdown()

    started = time.perf_counter()
    ids = await push(bench, messages, per_conversation, text, "c")
    pushed = time.perf_counter() - started
    points = [(bench.used(), bench.breakdown())]
    await bench.deliver(sweep_after=False)
    dirty = bench.breakdown().get("dirty", (0, 0))[0] - base_keys.get("dirty", (0, 0))[0]
    await bench.sweep()
    points.append((bench.used(), bench.breakdown()))
    for conversation_id in ids:
        await bench.close_chat(conversation_id)
    await bench.deliver()
    removed = await bench.retention(30 * DAY, time.time() + 31 * DAY)
    points.append((bench.used(), bench.breakdown()))
    await bench.close()

    def per(value: float) -> str:
        return f"{value / messages:,.1f}"

    names = sorted({name for _, keys in points for name in keys} | set(base_keys),
                   key=lambda n: -max(keys.get(n, (0, 0))[0] - base_keys.get(n, (0, 0))[0] for _, keys in points))
    rows = [("key type", "(a) before delivery", "(b) after delivery", "(c) after close + retention")]
    for name in names:
        deltas = [keys.get(name, (0, 0))[0] - base_keys.get(name, (0, 0))[0] for _, keys in points]
        if any(abs(d) >= messages / 10 for d in deltas):  # under 0.1 byte per message: noise
            rows.append((name, *(per(d) for d in deltas)))
    usage = [sum(s for s, _ in keys.values()) - sum(s for s, _ in base_keys.values()) for _, keys in points]
    rows.append(("MEMORY USAGE, all keys", *(per(u) for u in usage)))
    rows.append(("used_memory", *(per(used - base) for used, _ in points)))
    rows.append((f"used_memory beyond the text ({text_length} B)",
                 *(f"{(used - base) / messages - text_length:,.1f}" for used, _ in points)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [f"machine: {machine()}",
             f"redis: {server_version(url)}",
             f"{messages} customer messages of {text_length} characters, {per_conversation} per conversation "
             f"({len(ids)} conversations), consoles: {', '.join(bench.consoles) or 'none'}; "
             f"receive took {pushed / messages * 1000:.2f} ms per message",
             "bytes per message (delta from the warmed-up baseline):",
             ""]
    for index, row in enumerate(rows):
        lines.append("| " + " | ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                                        for i, cell in enumerate(row)) + " |")
        if index == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["",
              f"dirty set after delivery, before the outbox sweep removed it: {per(dirty)} bytes per message",
              f"retention removed {removed} conversations (exported to {bench.exports})"]
    return "\n".join(lines)


def server_version(url: str) -> str:
    info = redis_sync.Redis.from_url(url).info("server")
    name = "valkey" if "valkey_version" in info else "redis"
    return f"{name} {info.get('valkey_version') or info.get('redis_version')}"


async def soak(seconds: float, every: float, per_conversation: int, text_length: int, customers: int,
               data_dir: Path, url: str, out=sys.stdout) -> list[int]:
    """Create, close and expire chats for ``seconds``, printing used_memory every ``every`` seconds.

    Time is compressed: retention keeps closed chats 1 s instead of 30 days, and the deduplication of
    platform message ids (7 days) lasts 5 s. A fixed pool of customers come back again and again.
    """
    bench = Bench(data_dir, url, closed_after="1s")
    text = "x" * text_length
    saved_ttl = conversations_module.SEEN_TTL
    conversations_module.SEEN_TTL = 5
    readings = []
    try:
        started = last = time.monotonic()
        created = removed = number = 0
        print(f"machine: {machine()}\nredis: {server_version(url)}\n"
              f"soak: {seconds:.0f} s, {customers} customers, {per_conversation} messages per chat, retention 1 s, "
              f"dedupe TTL 5 s", file=out)
        print(f"{'seconds':>8} {'chats':>8} {'removed':>8} {'keys':>8} {'used_memory':>12}", file=out)
        while True:
            batch = []
            for _ in range(20):
                customer = f"s{created % customers}"
                for _ in range(per_conversation):
                    conversation_id = await bench.receive(customer, number, text)
                    number += 1
                batch.append(conversation_id)
                created += 1
            await bench.deliver()
            for conversation_id in batch:
                await bench.close_chat(conversation_id, rating="5")
            await bench.deliver()
            removed += await bench.retention(1.0, time.time() + 1.0)
            now = time.monotonic()
            if now - last >= every or now - started >= seconds:
                last = now
                readings.append(bench.used())
                print(f"{now - started:8.0f} {created:8d} {removed:8d} {bench.sync.dbsize():8d} "
                      f"{readings[-1]:12,d}", file=out, flush=True)
            if now - started >= seconds:
                break
    finally:
        conversations_module.SEEN_TTL = saved_ttl
        await bench.close()
    if len(readings) >= 2:
        print(f"used_memory from the first reading to the last: {readings[-1] - readings[0]:+,d} bytes "
              f"({created} chats created, {removed} exported and removed)", file=out)
    return readings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--per-conversation", type=int, default=10)
    parser.add_argument("--text", type=int, default=100, help="characters per message")
    parser.add_argument("--soak", type=float, default=0, help="seconds of soak instead of the measure")
    parser.add_argument("--every", type=float, default=10, help="soak: seconds between readings")
    parser.add_argument("--customers", type=int, default=200, help="soak: the pool of returning customers")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cg-memory-") as tmp:
        data_dir = Path(tmp)
        with EmbeddedRedis(data_dir / "redis") as server:
            # No persistence: its buffers would count in used_memory.
            redis_sync.Redis.from_url(server.url).config_set("appendonly", "no")
            redis_sync.Redis.from_url(server.url).config_set("save", "")
            if args.soak:
                asyncio.run(soak(args.soak, args.every, args.per_conversation, args.text, args.customers,
                                 data_dir, server.url))
            else:
                print(asyncio.run(measure(args.messages, args.per_conversation, args.text, data_dir, server.url)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
