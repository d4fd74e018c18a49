"""Pacing: with chatgate's rate limits on, how close to the configured rate does it send, and does the
platform ever have to say 429?

Starts an embedded Redis, the fake Slack and Telegram APIs enforcing the same
limits chatgate is configured with (token buckets answering the platforms' real
429s), one ``chatgate web`` and two ``chatgate worker`` processes:

- **Slack**, one channel: ``--chats`` new customers write at once; each chat's
  card must be posted to the one channel at ``--slack-rate`` per second.
- **Telegram**, one bot (Slack off, so only the bot's pace counts): an agent
  reply to each of ``--replies`` customers is queued at once; the bot sends them
  at ``--telegram-rate`` per second.

The achieved rate is taken past the burst, from the fakes' own timestamps of
the calls they accepted.

    .venv/bin/python bench/pacing.py [--chats 60] [--slack-rate 4] [--replies 300] [--telegram-rate 30]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

from bench.deliveries import queue_replies  # noqa: E402
from bench import report  # noqa: E402
from tests.conftest import CHANNEL, Deployment  # noqa: E402

BURST = 4


def achieved(stamps: list[float], burst: int) -> float:
    """Calls per second past the first ``burst`` (which a full bucket lets through at once)."""
    stamps = sorted(stamps)[burst:]
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0


def _slack(chats: int, rate: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="cg-pacing-") as tmp:
        deployment = Deployment(Path(tmp), webs=1, workers=2, slack={"post_rate": rate, "post_burst": BURST})
        try:
            deployment.start()
            slack = deployment.slack
            slack.post_limit = (rate, BURST)  # the fake enforces what chatgate is told
            for n in range(chats):
                deployment.customer_says(n + 1, 6_100_000 + n, f"pacing chat {n}")

            def cards() -> list:
                return [c for c in slack.calls_to("chat.postMessage")
                        if c.params.get("channel") == CHANNEL and "thread_ts" not in c.params]

            deadline = time.time() + chats / rate + 120
            while len(cards()) < chats and time.time() < deadline:
                time.sleep(0.2)
            stamps = [c.at for c in slack.calls_to("chat.postMessage") if c.params.get("channel") == CHANNEL]
            return {"chats": chats, "cards": len(cards()), "slack_rate": rate,
                    "slack_achieved": achieved(stamps, BURST), "slack_429": len(slack.limited)}
        finally:
            deployment.stop()


def _telegram(replies: int, rate: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="cg-pacing-") as tmp:
        # Slack off: only the bot's pace is measured here (the web console still shows every chat).
        deployment = Deployment(Path(tmp), webs=0, workers=2, slack={"enabled": False},
                                telegram={"rate_per_bot": rate, "burst_per_bot": BURST, "rate_per_chat": 1.0})
        try:
            deployment.start()
            telegram = deployment.telegram
            telegram.bot_limit = (rate, BURST)
            asyncio.run(queue_replies(deployment.config, deployment.redis_url, replies))
            deadline = time.time() + replies / rate + 120
            while len(telegram.calls_to("sendMessage")) < replies and time.time() < deadline:
                time.sleep(0.2)
            stamps = [c.at for c in telegram.calls_to("sendMessage")]
            return {"replies": replies, "sent": len(stamps), "telegram_rate": rate,
                    "telegram_achieved": achieved(stamps, BURST), "telegram_429": len(telegram.limited)}
        finally:
            deployment.stop()


def run(chats: int = 60, slack_rate: float = 4.0, replies: int = 300, telegram_rate: float = 30.0) -> dict:
    """Both measures, each on a deployment of its own; the figures."""
    return {**_slack(chats, slack_rate), **_telegram(replies, telegram_rate)}


def table(r: dict) -> str:
    def off(got: float, want: float) -> str:
        return f"{got:.2f}/s against {want:g}/s configured ({(got - want) / want:+.1%})"

    rows = [
        ("machine", report.machine()),
        ("setup", f"1 web, 2 workers; the fakes enforce the same limits (burst {BURST})"),
        ("Slack: cards in one channel", f"{r['cards']} of {r['chats']}; {off(r['slack_achieved'], r['slack_rate'])}; "
                                        f"{r['slack_429']} answered 429"),
        ("Telegram: replies from one bot", f"{r['sent']} of {r['replies']}; "
                                           f"{off(r['telegram_achieved'], r['telegram_rate'])}; "
                                           f"{r['telegram_429']} answered 429"),
    ]
    return report.table(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chats", type=int, default=60, help="new chats, one card each (default 60)")
    parser.add_argument("--slack-rate", type=float, default=4.0, help="slack.post_rate (default 4)")
    parser.add_argument("--replies", type=int, default=300, help="replies to as many customers (default 300)")
    parser.add_argument("--telegram-rate", type=float, default=30.0, help="telegram.rate_per_bot (default 30)")
    args = parser.parse_args(argv)
    r = run(args.chats, args.slack_rate, args.replies, args.telegram_rate)
    print(table(r))
    within = all(abs(r[f"{p}_achieved"] - r[f"{p}_rate"]) <= 0.1 * r[f"{p}_rate"] for p in ("slack", "telegram"))
    return 0 if within and r["cards"] == r["chats"] and r["sent"] == r["replies"] and not (
        r["slack_429"] or r["telegram_429"]) else 1


if __name__ == "__main__":
    sys.exit(main())
