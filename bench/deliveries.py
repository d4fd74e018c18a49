"""Deliveries to customers: how many sends per second the workers make, against an empty job.

Starts an embedded Redis, the fake Telegram API (answering at once, its rate
limits off) and ``--workers`` chatgate worker processes. Queues one agent reply
to each of ``--customers`` Telegram customers through the real state machine
(each customer's outbox gets its own drain job), holds the jobs back, then
releases them all at once to the idle workers and times until the fake Telegram
has every message. The reference, in the same run on the same workers: as many
empty jobs, released the same way.

chatgate's own Telegram pacing (``rate_per_chat``, ``rate_per_bot``) is off here:
this measures what the workers can do; pacing is measured in ``bench/pacing.py``.

    .venv/bin/python bench/deliveries.py [--customers 3000] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import redis as redis_sync
from rq import Queue

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

from gateway.jobs import QUEUE, SERIALIZER  # noqa: E402
from bench import report, traffic  # noqa: E402
from tests.conftest import Deployment  # noqa: E402


def empty_job() -> None:
    """The reference: a job that does nothing (imported by the workers as ``bench.deliveries.empty_job``)."""


def _hold(connection: redis_sync.Redis) -> list[bytes]:
    """Take every queued job id off the queue (the workers see none)."""
    key = f"rq:queue:{QUEUE}"
    with connection.pipeline() as pipe:
        pipe.lrange(key, 0, -1)
        pipe.delete(key)
        ids, _ = pipe.execute()
    return ids


def _release(connection: redis_sync.Redis, ids: list[bytes]) -> float:
    """Put the jobs back in one command; when."""
    started = time.time()
    connection.rpush(f"rq:queue:{QUEUE}", *ids)
    return started


def _idle(connection: redis_sync.Redis) -> bool:
    queue = Queue(QUEUE, connection=connection, serializer=SERIALIZER)
    return queue.count == 0 and queue.started_job_registry.count == 0


async def queue_replies(config_path: Path, redis_url: str, customers: int) -> None:
    """One agent reply queued to each of ``customers`` new Telegram customers."""
    await traffic.accepted_chats(config_path, redis_url, customers, 8_000_000,
                                 lambda conversations, n, cid: conversations.reply(cid, "admin", f"reply #{n}"),
                                 batch=200)


def run(customers: int = 3000, workers: int = 2) -> dict:
    """Both measures, in one run; sends and empty jobs per second."""
    with tempfile.TemporaryDirectory(prefix="cg-deliveries-") as tmp:
        # No console: only the customers' outboxes get jobs.
        deployment = Deployment(Path(tmp), webs=0, workers=0, slack={"enabled": False}, web={"enabled": False})
        try:
            deployment.start()
            connection = redis_sync.Redis.from_url(deployment.redis_url)
            asyncio.run(queue_replies(deployment.config, deployment.redis_url, customers))
            deliveries = _hold(connection)
            reference = [Queue(QUEUE, connection=connection, serializer=SERIALIZER).enqueue(
                "bench.deliveries.empty_job", result_ttl=0).id for _ in range(customers)]
            _hold(connection)
            deployment.workers = [None] * workers
            for index in range(workers):
                deployment.start_worker(index)
            deadline = time.time() + 60
            while not all("Listening on" in w.output() for w in deployment.workers) and time.time() < deadline:
                time.sleep(0.05)

            telegram = deployment.telegram
            started = _release(connection, deliveries)
            # Polled lightly: the fake Telegram answers from a thread of this process.
            while len(telegram.calls) < customers or not _idle(connection):
                time.sleep(0.02)
            last = max(call.at for call in telegram.calls_to("sendMessage"))
            send_seconds = last - started
            sent = len(telegram.calls_to("sendMessage"))

            started = _release(connection, reference)
            while not _idle(connection):
                time.sleep(0.005)
            empty_seconds = time.time() - started
            return {"customers": customers, "workers": workers, "jobs": len(deliveries), "sent": sent,
                    "sends_per_second": sent / send_seconds, "empty_per_second": len(reference) / empty_seconds,
                    "send_seconds": send_seconds, "empty_seconds": empty_seconds}
        finally:
            deployment.stop()


def table(result: dict) -> str:
    rows = [
        ("machine", report.machine()),
        ("setup", f"{result['workers']} worker processes, fake Telegram (instant), chatgate's pacing off"),
        ("deliveries", f"{result['sent']} messages to {result['customers']} customers "
                       f"({result['jobs']} drain job(s) queued for them)"),
        ("sends per second", f"{result['sends_per_second']:.0f} ({result['send_seconds']:.2f} s)"),
        ("reference: empty jobs per second", f"{result['empty_per_second']:.0f} ({result['customers']} jobs in "
                                             f"{result['empty_seconds']:.2f} s)"),
        ("sends / empty jobs", f"{result['sends_per_second'] / result['empty_per_second']:.0%}"),
    ]
    return report.table(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=3000, help="customers, one reply each (default 3000)")
    parser.add_argument("--workers", type=int, default=2, help="chatgate worker processes (default 2)")
    args = parser.parse_args(argv)
    result = run(args.customers, args.workers)
    print(table(result))
    return 0 if result["sent"] == args.customers else 1


if __name__ == "__main__":
    sys.exit(main())
