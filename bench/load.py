"""Sustained webhook load, end to end: how late does each message reach the agents, and is any lost?

Starts an embedded Redis, the fake Slack and Telegram APIs (their rate limits
off, and chatgate's pacing off: this measures chatgate), ``--webs`` ``chatgate
web`` and ``--workers`` ``chatgate worker`` processes, then posts Telegram
webhooks at a fixed rate (127.0.0.1 only). Each customer writes one message at a
time, as Telegram delivers one update per chat at a time. Every two seconds a
brand-new customer writes too (the probe: how late is a new chat's card during
the burst?). Afterwards it waits for the workers to drain and checks that every
accepted message reached Slack exactly once and in order: the first message of
a customer as the chat card, the others in the card's thread.

Latency is end to end: from posting the webhook to the fake Slack receiving the
``chat.postMessage``. It is reported per 10-second window (p50/p95/p99/max),
with the delivery backlog (queued jobs, outboxes on the ready list) sampled
every second.

    .venv/bin/python bench/load.py [--seconds 60] [--rate 200] [--customers 200] [--webs 1] [--workers 2]

Prints the tables; exits 1 if any message was lost, duplicated or out of
order, or any webhook was not answered 2xx.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import redis as redis_sync

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

from bench import report, traffic  # noqa: E402
from tests.conftest import Deployment  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402
from tests.fakes.telegram import text_update  # noqa: E402
from tests.support import keys  # noqa: E402

# The store's keys under the default prefix (the deployment's own).
KEY = keys()

SECRET = "load-test-webhook-secret"
CHANNEL = "C0LOAD"
FIRST_CHAT = 7_000_000
FIRST_PROBE = 9_000_000
PROBE_EVERY = 2.0
# Each message's text carries its number, so Slack's copy can be matched exactly.
MARK = re.compile(r"load message #(\d+)#")
WINDOW = 10.0
REQUEST_TIMEOUT = 10.0


@dataclass
class Sent:
    """One webhook the generator posted."""

    number: int
    customer: int
    status: int = 0  # 0: no answer (connection error or timeout)
    latency: float = 0.0
    at: float = 0.0  # when it was posted (time.time(), as the fake Slack stamps its calls)
    probe: bool = False  # a new customer's first message


percentile = report.percentile


def _ms(values: list[float], p: float) -> str:
    return f"{percentile(values, p) * 1000:.1f}"


@dataclass
class Summary:
    """What a run measured; ``ok`` when nothing was lost, duplicated or out of order."""

    seconds: float
    rate: float
    requests: int
    answered_2xx: int
    non_2xx: int
    errors: int
    latencies: list[float] = field(repr=False, default_factory=list)  # webhook answered
    stored: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    drain_seconds: float = 0.0
    sending_seconds: float = 0.0
    webs: int = 1
    workers: int = 2
    # (window start s, end-to-end latencies of the messages posted in it); probes' latencies.
    windows: list[tuple[float, list[float]]] = field(repr=False, default_factory=list)
    probes: list[float] = field(repr=False, default_factory=list)
    # (seconds since the start, jobs queued, outboxes on the ready list), every second.
    backlog: list[tuple[float, int, int]] = field(repr=False, default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.answered_2xx == self.requests and self.lost == 0 and self.duplicated == 0
                and self.out_of_order == 0 and self.stored == self.answered_2xx)

    @property
    def end_to_end(self) -> list[float]:
        return [latency for _, latencies in self.windows for latency in latencies]

    def percentile(self, p: float) -> float:
        return percentile(self.latencies, p)

    def table(self) -> str:
        e2e = self.end_to_end
        rows = [
            ("machine", report.machine()),
            ("target rate", f"{self.rate:g}/s for {self.seconds:g} s, {self.webs} web, {self.workers} worker "
                            f"processes, a new customer every {PROBE_EVERY:g} s"),
            ("requests", f"{self.requests} (sent in {self.sending_seconds:.1f} s, "
                         f"{self.requests / max(self.sending_seconds, 1e-9):.1f}/s)"),
            ("answered 2xx", str(self.answered_2xx)),
            ("non-2xx / errors", f"{self.non_2xx} / {self.errors}"),
            ("webhook answer p50/p99", f"{_ms(self.latencies, 50)} / {_ms(self.latencies, 99)} ms"),
            ("to Slack p50/p95/p99/max", f"{_ms(e2e, 50)} / {_ms(e2e, 95)} / {_ms(e2e, 99)} / {_ms(e2e, 100)} ms"),
            ("new customer's card p50/p99/max", f"{_ms(self.probes, 50)} / {_ms(self.probes, 99)} / "
                                                f"{_ms(self.probes, 100)} ms ({len(self.probes)} probes)"),
            ("backlog, most", f"{max((j for _, j, _ in self.backlog), default=0)} jobs queued, "
                              f"{max((r for *_, r in self.backlog), default=0)} outboxes ready"),
            ("messages stored", str(self.stored)),
            ("delivered to Slack", str(self.delivered)),
            ("lost", str(self.lost)),
            ("duplicated", str(self.duplicated)),
            ("out of order", str(self.out_of_order)),
            ("drain time", f"{self.drain_seconds:.1f} s"),
            ("result", "OK" if self.ok else "FAILED"),
        ]
        return report.table(rows)

    def window_table(self) -> str:
        """Per 10-second window: messages, end-to-end p50/p95/p99/max, the most backlog seen in it."""
        lines = ["| window | messages | p50 ms | p95 ms | p99 ms | max ms | jobs queued (most) | ready (most) |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for start, latencies in self.windows:
            in_window = [(j, r) for t, j, r in self.backlog if start <= t < start + WINDOW]
            lines.append(f"| {start:.0f}-{start + WINDOW:.0f} s | {len(latencies)} | {_ms(latencies, 50)} | "
                         f"{_ms(latencies, 95)} | {_ms(latencies, 99)} | {_ms(latencies, 100)} | "
                         f"{max((j for j, _ in in_window), default=0)} | {max((r for _, r in in_window), default=0)} |")
        return "\n".join(lines)


async def _post(session: aiohttp.ClientSession, url: str, update: dict, sent: Sent) -> None:
    sent.at = time.time()
    started = time.perf_counter()
    try:
        async with session.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as response:
            await response.read()
            sent.status = response.status
    except (aiohttp.ClientError, asyncio.TimeoutError):
        sent.status = 0
    sent.latency = time.perf_counter() - started


async def generate(bases: list[str], seconds: float, rate: float, customers: int, concurrency: int) -> list[Sent]:
    """Post ``rate * seconds`` Telegram webhooks on a steady schedule, and a new customer's first
    message every ``PROBE_EVERY`` seconds; what each got back.

    At most ``concurrency`` requests are in flight, and a customer's next message
    waits for the answer to the previous one.
    """
    total = int(seconds * rate)
    slots = asyncio.Semaphore(concurrency)
    per_customer = [asyncio.Lock() for _ in range(customers)]
    sent: list[Sent] = []
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=concurrency + 4)

    async def one(item: Sent, url: str, update: dict) -> None:
        async with per_customer[item.customer], slots:
            await _post(session, url, update, item)

    async def probe(item: Sent, url: str, update: dict) -> None:
        await _post(session, url, update, item)  # not behind the load's concurrency limit

    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        start = time.perf_counter()
        tasks = []
        probes = 0
        for number in range(total):
            delay = start + number / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            base = bases[number % len(bases)]
            customer = number % customers
            item = Sent(number, customer)
            sent.append(item)
            update = text_update(number + 1, FIRST_CHAT + customer, f"load message #{number}# from {customer}",
                                 message_id=number + 1, first_name="Load", last_name=str(customer))
            tasks.append(asyncio.create_task(one(item, f"{base}/webhooks/telegram", update)))
            if time.perf_counter() - start >= (probes + 1) * PROBE_EVERY and number + 1 < total:
                # A new customer: their own chat, a number past the load's.
                probes += 1
                mark = total + probes
                item = Sent(mark, customers + probes, probe=True)
                sent.append(item)
                update = text_update(mark + 1, FIRST_PROBE + probes, f"load message #{mark}# from {customers + probes}",
                                     message_id=1, first_name="Probe", last_name=str(probes))
                tasks.append(asyncio.create_task(probe(item, f"{base}/webhooks/telegram", update)))
        await asyncio.gather(*tasks)
    return sent


def slack_copies(slack: FakeSlack) -> dict[int, list[int]]:
    """Message numbers as Slack received them, per customer: the card's first, then the thread's."""
    return {customer: [number for number, _ in seen] for customer, seen in _slack_posts(slack).items()}


def _slack_posts(slack: FakeSlack) -> dict[int, list[tuple[int, float]]]:
    """(message number, when Slack got it) per customer, in the order Slack got them."""
    seen: dict[int, list[tuple[int, float]]] = {}
    for call in slack.calls_to("chat.postMessage"):
        params = call.params
        if params.get("channel") != CHANNEL:
            continue
        if "thread_ts" not in params:
            text = json.dumps(params.get("blocks", [])) + params.get("text", "")
            numbers = sorted({int(n) for n in MARK.findall(text)})
            for number in numbers[:1]:  # a card shows its first message (the query)
                seen.setdefault(_customer_of(text), []).append((number, call.at))
        else:
            for number in MARK.findall(params.get("text", "")):
                seen.setdefault(int(_customer_of(params["text"])), []).append((int(number), call.at))
    return seen


def _customer_of(text: str) -> int:
    match = re.search(r"load message #\d+# from (\d+)", text)
    return int(match.group(1)) if match else -1


def delivered_count(slack: FakeSlack) -> int:
    return sum(len(numbers) for numbers in slack_copies(slack).values())


def check(sent: list[Sent], copies: dict[int, list[int]]) -> tuple[int, int, int, int]:
    """(delivered, lost, duplicated, out of order) of the accepted messages."""
    accepted: dict[int, list[int]] = {}
    for item in sent:
        if 200 <= item.status < 300:
            accepted.setdefault(item.customer, []).append(item.number)
    delivered = lost = duplicated = out_of_order = 0
    for customer, expected in accepted.items():
        got = copies.get(customer, [])
        delivered += len(got)
        counts: dict[int, int] = {}
        for number in got:
            counts[number] = counts.get(number, 0) + 1
        lost += sum(1 for number in expected if number not in counts)
        duplicated += sum(n - 1 for n in counts.values() if n > 1)
        # Any message Slack got after a later one of the same customer is out of order.
        first_seen = list(dict.fromkeys(got))
        out_of_order += sum(1 for before, after in zip(first_seen, first_seen[1:]) if after < before)
    return delivered, lost, duplicated, out_of_order


def end_to_end(sent: list[Sent], slack: FakeSlack, started: float) -> tuple[list[tuple[float, list[float]]], list[float]]:
    """Per 10-second window of posting, each message's time to Slack; and the probes' (new cards)."""
    arrived = {number: at for posts in _slack_posts(slack).values() for number, at in posts}
    windows: dict[int, list[float]] = {}
    probes = []
    for item in sent:
        if item.number not in arrived or not 200 <= item.status < 300:
            continue
        latency = arrived[item.number] - item.at
        if item.probe:
            probes.append(latency)
        windows.setdefault(int((item.at - started) // WINDOW), []).append(latency)
    return [(index * WINDOW, windows[index]) for index in sorted(windows)], probes


def stored_messages(redis_url: str) -> int:
    db = redis_sync.Redis.from_url(redis_url)
    return sum(db.llen(key) for key in db.scan_iter(KEY("msgs", "*")))


def run(seconds: float = 60, rate: float = 200, customers: int = 200, concurrency: int = 64,
        drain_timeout: float = 900, workers: int = 2, webs: int = 1, log_dir: Path | None = None) -> Summary:
    """Start everything, load it, wait for the drain, check and stop everything; the summary."""
    with tempfile.TemporaryDirectory(prefix="cg-load-") as tmp:
        # The tests' deployment: its own Redis, fake Slack and Telegram (limits off), chatgate's pacing off.
        deployment = Deployment(Path(tmp), webs=webs, workers=workers, telegram={"secret_token": SECRET},
                                slack={"channel": CHANNEL},
                                delivery={"retry_intervals": [0.2, 0.5, 1, 2, 5]})
        try:
            deployment.start()
            slack = deployment.slack
            bases = [gateway.base for gateway in deployment.gateways]

            started_at = time.time()
            backlog = traffic.Backlog(deployment.redis_url)
            backlog.start()
            started = time.perf_counter()
            # The fake Slack, in this process, keeps every call: a full garbage collection over them pauses
            # it and the load generator (hundreds of ms at 200/s), which is not chatgate's latency.
            gc.disable()
            try:
                sent = asyncio.run(generate(bases, seconds, rate, customers, concurrency))
            finally:
                gc.enable()
            sending = time.perf_counter() - started

            # Drain: until Slack has every accepted message, or no progress for a while.
            accepted = sum(1 for item in sent if 200 <= item.status < 300)
            drain_started = last_progress = time.perf_counter()
            count = delivered_count(slack)
            while count < accepted and time.perf_counter() - drain_started < drain_timeout:
                time.sleep(0.2)
                now_count = delivered_count(slack)
                if now_count != count:
                    count, last_progress = now_count, time.perf_counter()
                elif time.perf_counter() - last_progress > 30:
                    break  # stuck: report what is missing
            drain = time.perf_counter() - drain_started
            backlog.done.set()
            if count >= accepted:
                deployment.wait_idle()  # a straggling duplicate has shown up by now

            delivered, lost, duplicated, out_of_order = check(sent, slack_copies(slack))
            windows, probes = end_to_end(sent, slack, started_at)
            return Summary(
                seconds=seconds, rate=rate, requests=len(sent), answered_2xx=accepted,
                non_2xx=sum(1 for item in sent if item.status and not 200 <= item.status < 300),
                errors=sum(1 for item in sent if item.status == 0),
                latencies=[item.latency for item in sent if item.status],
                stored=stored_messages(deployment.redis_url),
                delivered=delivered, lost=lost, duplicated=duplicated, out_of_order=out_of_order,
                drain_seconds=drain, sending_seconds=sending, webs=webs, workers=workers,
                windows=windows, probes=probes,
                backlog=[(at - started_at, jobs, ready) for at, jobs, ready in backlog.samples],
            )
        finally:
            deployment.stop()
            if log_dir is not None:
                for log in Path(tmp).glob("*.log"):
                    (log_dir / log.name).write_bytes(log.read_bytes())


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line; 0 when nothing was lost, duplicated or reordered."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="how long to send (default 60)")
    parser.add_argument("--rate", type=float, default=200, help="webhooks per second (default 200)")
    parser.add_argument("--customers", type=int, default=200, help="distinct Telegram chats (default 200)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight at most (default 64)")
    parser.add_argument("--webs", type=int, default=1, help="chatgate web processes (default 1)")
    parser.add_argument("--workers", type=int, default=2, help="chatgate worker processes (default 2)")
    parser.add_argument("--drain-timeout", type=float, default=900, help="longest wait for the workers (s)")
    args = parser.parse_args(argv)
    summary = run(args.seconds, args.rate, args.customers, args.concurrency, args.drain_timeout, args.workers,
                  args.webs)
    print(summary.table())
    print()
    print(summary.window_table())
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
