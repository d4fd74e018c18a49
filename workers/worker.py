"""``chatgate worker``: an RQ worker (with the scheduler) that knows chatgate's config."""

from __future__ import annotations

import logging
import time

import redis.exceptions
from redis import Redis
from rq import Queue, SimpleWorker
from rq.exceptions import StopRequested

from chatgate.compose import channel_classes, console_classes, run_retention
from gateway.config import Config
from gateway.jobs import QUEUE, SERIALIZER, TIMERS_QUEUE

from . import jobs
from .context import WorkerContext, current_context
from .outbox import sweep
from .timers import fire_due

__all__ = ["ChatgateWorker", "run_worker"]

log = logging.getLogger(__name__)

# Closed conversations exported and removed per maintenance run at most (keeps a run short).
RETENTION_BATCH = 5000


class ChatgateWorker(SimpleWorker):
    """An RQ worker whose jobs share its context (``workers.context.current()``: the config,
    one event loop and one set of platform clients for the worker's lifetime), and whose
    periodic maintenance also restarts outboxes whose drainer died and fires timers whose
    wake-up was missed.

    Jobs run in the worker's own process (no work horse forked per job): a delivery job
    is a few milliseconds of I/O, and a fork cost more than the job. A worker that dies
    mid-job is covered as before: the outbox sweep and RQ's abandoned-job retry.
    """

    def __init__(self, *args, context: WorkerContext, **kwargs):
        super().__init__(*args, **kwargs)
        self.context = context

    def perform_job(self, job, queue, execution) -> bool:
        token = current_context.set(self.context)
        try:
            return super().perform_job(job, queue, execution)
        finally:
            current_context.reset(token)

    def run_maintenance_tasks(self) -> None:
        # RQ's own maintenance requeues abandoned jobs that have retries left.
        super().run_maintenance_tasks()
        try:
            self.context.run(self._maintain, jobs.connect)
        except Exception:  # noqa: BLE001 - maintenance must never stop the worker
            log.exception("outbox sweep or timers failed")

    async def _maintain(self, services) -> None:
        consoles, customers = await sweep(services.store, self.context.config.delivery.recovery_after)
        if consoles or customers:
            log.warning("restarting delivery of %d outbox(es) left by a dead worker", len(consoles) + len(customers))
            await restart_drains(services, consoles, customers)
        # A timer whose wake-up was lost (Redis restarted between the two, say) runs now.
        await fire_due(services)
        await self._retention(services)

    async def _retention(self, services) -> None:
        # About once an hour per worker (a pass with nothing to do is one read); a backlog is worked
        # off a batch per maintenance run. Passes never overlap (gateway.retention locks).
        if time.monotonic() < self.context.retention_at:
            return
        done = await run_retention(services, limit=RETENTION_BATCH)
        self.context.retention_at = time.monotonic() + (0 if done.removed >= RETENTION_BATCH else 3600)
        if done.removed:
            log.info("retention: %d closed conversations exported to %s and removed", done.removed, done.directory)


async def restart_drains(services, consoles: list[tuple[str, str]], customers: list[tuple[str, str]]) -> None:
    """Put the outboxes a dead worker left (their ``:job`` mark is still set) back on the ready list: they
    are drained in the same lanes as in normal operation, so one platform's pacing (Slack's per channel)
    hands its outbox back rather than holding up another platform's deliveries."""
    store = services.store
    outboxes = [store.console_outbox(console, conversation_id) for console, conversation_id in consoles]
    outboxes += [store.customer_outbox(channel, customer_id) for channel, customer_id in customers]
    for outbox in outboxes:
        await services.conversations.ready_later(outbox, 0.0)


def run_worker(config: Config, redis_url: str, burst: bool = False) -> None:
    """Work on chatgate's queues until stopped; also runs RQ's scheduler (retries, timer wake-ups).

    RQ's worker quits when Redis goes away in the middle of a job; this starts a
    new one (with backoff) until Redis answers again, so a Redis restart needs
    no operator.
    """
    # The channels and consoles are slow to import: once, at start-up, not in the first jobs.
    channel_classes(), console_classes()
    connection = Redis.from_url(redis_url)
    interval = max(1, int(config.delivery.recovery_after / 2))
    context = WorkerContext(config=config, redis_url=redis_url, _connection=connection)
    try:
        _work(config, connection, context, interval, burst)
    finally:
        context.close()


def _work(config: Config, connection: Redis, context: WorkerContext, interval: int, burst: bool) -> None:
    """Run RQ workers until stopped, starting a new one after a Redis error."""
    backoff = 1.0
    while True:
        worker = ChatgateWorker(
            # Timers first: a worker takes its queues in order, so they never wait behind deliveries.
            [Queue(name, connection=connection, serializer=SERIALIZER) for name in (TIMERS_QUEUE, QUEUE)],
            connection=connection,
            serializer=SERIALIZER,
            context=context,
            # Maintenance (abandoned jobs, stuck outboxes) runs this often; an idle
            # worker wakes up for it as often, since RQ waits for jobs worker_ttl - 15 s.
            maintenance_interval=interval,
            worker_ttl=interval + 15,
        )
        try:
            worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.error("Redis unreachable: %s", exc)
        except StopRequested:
            return
        # Ctrl-C or SIGTERM (RQ notes when) ask for a warm shutdown: not a failure.
        if burst or worker._shutdown_requested_date is not None:
            return
        log.warning("the worker stopped after a Redis error; starting a new one in %.0f s", backoff)
        try:
            time.sleep(backoff)
        except StopRequested:
            return
        backoff = min(backoff * 2, 30.0)
