"""``GET /metrics``: Prometheus text format, from Redis (shared by every process) and this process.

Conversation counts and team figures come from Redis, so any web process
answers for the whole deployment; webhook request counts are this process's.
"""

from __future__ import annotations

import time
from collections import Counter

from aiohttp import web

from .jobs import QUEUE, TIMERS_QUEUE
from .store import Store

__all__ = ["Requests", "render"]


class Requests:
    """Webhook requests answered by this process, by route and status."""

    def __init__(self):
        self.counts: Counter[tuple[str, int]] = Counter()

    def count(self, route: str, status: int) -> None:
        self.counts[(route, status)] += 1


def _line(name: str, value: float | str | None, labels: str = "") -> str:
    return f"{name}{{{labels}}} {value}" if labels else f"{name} {value}"


async def render(store: Store, requests: Requests, queue_name: str = QUEUE) -> str:
    """The metrics page: conversations by state, delivery backlog, team figures, requests."""
    async with store.redis.pipeline(transaction=False) as pipe:
        pipe.get(store.key("next_id"))
        pipe.zcard(store.key("inbox"))
        pipe.zcard(store.key("resolved"))
        pipe.zcard(store.key("closed"))
        pipe.llen(f"rq:queue:{queue_name}")
        pipe.zcard(f"rq:failed:{queue_name}")
        pipe.llen(f"rq:queue:{TIMERS_QUEUE}")
        pipe.zcard(store.key("timers"))
        total, new, resolved, closed, queued, failed, firing, timers = await pipe.execute()
    total = int(total or 0)
    figures = await store.figures(time.time())
    lines = [
        "# HELP chatgate_conversations Conversations by state (every conversation is in exactly one).",
        "# TYPE chatgate_conversations gauge",
        _line("chatgate_conversations", new, 'state="new"'),
        _line("chatgate_conversations", max(0, total - new - resolved - closed), 'state="active"'),
        _line("chatgate_conversations", resolved, 'state="resolved"'),
        _line("chatgate_conversations", closed, 'state="closed"'),
        "# HELP chatgate_delivery_jobs_queued Delivery jobs waiting for a worker (at most one per outbox).",
        "# TYPE chatgate_delivery_jobs_queued gauge",
        _line("chatgate_delivery_jobs_queued", queued),
        "# HELP chatgate_timer_jobs_queued Timer firings waiting for a worker (taken before deliveries).",
        "# TYPE chatgate_timer_jobs_queued gauge",
        _line("chatgate_timer_jobs_queued", firing),
        "# HELP chatgate_timers_pending Auto-closes, head starts, SLA checks and other timers not yet run.",
        "# TYPE chatgate_timers_pending gauge",
        _line("chatgate_timers_pending", timers),
        "# HELP chatgate_delivery_jobs_failed Jobs RQ gave up on (kept 7 days).",
        "# TYPE chatgate_delivery_jobs_failed gauge",
        _line("chatgate_delivery_jobs_failed", failed),
        "# HELP chatgate_first_response_median_seconds Median first response of today's chats (UTC).",
        "# TYPE chatgate_first_response_median_seconds gauge",
        _line("chatgate_first_response_median_seconds",
              "NaN" if figures.median_first_response is None else round(figures.median_first_response, 3)),
        "# HELP chatgate_rating_average Average customer rating over the last 7 days.",
        "# TYPE chatgate_rating_average gauge",
        _line("chatgate_rating_average", "NaN" if figures.average_rating is None else round(figures.average_rating, 3)),
        "# HELP chatgate_escalations_total New chats escalated for waiting longer than the first-response SLA.",
        "# TYPE chatgate_escalations_total counter",
        _line("chatgate_escalations_total", await store.escalations_total()),
        "# HELP chatgate_webhook_requests_total Webhook requests this process answered, by route and status.",
        "# TYPE chatgate_webhook_requests_total counter",
    ]
    for (route, status), count in sorted(requests.counts.items()):
        lines.append(_line("chatgate_webhook_requests_total", count, f'route="{route}",status="{status}"'))
    return "\n".join(lines) + "\n"


def handler(store: Store, requests: Requests, queue_name: str = QUEUE):
    """The aiohttp handler for ``GET /metrics``."""

    async def handle(_request: web.Request) -> web.Response:
        return web.Response(text=await render(store, requests, queue_name), content_type="text/plain",
                            headers={"X-Content-Type-Options": "nosniff"})

    return handle
