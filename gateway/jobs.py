"""The jobs the state machine hands to the RQ workers, and how it writes them.

The state machine (``machine/``) writes RQ jobs itself, in the same atomic call as the change that
needs them (``jobs.lua``): a message stored and its delivery queued are one
round trip, and a crash can never keep one without the other.

- **Drains.** Each outbox has at most one pending drain job: the call that
  appends to an idle outbox marks it (``<outbox>:job``) and queues the job; the
  drainer clears the mark when it empties the outbox (``workers/outbox.py``).
  A burst leaves no empty jobs behind, and a new chat is never queued behind
  another chat's backlog.
- **Timers.** Auto-close, the returning customer's head start, the topic team's
  wait, SLA escalations, queue positions and console tasks are members of one
  sorted set (``{prefix}:timers``) scored by when they are due, written with the
  transition that starts them. A wake-up job per due second (RQ's scheduler) or,
  for what is already due, an immediate one, runs ``workers.jobs.fire_timers`` on
  a queue of its own that workers take before deliveries: timers never wait
  behind deliveries.

Jobs are stored in rq 3.0's job hash with RQ's JSON serializer (pinned in
``pyproject.toml``); ``tests/test_jobs.py`` checks RQ reads what Lua writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from rq.serializers import JSONSerializer

__all__ = ["JobSettings", "QUEUE", "TIMERS_QUEUE", "SERIALIZER", "Timer"]

QUEUE = "chatgate"
# Timers run first: a worker takes jobs from its queues in order.
TIMERS_QUEUE = "chatgate-timers"
SERIALIZER = JSONSerializer


@dataclass(frozen=True)
class JobSettings:
    """What every delivery job carries (from ``[delivery]``); encoded once for the Lua calls."""

    retry_intervals: tuple[float, ...] = (1.0, 5.0, 30.0)
    timeout: int = 180
    queue: str = QUEUE
    timers_queue: str = TIMERS_QUEUE

    def encoded(self) -> str:
        return json.dumps({
            "queue": self.queue, "timers": self.timers_queue, "timeout": self.timeout,
            "retries": len(self.retry_intervals), "intervals": json.dumps(list(self.retry_intervals)),
        })


@dataclass(frozen=True)
class Timer:
    """One due timer, read from its sorted-set member ``kind|subject|arg``."""

    member: str
    kind: str  # auto_close, offer, open_to_all, escalate, queue_positions, console_task
    subject: str  # the conversation id (the console for console_task)
    arg: str

    @classmethod
    def parse(cls, member: bytes | str) -> Timer:
        text = member.decode() if isinstance(member, bytes) else member
        kind, subject, arg = (text.split("|", 2) + ["", ""])[:3]
        return cls(text, kind, subject, arg)
