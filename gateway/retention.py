"""Retention: closed conversations older than ``[retention] closed_after`` leave Redis for files.

Each pass reads the ``closed`` list by close time, oldest first, a batch at a time, so its cost
follows what it removes. A batch is written to JSON Lines files (one per UTC day of closing,
appended, fsynced) *before* one Lua call deletes it from Redis; a pass that dies in between
leaves the conversations in Redis and the next pass exports them again. A conversation may so
appear twice in the files (the later line wins), never zero times.

A conversation is removed with everything kept for it alone: its hash, history, declines,
sound settings, outbox bookkeeping, what the channels and consoles remember of it in their refs (as
each declares, ``gateway.refs``), and the customer's ``last`` pointer when it names it. The
customer's profile (``customer:<channel>:<id>``) and opt-out stay. A chat with a delivery still
pending (its console outbox, or the customer's outbox, not empty) waits for the next pass.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from . import reports
from .refs import Refs, encode

__all__ = ["export_and_remove", "run", "Pass", "BATCH", "export_dir"]

BATCH = 500
# One pass at a time (two would write the same lines twice); renewed after each batch.
LOCK_TTL = 600

# ARGV: cutoff, live consoles, stale consoles (comma-separated), the refs to forget (``refs.encode``,
# JSON), then the ids. Returns the ids removed. Each conversation is re-checked here, atomically: still
# closed, closed before the cutoff, nothing waiting for delivery.
_REMOVE = """
local P = KEYS[1]
local cutoff = tonumber(ARGV[1])
local function split(text, separator)
  local items, start = {}, 1
  while true do
    local at = string.find(text, separator, start, true)
    local item = string.sub(text, start, at and at - 1 or #text)
    if item ~= '' then table.insert(items, item) end
    if not at then return items end
    start = at + #separator
  end
end
local live, stale, forgets = split(ARGV[2], ','), split(ARGV[3], ','), cjson.decode(ARGV[4])
local function key(...) return P .. ':' .. table.concat({...}, ':') end
local function ref(kind) return key('ref', kind) end

local function pending(id, channel, customer)
  for _, console in ipairs(live) do
    if redis.call('LLEN', key('out', 'console', console, id)) > 0 then return true end
  end
  -- An item of this chat still to send would, once sent, record its delivery on a removed chat.
  return redis.call('LLEN', key('out', 'customer', channel, customer)) > 0
end

local function file_count(entry)
  local files = entry.attachments
  if type(files) == 'string' then
    local fine, decoded = pcall(cjson.decode, files)
    files = fine and decoded or {}
  end
  return type(files) == 'table' and #files or 0
end

-- A field name's parts (see gateway/refs.py), each read for one conversation and, per message, one entry.
local names
local function values(part, id, entry)
  local what, found = part[1], {}
  if what == 'id' then return {id} end
  if what == 'seq' then return {tostring(entry.seq)} end
  if what == 'text' then return {part[2]} end
  if what == 'file' then
    for index = 0, file_count(entry) - 1 do table.insert(found, tostring(index)) end
  elseif what == 'either' then
    for _, each in ipairs(part[2]) do
      for _, value in ipairs(values(each, id, entry)) do table.insert(found, value) end
    end
  elseif what == 'ref' then
    for _, name in ipairs(names(part[3], id, entry)) do
      local value = redis.call('HGET', ref(part[2]), name)
      if value and part[5] ~= '' then
        local at = string.find(value, part[5], 1, true)
        value = at and string.sub(value, at + #part[5]) or false
      end
      if value and part[4] ~= '' then
        for _, item in ipairs(split(value, part[4])) do table.insert(found, item) end
      elseif value then
        table.insert(found, value)
      end
    end
  end
  return found
end
names = function(parts, id, entry)
  local found = {''}
  for index, part in ipairs(parts) do
    local here, longer = values(part, id, entry), {}
    for _, start in ipairs(found) do
      for _, value in ipairs(here) do table.insert(longer, index == 1 and value or start .. ':' .. value) end
    end
    found = longer
  end
  return found
end

-- Every field first, then the deletes: a name may be read from a ref that goes too.
local function forget_refs(id, entries)
  local doomed = {}
  local function collect(forget, entry)
    local owner = {}
    for _, name in ipairs(names(forget.only_if, id, entry)) do owner[name] = true end
    for _, name in ipairs(names(forget.name, id, entry)) do
      table.insert(doomed, {forget.kind, name, #forget.only_if > 0 and owner or false})
    end
  end
  local messages = {}
  for _, raw in ipairs(entries) do
    local ok, entry = pcall(cjson.decode, raw)
    if ok and type(entry) == 'table' and entry.seq then table.insert(messages, entry) end
  end
  for _, forget in ipairs(forgets) do
    if forget.per_message then
      for _, entry in ipairs(messages) do collect(forget, entry) end
    else
      collect(forget, nil)
    end
  end
  for _, field in ipairs(doomed) do
    local kind, name, owner = field[1], field[2], field[3]
    if not owner or owner[redis.call('HGET', ref(kind), name) or ''] then redis.call('HDEL', ref(kind), name) end
  end
end

local removed = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local conv = key('conv', id)
  local f = redis.call('HMGET', conv, 'state', 'closed_at', 'channel', 'customer_id', 'assignee')
  if not f[1] then
    redis.call('ZREM', key('closed'), id)  -- a stray entry: nothing is left to export
  elseif f[1] == 'closed' and (tonumber(f[2]) or cutoff + 1) <= cutoff and not pending(id, f[3], f[4]) then
    local channel, customer = f[3], f[4]
    forget_refs(id, redis.call('LRANGE', key('msgs', id), 0, -1))
    redis.call('DEL', conv, key('msgs', id), key('declined', id), key('sound', id))
    -- Drained outboxes are gone already; the dirty set would keep their names until a sweep.
    for _, console in ipairs(live) do redis.call('ZREM', key('dirty'), key('out', 'console', console, id)) end
    -- Consoles no longer enabled never drain theirs.
    for _, console in ipairs(stale) do
      redis.call('DEL', key('out', 'console', console, id))
      redis.call('ZREM', key('dirty'), key('out', 'console', console, id))
    end
    redis.call('ZREM', key('closed'), id)
    redis.call('ZREM', key('inbox'), id)
    redis.call('ZREM', key('resolved'), id)
    if f[5] and f[5] ~= '' then redis.call('ZREM', key('assigned', f[5]), id) end
    -- A returning customer then starts afresh (ingest reads the previous agent through ``last``).
    for _, pointer in ipairs({key('last', channel, customer), key('open', channel, customer)}) do
      if redis.call('GET', pointer) == id then redis.call('DEL', pointer) end
    end
    table.insert(removed, id)
  end
end
return removed
"""

_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end return 0"
_UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


@dataclass(frozen=True)
class Pass:
    """What one configured pass did: how many conversations left Redis, and where they went."""

    removed: int
    directory: str
    cutoff: float | None  # closed before this were removed; None: retention is off (closed_after = 0)


def export_dir(config) -> str:
    """The configured export folder (``[retention] export_dir``, else ``exports`` under ``redis.data_dir``)."""
    return config.retention.export_dir or os.path.join(config.redis.data_dir, "exports")


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(raw: bytes) -> dict:
    entry = json.loads(raw)
    entry.setdefault("attachments", [])  # the store leaves empty fields out
    if isinstance(entry.get("attachments"), str):  # stored as JSON text inside the entry
        try:
            entry["attachments"] = json.loads(entry["attachments"] or "[]")
        except ValueError:
            pass
    return entry


def _record(conversation_id: str, fields: dict, history: list, declined: set, now: float) -> dict:
    conversation = {_text(k): _text(v) for k, v in fields.items()}
    row = reports.row_of(conversation_id, conversation, now)
    metrics = {name: getattr(row, name) for name in (
        "first_response_seconds", "duration_seconds", "messages_in", "messages_out", "rating", "escalations",
        "agents")} if row else {}
    return {"id": conversation_id, "exported_at": reports.iso(now), "conversation": conversation,
            "declined_by": sorted(_text(v) for v in declined), "history": [_entry(raw) for raw in history],
            "metrics": metrics}


def _day(fields: dict) -> str:
    closed = float(_text(fields.get(b"closed_at") or fields.get(b"updated_at") or 0))
    return datetime.fromtimestamp(closed, tz=timezone.utc).strftime("%Y-%m-%d")


def _append(path: Path, lines: list[str]) -> None:
    """Append whole lines to ``path`` and fsync it (and the folder, for a new file)."""
    data = "".join(line + "\n" for line in lines).encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        size = os.fstat(fd).st_size
        # A pass that died mid-write left a partial line: end it, so our first line stays whole.
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    if size == 0:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _write(directory: Path, records: list[tuple[str, dict]]) -> None:
    by_day: dict[str, list[str]] = {}
    for day, record in records:
        by_day.setdefault(day, []).append(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
    directory.mkdir(parents=True, exist_ok=True)
    for day, lines in sorted(by_day.items()):
        _append(directory / f"conversations-{day}.jsonl", lines)


async def _read(store, ids: list[str], consoles: Sequence[str]) -> list[tuple]:
    """Each conversation's hash, history, declines and whether a delivery is still pending."""
    async with store.redis.pipeline(transaction=False) as pipe:
        for conversation_id in ids:
            pipe.hgetall(store.key("conv", conversation_id))
            pipe.lrange(store.key("msgs", conversation_id), 0, -1)
            pipe.smembers(store.key("declined", conversation_id))
            for console in consoles:
                pipe.llen(store.console_outbox(console, conversation_id))
        replies = await pipe.execute()
    width = 3 + len(consoles)
    found = [(conversation_id, *replies[i * width:i * width + 3], any(replies[i * width + 3:(i + 1) * width]))
             for i, conversation_id in enumerate(ids)]
    customers = sorted({(_text(f[b"channel"]), _text(f[b"customer_id"])) for _, f, *_ in found if f})
    async with store.redis.pipeline(transaction=False) as pipe:
        for channel, customer in customers:
            pipe.llen(store.customer_outbox(channel, customer))
        busy = {c for c, length in zip(customers, await pipe.execute()) if length}
    return [(conversation_id, fields, history, declined,
             waiting or (bool(fields) and (_text(fields[b"channel"]), _text(fields[b"customer_id"])) in busy))
            for conversation_id, fields, history, declined, waiting in found]


async def export_and_remove(store, older_than_seconds: float, directory: str | os.PathLike, now: float,
                            batch: int = BATCH, consoles: Sequence[str] = (), stale_consoles: Sequence[str] = (),
                            refs: Sequence[Refs] = (), limit: int | None = None) -> int:
    """Export closed conversations closed more than ``older_than_seconds`` before ``now`` to
    ``directory`` and remove them from Redis; the number removed (0 when ``older_than_seconds`` <= 0,
    or while another pass runs).

    ``consoles``: the enabled consoles (their outboxes must be drained first); ``stale_consoles``:
    other known consoles, whose leftover outboxes go with the chat; ``refs``: what the channels and
    consoles declare they keep per conversation (none is forgotten without them); ``limit``: stop
    after the batch that reaches it (a worker's pass stays short, the next goes on). Files are ``conversations-YYYY-MM-DD.jsonl`` by UTC day of closing, one JSON object
    per line: ``id``, ``conversation`` (the hash), ``declined_by``, ``history`` (each message,
    attachments decoded), ``metrics`` (as in reports) and ``exported_at``.
    """
    if older_than_seconds <= 0:
        return 0
    cutoff = now - older_than_seconds
    folder = Path(directory)
    lock, token = store.key("retention", "lock"), secrets.token_hex(8)
    if not await store.redis.set(lock, token, nx=True, ex=LOCK_TTL):
        return 0
    remove = store.redis.register_script(_REMOVE)
    forgets = json.dumps(encode(refs))
    removed = skipped = 0
    try:
        while limit is None or removed < limit:
            raw = await store.redis.zrangebyscore(store.key("closed"), "-inf", cutoff, start=skipped, num=batch)
            if not raw:
                break
            found = await _read(store, [_text(i) for i in raw], tuple(consoles))
            strays = [c for c, fields, *_ in found if not fields]
            ready = [(c, fields, history, declined) for c, fields, history, declined, waiting in found
                     if fields and not waiting and _text(fields.get(b"state", b"")) == "closed"]
            # On disk, synced, before anything leaves Redis.
            _write(folder, [(_day(fields), _record(c, fields, history, declined, now))
                            for c, fields, history, declined in ready])
            done = await remove(keys=[store.tag], args=[
                repr(cutoff), ",".join(consoles), ",".join(stale_consoles), forgets,
                *strays, *(c for c, *_ in ready)])
            removed += len(done)
            # What stays (a delivery pending) is stepped over: the next batch starts after it.
            skipped += len(found) - len(done) - len(strays)
            await store.redis.eval(_RENEW, 1, lock, token, LOCK_TTL)
    finally:
        await store.redis.eval(_UNLOCK, 1, lock, token)
    return removed


async def run(services, *, refs: Sequence[Refs], stale_consoles: Sequence[str], now: float | None = None,
              limit: int | None = None) -> Pass:
    """One pass as ``[retention]`` says, for a worker's periodic maintenance or ``chatgate retention``.

    The composition root says what the core cannot know: ``refs``, every channel's and console's
    declaration, and ``stale_consoles``, the known consoles not enabled (``limit``: see
    ``export_and_remove``)."""
    config = services.config
    directory = export_dir(config)
    after = config.retention.closed_after
    if after <= 0:
        return Pass(0, directory, None)
    now = time.time() if now is None else now
    removed = await export_and_remove(services.store, after, directory, now, consoles=tuple(services.consoles),
                                      stale_consoles=stale_consoles, refs=refs, limit=limit)
    return Pass(removed, directory, now - after)
