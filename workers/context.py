"""The worker's configuration, made available to the jobs it runs.

RQ calls job functions with their arguments only; the worker puts the loaded
config and its Redis URL here before each job (like Flask's ``current_app``).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from gateway.config import Config

__all__ = ["WorkerContext", "current", "current_context"]


@dataclass(frozen=True)
class WorkerContext:
    config: Config
    redis_url: str


current_context: ContextVar[WorkerContext] = ContextVar("chatgate_worker_context")


def current() -> WorkerContext:
    """The running worker's context; RuntimeError outside a chatgate worker."""
    try:
        return current_context.get()
    except LookupError:
        raise RuntimeError("chatgate jobs run only in `chatgate worker`") from None
