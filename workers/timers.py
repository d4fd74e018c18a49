"""Firing due timers (``gateway/jobs.py``): the state machine's own in one round trip per batch,
the workers' (queue positions, console tasks) here."""

from __future__ import annotations

import json
import logging

from gateway.services import Services

__all__ = ["fire_due"]

log = logging.getLogger(__name__)

BATCH = 200


async def fire_due(services: Services) -> int:
    """Run every timer due now, in batches, until none is left; how many acted."""
    conversations = services.conversations
    fired = 0
    while due := await services.store.due_timers(conversations.clock(), BATCH):
        fired += await conversations.fire([t for t in due if t.kind in conversations.MACHINE_TIMERS])
        for timer in due:
            if timer.kind in conversations.MACHINE_TIMERS or not await services.store.take_timer(timer):
                continue
            fired += 1
            if timer.kind == "queue_positions":
                told = await conversations.tell_queue_positions()
                log.info("queue positions: %d customers told", told)
            elif timer.kind == "console_task":
                task, *args = json.loads(timer.arg)
                console = services.consoles.get(timer.subject)
                if console is not None:
                    await console.run_task(task, args, services)
            else:
                log.error("unknown timer %r dropped", timer.member)
    return fired
