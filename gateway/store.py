"""The Redis store: key layout, reads, the state-machine script and the outboxes.

All keys start with one hash tag (``{prefix}``) so a Redis Cluster keeps them in
one slot and the Lua script may touch several of them atomically.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Awaitable, Callable, Mapping, TypeVar

import redis.asyncio as aioredis
import redis.exceptions

from .jobs import JobSettings, Timer
from .message import Conversation, OutboundMessage, State
from .operations import machine_source
from .redis_text import as_text, scored, writable

__all__ = ["Store", "Page", "HistoryEntry", "Figures", "AutoClose", "MAX_OFFSET", "MAX_LIMIT"]

# The deepest a list page may start, and the most rows a page may have. A page script's cost grows with
# offset + limit (it merges the Inbox's leaves from the top), and Redis runs nothing else meanwhile: at
# 1,000 + 100 it takes about 1.5 ms, where offset 100,000 took over 100 ms. Older chats are found with
# the channel and topic filters, not by paging that far.
MAX_OFFSET = 1000
MAX_LIMIT = 100



# The end of both page scripts, given the page's ids in ``reply``: {total, the page's conversations
# as one JSON string [[hash as a flat list, who declined it], ...]}. One string is far cheaper for the
# client to read than ~45 replies per conversation (redis-py parses each in Python: 4 ms a page of 20).
_PAGE_ROWS = """
local rows = {}
for _, id in ipairs(reply) do
  local raw = redis.call('HGETALL', P .. ':conv:' .. id)
  if #raw > 0 then table.insert(rows, {raw, redis.call('SMEMBERS', P .. ':declined:' .. id)}) end
end
return {total, cjson.encode(rows)}
"""


# A page of the Inbox as one agent sees it (see _PAGE_ROWS). Reads only. It reads only what
# it shows: the Inbox's leaves (see machine/common.lua's enter_inbox) that match the filters, merged from the
# top, so its cost grows with offset + limit and the number of leaves, not with the Inbox.
_INBOX_PAGE = """
local P, channel, topic, agent = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local offset, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
-- ARGV[6] '1' to hide team-only chats of topics not in ARGV[7] (comma-separated)
local by_team, served = ARGV[6] == '1', {}
for name in string.gmatch(ARGV[7] or '', '[^,]+') do served[name] = true end

local function matches(kind, chat_channel, chat_topic)
  return (channel == '' or chat_channel == channel) and (topic == '' or chat_topic == topic)
    and (not by_team or kind ~= 'team' or served[chat_topic] == true)
end

-- What to merge: the Inbox itself when every chat matches, else the matching leaves.
local sources = {}
if channel == '' and topic == '' and not by_team then
  sources = {P .. ':inbox'}
else
  local leaves = redis.call('HGETALL', P .. ':inbox:leaves')
  for i = 1, #leaves, 2 do
    local meta = cjson.decode(leaves[i + 1])
    if matches(meta[1], meta[2], meta[3]) then table.insert(sources, leaves[i]) end
  end
end

-- The agent's declined waiting chats (a few): skipped by the merge, taken off the total if they match.
local declined, total = {}, 0
if agent ~= '' then
  for _, id in ipairs(redis.call('SMEMBERS', P .. ':inbox:declined:' .. agent)) do
    declined[id] = true
    if redis.call('ZSCORE', P .. ':inbox', id) then
      local found = redis.call('HMGET', P .. ':conv:' .. id, 'team_only', 'channel', 'topic')
      if matches(found[1] == '1' and 'team' or 'open', found[2] or '', found[3] or '') then total = total - 1 end
    end
  end
end
for _, source in ipairs(sources) do total = total + redis.call('ZCARD', source) end

-- Each source is read from the top in chunks that double, so all of them together read about
-- offset + limit entries (plus a chunk each), whatever the Inbox holds.
local heads, want = {}, offset + limit
local function advance(head)
  head.at = head.at + 2
  if head.at > #head.items and not head.last then
    head.items = redis.call('ZREVRANGE', head.key, head.next, head.next + head.chunk - 1, 'WITHSCORES')
    head.at, head.next, head.last = 1, head.next + head.chunk, #head.items < 2 * head.chunk
    head.chunk = head.chunk * 2
  end
  head.id, head.score = head.items[head.at], tonumber(head.items[head.at + 1])
  return head.id ~= nil
end
if limit > 0 then
  local chunk = math.max(8, math.ceil(want / math.max(#sources, 1)))
  for _, source in ipairs(sources) do
    local head = {key = source, items = {}, at = -1, next = 0, chunk = chunk, last = false}
    if advance(head) then table.insert(heads, head) end
  end
end

-- The merge: newest activity first, equal scores as ZREVRANGE orders them (greater id first). The
-- sources are few (channels x topics x 2 at most), so the best head is found by a plain loop.
local reply, seen = {}, 0
while seen < want and #heads > 0 do
  local best = 1
  for i = 2, #heads do
    local head, top = heads[i], heads[best]
    if head.score > top.score or (head.score == top.score and head.id > top.id) then best = i end
  end
  local id = heads[best].id
  if not advance(heads[best]) then table.remove(heads, best) end
  if not declined[id] then
    seen = seen + 1
    if seen > offset then table.insert(reply, id) end
  end
end
""" + _PAGE_ROWS


# A page of an agent's Assigned list filtered by channel and topic (see _PAGE_ROWS). Reads
# only. It walks the list: an agent's own open chats, a few dozen at most.
_ASSIGNED_PAGE = """
local P, channel, topic = ARGV[1], ARGV[2], ARGV[3]
local first, last = tonumber(ARGV[4]) + 1, tonumber(ARGV[4]) + tonumber(ARGV[5])
local reply, total = {}, 0
for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
  local keep = true
  if channel ~= '' or topic ~= '' then
    local found = redis.call('HMGET', P .. ':conv:' .. id, 'channel', 'topic')
    keep = (channel == '' or found[1] == channel) and (topic == '' or found[2] == topic)
  end
  if keep then
    total = total + 1
    if total >= first and total <= last then table.insert(reply, id) end
  end
end
""" + _PAGE_ROWS


# Each agent's active chats (ARGV), counted from their Assigned list. Reads only.
_LOADS = """
local reply = {}
for i, agent in ipairs(ARGV) do
  local count = 0
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1] .. ':assigned:' .. agent, 0, -1)) do
    if redis.call('HGET', KEYS[1] .. ':conv:' .. id, 'state') == 'active' then count = count + 1 end
  end
  reply[i] = count
end
return reply
"""


def _bounded(offset: int, limit: int) -> None:
    """ValueError for a page deeper than MAX_OFFSET or longer than MAX_LIMIT (the consoles refuse those first)."""
    if not 0 <= offset <= MAX_OFFSET or not 0 <= limit <= MAX_LIMIT:
        raise ValueError(f"a page starts at offset 0 to {MAX_OFFSET} and has at most {MAX_LIMIT} rows "
                         f"(asked: offset {offset}, limit {limit})")


@dataclass(frozen=True)
class Page:
    """One page of a conversation list, newest activity first."""

    conversations: tuple[Conversation, ...]
    total: int
    offset: int
    limit: int

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.conversations) < self.total


@dataclass(frozen=True)
class HistoryEntry:
    seq: int
    direction: str  # "in" from the customer, "out" to the customer, "note" an agent's private note
    text: str
    by: str  # "customer", "system" or the agent's id
    at: float
    status: str = ""
    detail: str = ""
    attachments: tuple[dict, ...] = ()
    template: bool = False  # sent as the channel's approved template (outside its reply window)


@dataclass(frozen=True)
class Figures:
    """The team's figures: chats waiting, median first response today, average rating this week."""

    waiting: int
    median_first_response: float | None  # seconds, over first replies since 00:00 UTC
    average_rating: float | None  # over ratings of the last 7 UTC days, today included
    ratings: int


@dataclass(frozen=True)
class AutoClose:
    """The effective auto-close setting: the admin's switch in Redis, else the config."""

    enabled: bool
    after: float  # seconds


T = TypeVar("T")


def _float(value: str | None) -> float | None:
    return float(value) if value is not None and value != "" else None


class Store:
    """Async access to chatgate's data in Redis."""

    def __init__(self, redis: aioredis.Redis, prefix: str = "chatgate", jobs: JobSettings = JobSettings()):
        self.redis = redis
        self.tag = "{" + prefix + "}"
        self._jobs = jobs.encoded()
        # Assembled now, so that operations registered before the store is built are part of it.
        self._machine = redis.register_script(machine_source())
        # Operations waiting for this turn of the event loop's round trip (``run``), and those sent.
        self._queued: list = []
        self._sending: set = set()
        self._inbox_page = redis.register_script(_INBOX_PAGE)
        self._assigned_page = redis.register_script(_ASSIGNED_PAGE)
        self._indexed = False  # whether this process made sure the Inbox's indexes exist
        self._loads = redis.register_script(_LOADS)

    def key(self, *parts: str) -> str:
        return ":".join((self.tag, *parts))

    @staticmethod
    async def through_outage(write: Callable[[], Awaitable[T]], patience: float = 120.0) -> T:
        """Run ``write``, retrying while Redis is unreachable (for up to ``patience`` seconds).

        For what must be recorded because a platform already acted on it (a
        message was sent, a card was posted): were it lost, the job's retry
        would act a second time.
        """
        delay = 0.2
        deadline = time.monotonic() + patience
        while True:
            try:
                return await write()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def run(self, op: str, now: float, consoles: str, args: Mapping[str, str] | None = None) -> dict:
        """Run one state-machine operation atomically with its named ``args`` (``gateway/machine/``);
        its reply, by name.

        ``consoles`` are the enabled consoles, comma-separated: each gets the events in an outbox of its own.
        Operations asked for in the same turn of the event loop (concurrent webhooks, say) share one round
        trip: each is still its own atomic call.
        """
        loop = asyncio.get_running_loop()
        reply = loop.create_future()
        self._queued.append((self._args(op, now, consoles, args or {}), reply))
        if len(self._queued) == 1:
            # After the other handlers of this turn of the loop have queued theirs.
            loop.call_soon(self._send_queued)
        return json.loads(await reply)

    def _send_queued(self) -> None:
        batch, self._queued = self._queued, []
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)  # a reference, so the task is not collected while it runs
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list) -> None:
        try:
            replies = await self._evalsha([args for args, _ in batch])
        except BaseException as exc:  # noqa: BLE001 - handed to every caller waiting in the batch
            replies = [exc] * len(batch)
        for (_, waiting), reply in zip(batch, replies):
            if waiting.done():
                continue  # its caller was cancelled
            if isinstance(reply, BaseException):
                waiting.set_exception(reply)
            else:
                waiting.set_result(reply)

    async def _evalsha(self, calls: list[list]) -> list:
        """The machine on each argument list, pipelined in one round trip; replies or exceptions, in order."""
        sha = self._machine.sha
        for attempt in range(2):
            async with self.redis.pipeline(transaction=False) as pipe:
                for args in calls:
                    pipe.evalsha(sha, 1, self.tag, *args)
                replies = await pipe.execute(raise_on_error=False)
            if attempt or not any(isinstance(r, redis.exceptions.NoScriptError) for r in replies):
                return replies
            # A restarted Redis has forgotten the script: load it and send the batch again (a NOSCRIPT
            # reply means that call did nothing).
            missing = [i for i, r in enumerate(replies) if isinstance(r, redis.exceptions.NoScriptError)]
            await self.redis.script_load(self._machine.script)
            again = await self._evalsha([calls[i] for i in missing])
            for i, reply in zip(missing, again):
                replies[i] = reply
            return replies
        return replies

    async def run_many(self, calls: list[tuple[str, float, str, Mapping[str, str]]]) -> list[dict]:
        """Several operations (op, now, consoles, args) in one round trip, each atomic on its own."""
        replies = await self._evalsha([self._args(op, now, consoles, args) for op, now, consoles, args in calls])
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return [json.loads(reply) for reply in replies]

    def _args(self, op: str, now: float, consoles: str, args: Mapping[str, str]) -> list:
        # RQ's own timestamp format, for the jobs the call may write.
        iso = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        arguments = json.dumps(args, ensure_ascii=False)
        try:
            encoded = arguments.encode()  # as the client would; one bad call must not fail its whole batch
        except UnicodeEncodeError:
            # A lone surrogate (a platform's odd text, say) cannot be written: U+FFFD stands in for it.
            encoded = writable(arguments).encode()
        return [op, repr(now), consoles, iso, self._jobs, encoded]

    async def due_timers(self, now: float, limit: int = 200) -> list[Timer]:
        """Timers due at ``now``, earliest first (``gateway/jobs.py``)."""
        members = await self.redis.zrangebyscore(self.key("timers"), "-inf", now, start=0, num=limit)
        return [Timer.parse(as_text(member)) for member in members]

    async def take_timer(self, timer: Timer) -> bool:
        """Take a due timer off the set; False if someone else took it first."""
        return bool(await self.redis.zrem(self.key("timers"), timer.member))

    async def timers(self) -> list[tuple[Timer, float]]:
        """Every pending timer and when it is due (for tests and the admin)."""
        return [(Timer.parse(member), score)
                for member, score in scored(await self.redis.zrange(self.key("timers"), 0, -1, withscores=True))]

    # -- reads ---------------------------------------------------------------

    async def get(self, conversation_id: str) -> Conversation | None:
        """The conversation with that id, or None."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.key("conv", conversation_id))
            pipe.smembers(self.key("declined", conversation_id))
            raw, declined = await pipe.execute()
        if not raw:
            return None
        return self._conversation(raw, declined)

    async def get_many(self, ids: list[str]) -> list[Conversation]:
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for conversation_id in ids:
                pipe.hgetall(self.key("conv", conversation_id))
                pipe.smembers(self.key("declined", conversation_id))
            replies = await pipe.execute()
        found = []
        for raw, declined in zip(replies[::2], replies[1::2]):
            if raw:
                found.append(self._conversation(raw, declined))
        return found

    @staticmethod
    def _conversation(raw: dict, declined: set) -> Conversation:
        d = {k.decode(): v.decode() for k, v in raw.items()}
        return Conversation(
            id=d["id"],
            channel=d["channel"],
            customer_id=d["customer_id"],
            state=State(d["state"]),
            topic=d.get("topic", ""),
            created_at=float(d["created_at"]),
            updated_at=float(d.get("updated_at") or d["created_at"]),
            name=d.get("name", ""),
            phone=d.get("phone", ""),
            location=d.get("location", ""),
            query=d.get("query", ""),
            assignee=d.get("assignee", ""),
            previous_agent=d.get("previous_agent", ""),
            first_customer_at=_float(d.get("first_customer_at")),
            first_response_at=_float(d.get("first_response_at")),
            resolved_at=_float(d.get("resolved_at")),
            closed_at=_float(d.get("closed_at")),
            messages_in=int(d.get("messages_in") or 0),
            messages_out=int(d.get("messages_out") or 0),
            rating=int(d["rating"]) if d.get("rating") else None,
            undelivered=int(d.get("undelivered") or 0),
            head_start_for=d.get("head_start_for", ""),
            last_customer_at=_float(d.get("last_customer_at")),
            declined_by=tuple(sorted(v.decode() for v in declined)),
            team_only=d.get("team_only") == "1",
            escalations=int(d.get("escalations") or 0),
            holders=tuple(json.loads(d["holders"])) if d.get("holders", "").startswith("[") else (),
        )

    async def open_conversation(self, channel: str, customer_id: str) -> Conversation | None:
        """The customer's open (not closed) conversation on that channel, if any."""
        conversation_id = await self.redis.get(self.key("open", channel, customer_id))
        return await self.get(as_text(conversation_id)) if conversation_id else None

    async def history(self, conversation_id: str) -> list[HistoryEntry]:
        """Every message of the conversation, oldest first."""
        raw = await self.redis.lrange(self.key("msgs", conversation_id), 0, -1)
        return [self._entry(item) for item in raw]

    async def messages_after(self, conversation_id: str, seq: int, limit: int) -> list[HistoryEntry]:
        """Up to ``limit`` history entries after ``seq``, oldest first."""
        raw = await self.redis.lrange(self.key("msgs", conversation_id), seq, seq + limit - 1)
        return [self._entry(item) for item in raw]

    async def message(self, conversation_id: str, seq: int) -> HistoryEntry | None:
        raw = await self.redis.lindex(self.key("msgs", conversation_id), seq - 1)
        return self._entry(raw) if raw else None

    @staticmethod
    def _entry(raw: bytes | str) -> HistoryEntry:
        d = json.loads(raw)
        attachments = json.loads(d.get("attachments") or "[]")
        return HistoryEntry(
            seq=int(d["seq"]),
            direction=d["dir"],
            text=d.get("text", ""),
            by=d.get("by", ""),
            at=float(d["at"]),
            status=d.get("status", ""),
            detail=d.get("detail", ""),
            attachments=tuple(attachments) if isinstance(attachments, list) else (),
            template=d.get("template") is True,
        )

    async def _page(self, list_key: str, offset: int, limit: int) -> Page:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrevrange(list_key, offset, offset + limit - 1)
            pipe.zcard(list_key)
            ids, total = await pipe.execute()
        conversations = await self.get_many([i.decode() for i in ids])
        return Page(tuple(conversations), total, offset, limit)

    async def inbox(self, offset: int = 0, limit: int = 20) -> Page:
        """New conversations, most recent activity first."""
        return await self._page(self.key("inbox"), offset, limit)

    async def assigned(self, agent: str, offset: int = 0, limit: int = 20) -> Page:
        """The agent's active and resolved conversations, most recent activity first."""
        return await self._page(self.key("assigned", agent), offset, limit)

    async def closed(self, offset: int = 0, limit: int = 20) -> Page:
        return await self._page(self.key("closed"), offset, limit)

    async def inbox_for(self, agent: str, channel: str = "", topic: str = "", offset: int = 0,
                        limit: int = 20, served: tuple[str, ...] | None = None) -> Page:
        """The Inbox as ``agent`` sees it: minus chats they declined, filtered by channel and topic.

        ``served``: the routed topics the agent serves (``Routing.served_topics``); chats only a
        topic's team may take are shown to that team alone. None: no routing by topic.
        """
        _bounded(offset, limit)
        if not self._indexed:
            await self.rebuild_indexes(force=False)
        reply = await self._inbox_page(keys=[self.tag], args=[channel, topic, agent, offset, limit,
                                                              "0" if served is None else "1",
                                                              ",".join(served or ())])
        return await self._filtered_page(reply, offset, limit)

    async def assigned_for(self, agent: str, channel: str = "", topic: str = "", offset: int = 0,
                           limit: int = 20) -> Page:
        """The agent's Assigned list filtered by channel and topic (empty: any)."""
        _bounded(offset, limit)
        reply = await self._assigned_page(keys=[self.key("assigned", agent)],
                                          args=[self.tag, channel, topic, offset, limit])
        return await self._filtered_page(reply, offset, limit)

    async def _filtered_page(self, reply: list, offset: int, limit: int) -> Page:
        """The Page of a page script's reply (see ``_PAGE_ROWS``)."""
        conversations = []
        for raw, declined in json.loads(reply[1]):  # cjson writes an empty list as {}
            pairs = {raw[i].encode(): raw[i + 1].encode() for i in range(0, len(raw), 2)}
            conversations.append(self._conversation(pairs, {agent.encode() for agent in declined}))
        return Page(tuple(conversations), int(reply[0]), offset, limit)

    async def rebuild_indexes(self, force: bool = True, step: int = 1000) -> int:
        """Build the Inbox's indexes (the machine's leaves, declined lists, queue) from the Inbox, ``step``
        chats per call so Redis is never blocked long; the number of chats indexed. Without ``force`` only
        what was never built: a deployment upgraded with chats waiting gets them at its first Inbox page."""
        indexed, restart = 0, force
        while True:
            reply = await self.run("rebuild_indexes", time.time(), "", {"restart": "1" if restart else "0",
                                                                         "count": str(step)})
            indexed, restart = indexed + int(reply["indexed"]), False
            if reply["done"]:
                self._indexed = True
                return indexed

    async def figures(self, now: float) -> Figures:
        """Team figures from the per-day keys the machine writes: two round trips, no scan."""
        day = int(now // 86400)
        first_responses = self.key("first_response", str(day))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(self.key("inbox"))
            pipe.zcard(first_responses)
            for back in range(7):
                pipe.hmget(self.key("ratings", str(day - back)), "count", "sum")
            waiting, replies, *days = await pipe.execute()
        median = None
        if replies:
            middle = await self.redis.zrange(first_responses, (replies - 1) // 2, replies // 2, withscores=True)
            if middle:
                median = sum(score for _, score in scored(middle)) / len(middle)
        count = sum(int(c or 0) for c, _ in days)
        total = sum(int(s or 0) for _, s in days)
        return Figures(waiting, median, total / count if count else None, count)

    async def active_counts(self, agents: list[str]) -> dict[str, int]:
        """How many active chats each agent holds now (their load against capacity)."""
        if not agents:
            return {}
        reply = await self._loads(keys=[self.tag], args=agents)
        return {agent: int(count) for agent, count in zip(agents, reply)}

    async def escalations_total(self) -> int:
        return int(await self.redis.get(self.key("escalations_total")) or 0)

    async def auto_close_setting(self, default: AutoClose) -> AutoClose:
        """The admin's auto-close switch as stored by the machine, or ``default`` if never set."""
        enabled, after = await self.redis.hmget(self.key("settings"), "auto_close", "auto_close_after")
        if enabled is None:
            return default
        return AutoClose(enabled == b"1", float(after) if after else default.after)

    # -- outboxes ------------------------------------------------------------
    # An outbox is a Redis list drained in order by the workers (workers/outbox.py).

    def customer_outbox(self, channel: str, customer_id: str) -> str:
        return self.key("out", "customer", channel, customer_id)

    def console_outbox(self, console: str, conversation_id: str) -> str:
        return self.key("out", "console", console, conversation_id)

    def outbox_parts(self, outbox: str) -> tuple[str, str, str]:
        """An outbox key read back: ("customer", channel, customer id) or ("console", console, conversation id)."""
        parts = outbox[len(self.key("out")) + 1:].split(":", 2)
        return (parts[0], parts[1], parts[2]) if len(parts) == 3 else ("", "", "")

    async def queue_to_customer(self, message: OutboundMessage) -> None:
        """Append a message outside any conversation (a greeting) to the customer's outbox."""
        await self.run("queue_customer", time.time(), "", {"channel": message.channel,
                                                            "customer": message.customer_id,
                                                            "item": json.dumps(asdict(message))})

    # -- console state ---------------------------------------------------------
    # Small per-console mappings (a Slack card's ts for a conversation, etc.).

    async def set_ref(self, kind: str, name: str, value: str) -> None:
        await self.redis.hset(self.key("ref", kind), name, value)

    async def get_ref(self, kind: str, name: str) -> str | None:
        value = await self.redis.hget(self.key("ref", kind), name)
        return as_text(value) if value is not None else None

    async def get_refs(self, kind: str, names: list[str]) -> dict[str, str]:
        """Several refs of one kind in one call; names without one are left out."""
        if not names:
            return {}
        values = await self.redis.hmget(self.key("ref", kind), names)
        return {name: as_text(value) for name, value in zip(names, values) if value is not None}

    # -- customers ---------------------------------------------------------------

    async def opted_out(self, channel: str, customer_id: str) -> bool:
        """Whether the customer opted out of messages on ``channel`` (see ``Conversations.set_opt_out``)."""
        return bool(await self.redis.exists(self.key("optout", channel, customer_id)))

    async def customer_location(self, channel: str, customer_id: str) -> str:
        """The location kept in the customer's profile, or ""."""
        value = await self.redis.hget(self.key("customer", channel, customer_id), "location")
        return as_text(value) if value else ""

    async def sound(self, conversation_id: str, agent: str) -> bool:
        """Whether ``agent`` hears each customer message of this chat (on unless turned off)."""
        value = await self.redis.hget(self.key("sound", conversation_id), agent)
        return value != b"0"
