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
import time
from pathlib import Path

import redis as redis_sync

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

from bench import report, traffic  # noqa: E402
from tests.conftest import Deployment  # noqa: E402


def run(chats: int = 10000, after: float = 60, workers: int = 2) -> dict:
    """Resolve, wait for every close, measure; the figures."""
    with tempfile.TemporaryDirectory(prefix="cg-auto-close-") as tmp:
        deployment = Deployment(Path(tmp), webs=0, workers=workers,
                                conversation={"auto_close": True, "auto_close_after": after})
        try:
            deployment.start()
            db = redis_sync.Redis.from_url(deployment.redis_url)
            backlog = traffic.Backlog(deployment.redis_url, every=0.5)
            backlog.start()
            started = time.time()
            asyncio.run(traffic.accepted_chats(deployment.config, deployment.redis_url, chats, 5_000_000,
                                               lambda conversations, _n, cid: conversations.resolve(cid, "admin")))
            resolving = time.time() - started
            deadline = time.time() + after + 600
            while db.zcard(deployment.key("closed")) < chats and time.time() < deadline:
                time.sleep(0.5)
            backlog.done.set()
            late, due_at = [], []
            with db.pipeline(transaction=False) as pipe:
                for key in db.scan_iter(deployment.key("conv", "*"), count=1000):
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
