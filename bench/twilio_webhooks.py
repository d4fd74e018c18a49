"""Signed Twilio webhooks into a real ``chatgate web``: how fast are they answered, is any lost?

Starts an embedded Redis, the fake Slack and Twilio APIs, one ``chatgate web``
and one ``chatgate worker``, then posts one signed SMS webhook for each of
``--customers`` numbers (``--concurrency`` at a time, 127.0.0.1 only), each
signed by the twilio package's ``RequestValidator``. It reports the answer
rate and latency, then waits for the worker and checks that every customer got
exactly one chat card in Slack.

    .venv/bin/python bench/twilio_webhooks.py [--customers 500] [--concurrency 16]

Exits 1 if a webhook was not answered 200 or a card is missing or doubled.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

from tests.conftest import Deployment  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402
from tests.fakes.twilio import AUTH_TOKEN, inbound  # noqa: E402
from tests.support import eventually  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

CHANNEL = "C0BENCH"


async def post_all(base: str, public_url: str, customers: int, concurrency: int) -> tuple[list[float], list[int]]:
    validator = RequestValidator(AUTH_TOKEN)
    url = public_url + "/webhooks/twilio"
    latencies: list[float] = []
    statuses: list[int] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(customers):
        queue.put_nowait(n)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            n = queue.get_nowait()
            params = inbound(f"SMbench{n:06d}", f"+1415555{n:04d}", f"Question number {n}")
            headers = {"Content-Type": "application/x-www-form-urlencoded",
                       "X-Twilio-Signature": validator.compute_signature(url, params)}
            started = time.perf_counter()
            async with session.post(base + "/webhooks/twilio", data=urlencode(params), headers=headers) as response:
                await response.read()
                statuses.append(response.status)
            latencies.append(time.perf_counter() - started)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return latencies, statuses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cg-bench-") as tmp:
        # The tests' deployment: its own Redis, fake Slack and Twilio, one web, one worker.
        public_url = "https://bench.example.com"
        deployment = Deployment(Path(tmp), server={"public_url": public_url}, telegram={"enabled": False},
                                slack={"channel": CHANNEL},
                                twilio={"enabled": True, "sms_from": "+15005550006"})
        try:
            deployment.start()
            slack = deployment.slack
            started = time.perf_counter()
            latencies, statuses = asyncio.run(post_all(deployment.gateway.base, public_url,
                                                       args.customers, args.concurrency))
            elapsed = time.perf_counter() - started

            def cards(s: FakeSlack) -> list:
                return [c for c in s.calls_to("chat.postMessage")
                        if c.params.get("channel") == CHANNEL and "thread_ts" not in c.params]

            drained = time.perf_counter()
            try:
                eventually(lambda: len(cards(slack)) >= args.customers, timeout=300, what="every card")
            except AssertionError:
                pass
            drain_time = time.perf_counter() - drained
            posted = cards(slack)
        finally:
            deployment.stop()

    ok = sum(1 for s in statuses if s == 200)
    texts = [c.params.get("text", "") for c in posted]
    unique = len(set(texts))
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"webhooks: {len(statuses)} posted, {ok} answered 200, {len(statuses) / elapsed:.0f}/s "
          f"(concurrency {args.concurrency})")
    print(f"latency: p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
          f"max {latencies[-1] * 1000:.1f} ms")
    print(f"cards in Slack: {len(posted)} ({unique} distinct) for {args.customers} customers, "
          f"all shown {drain_time:.1f} s after the last webhook")
    return 0 if ok == args.customers and len(posted) == unique == args.customers else 1


if __name__ == "__main__":
    sys.exit(main())
