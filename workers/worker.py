"""``chatgate worker``: an RQ worker (with the scheduler) that knows chatgate's config."""

from __future__ import annotations

import asyncio
import logging
import time

import redis.exceptions
from redis import Redis
from rq import Queue, SimpleWorker
from rq.exceptions import StopRequested

from chatgate.compose import channel_classes, connect, console_classes
from gateway.config import Config

from .context import WorkerContext, current_context
from .dispatch import QUEUE_NAME
from .outbox import sweep

__all__ = ["ChatgateWorker", "run_worker"]

log = logging.getLogger(__name__)


class ChatgateWorker(SimpleWorker):
    """An RQ worker whose jobs can read the config through ``workers.context.current()``,
    and whose periodic maintenance also restarts outboxes whose drainer died.

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
            asyncio.run(self._restart_stuck_outboxes())
        except Exception:  # noqa: BLE001 - maintenance must never stop the worker
            log.exception("outbox sweep failed")

    async def _restart_stuck_outboxes(self) -> None:
        services = connect(self.context.config, self.context.redis_url)
        try:
            consoles, customers = await sweep(services.store, self.context.config.delivery.recovery_after)
            if consoles or customers:
                log.warning("restarting delivery of %d outbox(es) left by a dead worker",
                            len(consoles) + len(customers))
                await services.conversations.dispatch.enqueue(outboxes=tuple(consoles), customers=tuple(customers))
        finally:
            await services.close()


def run_worker(config: Config, redis_url: str, burst: bool = False) -> None:
    """Work on chatgate's queue until stopped; also runs the scheduler for auto-close.

    RQ's worker quits when Redis goes away in the middle of a job; this starts a
    new one (with backoff) until Redis answers again, so a Redis restart needs
    no operator.
    """
    # The channels and consoles are slow to import: once, at start-up, not in the first jobs.
    channel_classes(), console_classes()
    connection = Redis.from_url(redis_url)
    interval = max(1, int(config.delivery.recovery_after / 2))
    backoff = 1.0
    while True:
        worker = ChatgateWorker(
            [Queue(QUEUE_NAME, connection=connection)],
            connection=connection,
            context=WorkerContext(config=config, redis_url=redis_url),
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
