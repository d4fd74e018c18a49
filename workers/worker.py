"""``chatgate worker``: an RQ worker (with the scheduler) that knows chatgate's config."""

from __future__ import annotations

from redis import Redis
from rq import Queue, Worker

from gateway.config import Config

from .context import WorkerContext, current_context
from .dispatch import QUEUE_NAME

__all__ = ["ChatgateWorker", "run_worker"]


class ChatgateWorker(Worker):
    """An RQ worker whose jobs can read the config through ``workers.context.current()``."""

    def __init__(self, *args, context: WorkerContext, **kwargs):
        super().__init__(*args, **kwargs)
        self.context = context

    def perform_job(self, job, queue, execution) -> bool:
        token = current_context.set(self.context)
        try:
            return super().perform_job(job, queue, execution)
        finally:
            current_context.reset(token)


def run_worker(config: Config, redis_url: str, burst: bool = False) -> bool:
    """Work on chatgate's queue until stopped; also runs the scheduler for auto-close."""
    connection = Redis.from_url(redis_url)
    worker = ChatgateWorker(
        [Queue(QUEUE_NAME, connection=connection)],
        connection=connection,
        context=WorkerContext(config=config, redis_url=redis_url),
    )
    return worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
