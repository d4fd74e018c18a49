"""Pacing: the platforms' rate limits, kept before the platform has to say 429.

Every process and worker sending to Slack, Telegram or Twilio shares one token
bucket per limit (a Slack channel, a Telegram chat, a Twilio sender) in Redis.
Taking a token is one small Lua call, atomic, timed by the Redis server's clock,
so processes on different hosts agree on when a token is free. A sender that
finds the bucket empty reserves the next free turn (the bucket goes below zero,
so each waiter gets its own turn, 1/rate after the one before) and sleeps until
then; a worker draining many outboxes only reserves turns within its patience
and hands the outbox back for later otherwise (``Paced``).

A 429 still counts: the channels keep honouring ``Retry-After`` (the platforms'
limits are fuzzy and shared with other apps); pacing only makes it rare.
"""

from __future__ import annotations

import asyncio
import math
import time
from contextvars import ContextVar
from typing import Any

import redis.asyncio as aioredis

from .config import ConfigReader

__all__ = ["Pacer", "Paced", "patience", "rate_setting"]

# How long a sender may wait for a token (a time.monotonic() deadline; None: as long as it takes).
# A worker draining many outboxes sets it, so one paced outbox does not hold the others up.
patience: ContextVar[float | None] = ContextVar("chatgate_pacing_patience", default=None)


class Paced(Exception):
    """No token before the sender's ``patience`` ran out: try again in ``after`` seconds."""

    def __init__(self, bucket: str, after: float):
        super().__init__(f"{bucket}: paced, next token in {after:.2f} s")
        self.after = after

# Reserve the next token of the bucket KEYS[1] (rate ARGV[1] per second, at most ARGV[2] kept) and reply
# the seconds until it is due ('0': now). The tokens go below zero: each waiter gets its own turn, 1/rate
# after the one before, rather than all waking for the same token. A turn later than ARGV[3] seconds
# (when >= 0) is not reserved: the reply is its wait, negative. Timed by Redis (TIME), not by the
# callers' clocks; a full bucket is the same as none, so the key expires once it would have refilled.
_RESERVE = """
local rate, burst, patience = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(saved[1]) or burst
local at = tonumber(saved[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens < 1 then
  wait = (1 - tokens) / rate
  if patience >= 0 and wait > patience then return string.format('-%.6f', wait) end
end
tokens = tokens - 1
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return string.format('%.6f', wait)
"""


class Pacer:
    """Shared token buckets in Redis, one per ``bucket`` name (``slack-post:C0123``, say).

    Built once per channel or console object: it holds no state of its own but
    the registered script, so any number of pacers (processes, workers) share
    a bucket by its name.
    """

    def __init__(self, redis: aioredis.Redis, prefix: str):
        self.redis = redis
        self.prefix = prefix
        self._reserve = redis.register_script(_RESERVE)

    @classmethod
    def for_store(cls, store: Any) -> "Pacer":
        """The pacer of a ``gateway.store.Store``: its Redis, keys under its hash tag (``{chatgate}:pace:…``)."""
        return cls(store.redis, store.key("pace"))

    def key(self, bucket: str) -> str:
        return f"{self.prefix}:{bucket}"

    async def take(self, bucket: str, rate: float, burst: int) -> float:
        """Take a token if there is one: 0.0; else the seconds until one is free (nothing taken)."""
        reply = float(await self._reserve(keys=[self.key(bucket)],
                                          args=[repr(float(rate)), str(max(1, int(burst))), "0"]))
        return 0.0 if reply >= 0 else -reply  # with no patience, a token is taken only if there is one now

    async def wait(self, bucket: str, rate: float, burst: int) -> None:
        """Return once a token of ``bucket`` is taken: at most ``burst`` at once, then ``rate`` per second.

        ``rate`` <= 0 means no limit: returns at once, without asking Redis. ``Paced`` when the token
        would come after the caller's ``patience``.
        """
        if rate <= 0:
            return
        deadline = patience.get()
        most = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
        reply = await self._reserve(keys=[self.key(bucket)],
                                    args=[repr(float(rate)), str(max(1, int(burst))), repr(most)])
        wait = float(reply)
        if wait < 0:
            raise Paced(bucket, -wait)  # nothing reserved: its turn is after the caller's patience
        if wait > 0:
            await asyncio.sleep(wait)  # our own turn, reserved: no one else takes it


def rate_setting(reader: ConfigReader, name: str, default: float) -> float:
    """A rate in messages per second, >= 0 (0 turns that pacing off); a problem naming the key otherwise."""
    value = reader.data.get(name)
    reader.seen.add(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        reader.problem(name, "a number of messages per second, 0 or more (0 turns this pacing off)", value)
        return default
    return float(value)
