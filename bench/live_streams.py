"""Live streams at team size: many console and web-chat streams on one web process under webhook load.

Starts the tests' deployment (embedded Redis, fake Telegram; Slack off, so the
workers only deliver to the web console and the web chat) with one ``chatgate
web`` and two ``chatgate worker`` processes, then climbs a ladder of open
streams, half console (signed-in agents through one-time links, ten streams
per session) and half web chat (one customer, address and accepted chat per
stream), up to ``--max-streams``; the first step, with no stream open, is the
reference the webhooks' answer times are compared with. At each step, for ``--seconds``:

- 100 Telegram webhooks a second, each a new customer's first message: the
  console event it makes ("created") must reach every console stream;
- 10 agent replies a second to the web-chat customers (through the core, in
  this process): each must reach its customer's stream;
- ``/healthz`` every 100 ms.

The webhooks and health checks come from a process of their own; the streams
are all read here, by one aiohttp client.

Per step it prints the streams open, the event latency webhook → console stream
(p50/p99 over every stream's copy) and how many streams got each event (the
fewest), the reply latency core → web-chat stream, the webhooks' and
``/healthz``'s answer p99 (the webhooks' also as a multiple of the no-stream
step's), Redis's connected clients (all processes) and the
web process's own Redis connections, and the web process's RSS per stream and its CPU (in cores) during the load.

    .venv/bin/python bench/live_streams.py [--seconds 20] [--max-streams 2000]

Everything runs on one machine: the stream reader's own CPU (printed) is part of the latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil
import redis as redis_sync

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from chatgate.compose import connect, load_config  # noqa: E402
from tests.conftest import TELEGRAM_SECRET, Deployment  # noqa: E402
from tests.fakes.telegram import text_update  # noqa: E402
from tests.live_support import (chat_customer, connected_clients, console_cookie, open_chat_stream,  # noqa: E402
                                open_console_stream, process_connections, session)
from tests.support import keys  # noqa: E402

KEY = keys()
WEBHOOK_RATE = 100.0
REPLY_RATE = 10.0
PER_SESSION = 10
LADDER = (0, 100, 500, 1000, 2000)
CREATED = re.compile(rb'"conversation_id": "([^"]+)", "kind": "created"')
REPLY = re.compile(rb'"text": "bench reply (\d+)"')


@dataclass
class Step:
    streams: int
    console: int
    chat: int
    open_at_end: int = 0
    event_p50: float = float("nan")
    event_p99: float = float("nan")
    fewest_streams: int = 0
    events: int = 0
    reply_p50: float = float("nan")
    reply_p99: float = float("nan")
    replies: int = 0
    replies_arrived: int = 0
    webhook_p99: float = float("nan")
    webhooks: int = 0
    webhooks_bad: int = 0
    healthz_p99: float = float("nan")
    redis_clients: int = 0
    web_connections: int = 0
    rss_per_stream_kb: float = float("nan")
    web_cpu: float = float("nan")  # the web process's CPU during the load, in cores
    client_cpu: float = float("nan")  # this process's (reading every stream)
    machine_cpu: float = float("nan")  # every process's together (the machine has os.cpu_count() cores)


@dataclass
class Streams:
    """Every open stream's reader and what it saw."""

    created: dict[str, list[float]] = field(default_factory=dict)  # conversation -> arrival on each stream
    replies: dict[int, float] = field(default_factory=dict)
    tasks: list[asyncio.Task] = field(default_factory=list)
    responses: list[aiohttp.ClientResponse] = field(default_factory=list)
    ended: int = 0

    def read(self, response: aiohttp.ClientResponse, console: bool) -> None:
        self.responses.append(response)
        self.tasks.append(asyncio.create_task(self._read(response, console)))

    async def _read(self, response: aiohttp.ClientResponse, console: bool) -> None:
        pending = b""
        try:
            async for chunk in response.content.iter_any():
                pending += chunk
                cut = pending.rfind(b"\n\n")
                if cut < 0:
                    continue
                complete, pending = pending[:cut + 2], pending[cut + 2:]
                now = time.time()
                if console:
                    for match in CREATED.finditer(complete):
                        self.created.setdefault(match.group(1).decode(), []).append(now)
                else:
                    for match in REPLY.finditer(complete):
                        self.replies.setdefault(int(match.group(1)), now)
        except (aiohttp.ClientError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.ended += 1

    async def close(self) -> None:
        for response in self.responses:
            response.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def load(base: str, seconds: float, first_chat: int) -> dict:
    """``WEBHOOK_RATE`` Telegram webhooks a second (each a new chat) and ``/healthz`` every 100 ms, for
    ``seconds``: when each webhook was posted (wall clock), how long each answer took."""
    posted: dict[int, float] = {}
    answers: list[float] = []
    health: list[float] = []
    bad = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        began = time.monotonic()

        async def webhook(chat: int) -> None:
            nonlocal bad
            update = text_update(chat, chat, f"live bench #{chat}", message_id=1, first_name="Bench")
            started = time.monotonic()
            posted[chat] = time.time()
            try:
                async with http.post(f"{base}/webhooks/telegram", json=update,
                                     headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}) as answer:
                    await answer.read()
                    bad += answer.status != 200
            except aiohttp.ClientError:
                bad += 1
            answers.append(time.monotonic() - started)

        async def healthz() -> None:
            while time.monotonic() - began < seconds:
                started = time.monotonic()
                async with http.get(f"{base}/healthz") as response:
                    await response.read()
                health.append(time.monotonic() - started)
                await asyncio.sleep(0.1)

        tasks = [asyncio.create_task(healthz())]
        sent = 0
        while (now := time.monotonic()) - began < seconds:
            while sent < (now - began) * WEBHOOK_RATE:
                tasks.append(asyncio.create_task(webhook(first_chat + sent)))
                sent += 1
            await asyncio.sleep(0.005)
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"posted": posted, "answers": answers, "health": health, "bad": bad}


async def run_async(seconds: float, max_streams: int, deployment: Deployment) -> list[Step]:
    base = deployment.gateway.base
    web = psutil.Process(deployment.webs[0].popen.pid)
    services = connect(load_config(deployment.config), deployment.redis_url)
    store = redis_sync.Redis.from_url(deployment.redis_url)
    ladder = sorted({*(s for s in LADDER if s < max_streams), max_streams})
    steps: list[Step] = []
    streams = Streams()
    sessions: list[str] = []
    customers: list[tuple[str, str, str]] = []  # cookie, address, conversation id
    console_open = chat_open = 0
    next_chat = 1
    reply_number = 0
    async with session() as http:
        rss_before = web.memory_info().rss
        try:
            for size in ladder:
                console_target, chat_target = size // 2, size - size // 2
                # More signed-in agents and web-chat customers (each with an accepted chat).
                while len(sessions) * PER_SESSION < console_target:
                    sessions.append(await console_cookie(http, base, deployment.redis_url))
                while len(customers) < chat_target:
                    batch = range(len(customers), min(chat_target, len(customers) + 50))

                    async def customer(n: int) -> tuple[str, str, str]:
                        address = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
                        cookie = await chat_customer(http, base, address)
                        async with http.post(f"{base}/chat/api/messages", json={"text": "hello", "client_id": "b1"},
                                             headers={"Cookie": cookie, "X-Forwarded-For": address}) as written:
                            conversation_id = (await written.json())["conversation"]["id"]
                        await services.conversations.accept(conversation_id, "admin")
                        return cookie, address, conversation_id

                    customers += await asyncio.gather(*(customer(n) for n in batch))
                # Open the streams this step adds, 50 at a time.
                while console_open < console_target or chat_open < chat_target:
                    opens = []
                    while len(opens) < 50 and console_open < console_target:
                        opens.append((True, open_console_stream(http, base, sessions[console_open // PER_SESSION])))
                        console_open += 1
                    while len(opens) < 50 and chat_open < chat_target:
                        cookie, address, _ = customers[chat_open]
                        opens.append((False, open_chat_stream(http, base, cookie, address)))
                        chat_open += 1
                    responses = await asyncio.gather(*(make for _, make in opens))
                    for (console, _), response in zip(opens, responses):
                        if response.status != 200:
                            raise RuntimeError(f"a stream was refused: {response.status} {await response.text()}")
                        streams.read(response, console)
                await asyncio.sleep(1.0)  # every stream has its first messages
                step = Step(streams=size, console=console_open, chat=chat_open)
                steps.append(step)

                # The load for `seconds`: webhooks and health checks from a process of their own (this one is
                # busy reading the streams), agent replies from here.
                replied: dict[int, float] = {}
                began = time.monotonic()
                cpu_before, own_before = sum(web.cpu_times()[:2]), sum(psutil.Process().cpu_times()[:2])
                machine_before = psutil.cpu_times()
                loader = await asyncio.create_subprocess_exec(
                    sys.executable, __file__, "--load", base, str(seconds), str(next_chat),
                    stdout=asyncio.subprocess.PIPE)
                next_chat += int(seconds * WEBHOOK_RATE) + 1
                replies = 0
                while (now := time.monotonic()) - began < seconds:
                    while customers and replies < (now - began) * REPLY_RATE:
                        _, _, conversation_id = customers[reply_number % len(customers)]
                        replied[reply_number] = time.time()
                        await services.conversations.reply(conversation_id, "admin", f"bench reply {reply_number}")
                        reply_number += 1
                        replies += 1
                    await asyncio.sleep(0.01)
                out, _ = await loader.communicate()
                loaded = json.loads(out)
                step.web_cpu = (sum(web.cpu_times()[:2]) - cpu_before) / (time.monotonic() - began)
                step.client_cpu = (sum(psutil.Process().cpu_times()[:2]) - own_before) / (time.monotonic() - began)
                machine_after = psutil.cpu_times()
                busy = (sum(machine_after) - machine_after.idle) - (sum(machine_before) - machine_before.idle)
                step.machine_cpu = busy / (time.monotonic() - began)
                posted = {int(chat): at for chat, at in loaded["posted"].items()}
                answers, health = loaded["answers"], loaded["health"]
                step.webhooks, step.webhooks_bad = len(answers), loaded["bad"]
                await asyncio.sleep(2.0)  # the last events arrive

                # Which conversation each webhook made, then each event's copies.
                chats = list(posted)
                pipe = store.pipeline(transaction=False)
                for chat in chats:
                    pipe.get(KEY("open", "telegram", str(chat)))
                latencies: list[float] = []
                fewest = None
                for chat, raw in zip(chats, pipe.execute()):
                    if raw is None:
                        continue
                    arrivals = streams.created.pop(raw.decode(), [])
                    latencies += [at - posted[chat] for at in arrivals]
                    fewest = len(arrivals) if fewest is None else min(fewest, len(arrivals))
                    step.events += 1
                reply_latencies = [streams.replies.pop(n) - at for n, at in replied.items() if n in streams.replies]
                step.open_at_end = console_open + chat_open - streams.ended
                step.event_p50 = report.percentile(latencies, 50) * 1000
                step.event_p99 = report.percentile(latencies, 99) * 1000
                step.fewest_streams = fewest or 0
                step.replies, step.replies_arrived = len(replied), len(reply_latencies)
                step.reply_p50 = report.percentile(reply_latencies, 50) * 1000
                step.reply_p99 = report.percentile(reply_latencies, 99) * 1000
                step.webhook_p99 = report.percentile(answers, 99) * 1000
                step.healthz_p99 = report.percentile(health, 99) * 1000
                step.redis_clients = connected_clients(deployment.redis_url)
                step.web_connections = process_connections(web.pid)
                if step.open_at_end:
                    step.rss_per_stream_kb = (web.memory_info().rss - rss_before) / 1024 / step.open_at_end
                print(row(step, steps[0]), flush=True)
        finally:
            await streams.close()
            await services.close()
    return steps


def run(seconds: float = 20, max_streams: int = 2000, log_dir: Path | None = None) -> list[Step]:
    with tempfile.TemporaryDirectory(prefix="cg-live-") as tmp:
        deployment = Deployment(Path(tmp), webs=1, workers=2, server={"trust_forwarded_for": True},
                                slack={"enabled": False})
        try:
            deployment.start()
            return asyncio.run(run_async(seconds, max_streams, deployment))
        finally:
            deployment.stop()
            if log_dir is not None:
                log_dir.mkdir(parents=True, exist_ok=True)
                for log in Path(tmp).glob("*.log"):
                    (log_dir / log.name).write_bytes(log.read_bytes())


HEAD = ("| streams open (console + chat) | event webhook → console stream p50 / p99 ms | streams per event (fewest) "
        "| reply → chat stream p50 / p99 ms (arrived) | webhook p99 ms | /healthz p99 ms "
        "| Redis clients (all / web process) | web RSS per stream | CPU: web / stream reader / whole machine (cores) |")


def _ms(value: float) -> str:
    return "–" if value != value else f"{value:.0f}"  # NaN: nothing of the kind at this step


def row(step: Step, reference: Step) -> str:
    """One step's line; its webhook p99 also as a multiple of the reference step's (no streams)."""
    ratio = ""
    if step is not reference and reference.webhook_p99 > 0:
        ratio = f", {step.webhook_p99 / reference.webhook_p99:.1f}× no streams"
    rss = "–" if step.rss_per_stream_kb != step.rss_per_stream_kb else f"{step.rss_per_stream_kb:.0f} KB"
    return (f"| {step.open_at_end} ({step.console} + {step.chat}) | {_ms(step.event_p50)} / {_ms(step.event_p99)} "
            f"({step.events} events) | {step.fewest_streams} of {step.console} "
            f"| {_ms(step.reply_p50)} / {_ms(step.reply_p99)} ({step.replies_arrived}/{step.replies}) "
            f"| {step.webhook_p99:.0f} ({step.webhooks_bad} not 200 of {step.webhooks}{ratio}) "
            f"| {step.healthz_p99:.0f} | {step.redis_clients} / {step.web_connections} | {rss} "
            f"| {step.web_cpu:.2f} / {step.client_cpu:.2f} / {step.machine_cpu:.2f} |")


def table(steps: list[Step]) -> str:
    return "\n".join([HEAD, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
                      *(row(s, steps[0]) for s in steps)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--max-streams", type=int, default=2000)
    parser.add_argument("--load", nargs=3, metavar=("URL", "SECONDS", "FIRST_CHAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:  # the load generator, a process of its own
        base, seconds, first_chat = args.load
        print(json.dumps(asyncio.run(load(base, float(seconds), int(first_chat)))))
        return
    print(report.machine())
    print(HEAD)
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    steps = run(args.seconds, args.max_streams)
    print()
    print(table(steps))
    bad = [s for s in steps if s.open_at_end != s.streams or s.webhooks_bad or s.fewest_streams < s.console]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
