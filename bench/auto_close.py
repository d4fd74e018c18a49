"""Auto-close on time under a delivery backlog: how late are chats closed after they are due?

Starts an embedded Redis, the fake Slack and Telegram APIs (limits off, chatgate's
pacing off) and ``--workers`` chatgate workers. Resolves ``--chats`` chats
through the real state machine as fast as it can, so their auto-closes all come
due within about a minute. Every resolve also queues the rating question to
the customer and updates to both consoles (Slack and the web console), so when
the closes come due the workers have a delivery backlog of their own. Lateness
is each chat's close time minus the time it was due (resolve + the delay),
from the conversations in Redis.

    .venv/bin/python bench/auto_close.py [--chats 10000] [--after 60] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis as redis_sync

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

from chatgate.compose import connect, load_config  # noqa: E402
from gateway.jobs import QUEUE  # noqa: E402
from gateway.message import InboundMessage  # noqa: E402
from bench import report  # noqa: E402
from tests.conftest import Deployment  # noqa: E402


async def _resolve_all(config_path: Path, redis_url: str, chats: int) -> None:
    services = connect(load_config(config_path), redis_url)
    try:
        conversations = services.conversations
        for first in range(0, chats, 100):
            batch = range(first, min(chats, first + 100))
            received = await asyncio.gather(*(conversations.receive(
                InboundMessage("telegram", str(5_000_000 + n), f"close-{n}", "hello", name="Bench")) for n in batch))
            ids = [r.conversation_id for r in received]
            await asyncio.gather(*(conversations.accept(cid, "admin") for cid in ids))
            await asyncio.gather(*(conversations.resolve(cid, "admin") for cid in ids))
    finally:
        await services.close()


class Backlog(threading.Thread):
    """The delivery backlog (queued jobs, ready outboxes), sampled every half second."""

    def __init__(self, redis_url: str):
        super().__init__(daemon=True)
        self.db = redis_sync.Redis.from_url(redis_url)
        self.samples: list[tuple[float, int, int]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.samples.append((time.time(), self.db.llen(f"rq:queue:{QUEUE}"), self.db.llen("{chatgate}:ready")))


def run(chats: int = 10000, after: float = 60, workers: int = 2) -> dict:
    """Resolve, wait for every close, measure; the figures."""
    with tempfile.TemporaryDirectory(prefix="cg-auto-close-") as tmp:
        deployment = Deployment(Path(tmp), webs=0, workers=workers,
                                conversation={"auto_close": True, "auto_close_after": after})
        try:
            deployment.start()
            db = redis_sync.Redis.from_url(deployment.redis_url)
            backlog = Backlog(deployment.redis_url)
            backlog.start()
            started = time.time()
            asyncio.run(_resolve_all(deployment.config, deployment.redis_url, chats))
            resolving = time.time() - started
            deadline = time.time() + after + 600
            while db.zcard("{chatgate}:closed") < chats and time.time() < deadline:
                time.sleep(0.5)
            backlog.done.set()
            late, due_at = [], []
            with db.pipeline(transaction=False) as pipe:
                for key in db.scan_iter("{chatgate}:conv:*", count=1000):
                    pipe.hmget(key, "resolved_at", "closed_at")
                for resolved, closed in pipe.execute():
                    if resolved and closed:
                        due = float(resolved) + after
                        late.append(float(closed) - due)
                        due_at.append(due)
            first_due, last_due = min(due_at), max(due_at)
            during = [(j, r) for t, j, r in backlog.samples if first_due <= t <= last_due]
            return {"chats": chats, "after": after, "workers": workers, "closed": len(late),
                    "resolving": resolving, "due_span": last_due - first_due, "late": late,
                    "jobs_at_due": max((j for j, _ in during), default=0),
                    "ready_at_due": max((r for _, r in during), default=0)}
        finally:
            deployment.stop()


def table(result: dict) -> str:
    late = result["late"]
    rows = [
        ("machine", report.machine()),
        ("setup", f"{result['workers']} workers, Slack and the web console on, auto-close after {result['after']:g} s"),
        ("chats resolved", f"{result['chats']} in {result['resolving']:.1f} s: all due within "
                           f"{result['due_span']:.1f} s"),
        ("delivery backlog while they came due", f"up to {result['ready_at_due']} outboxes ready, "
                                                 f"{result['jobs_at_due']} jobs queued"),
        ("closed", str(result["closed"])),
        ("closed after due p50/p99/max", f"{report.percentile(late, 50):.2f} / {report.percentile(late, 99):.2f} / "
                                         f"{report.percentile(late, 100):.2f} s"),
    ]
    return report.table(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chats", type=int, default=10000, help="chats resolved (default 10000)")
    parser.add_argument("--after", type=float, default=60, help="auto-close delay in seconds (default 60)")
    parser.add_argument("--workers", type=int, default=2, help="chatgate worker processes (default 2)")
    args = parser.parse_args(argv)
    result = run(args.chats, args.after, args.workers)
    print(table(result))
    return 0 if result["closed"] == args.chats else 1


if __name__ == "__main__":
    sys.exit(main())
