"""Reports: one row per conversation created in a period, and per-agent totals.

Conversation ids are handed out in creation order (``INCR`` in the same Lua call that
stamps ``created_at``), so a period is a range of ids: one pass down in batches finds
where it starts, one pass up reads it, a batch (``HMGET`` pipelined) at a time. Memory
holds a batch and each agent's first-response times, never the whole period.
Used by ``chatgate report`` and the web console's Reports page.
"""

from __future__ import annotations

import csv
import json
import statistics
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import AsyncIterator, TextIO

__all__ = ["ConversationRow", "AgentTotals", "Report", "conversation_rows", "row_of", "build", "write_csv",
           "write_json", "CONVERSATION_FIELDS", "AGENT_FIELDS"]

BATCH = 500

_FIELDS = ("created_at", "channel", "topic", "state", "assignee", "last_agent", "holders", "first_customer_at",
           "first_response_at", "closed_at", "messages_in", "messages_out", "rating", "escalations")

CONVERSATION_FIELDS = ("id", "channel", "topic", "state", "agents", "created", "first_response_seconds",
                       "duration_seconds", "messages_in", "messages_out", "rating", "escalations")
AGENT_FIELDS = ("agent", "name", "chats", "median_first_response_seconds", "average_rating", "ratings",
                "messages_in", "messages_out")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ConversationRow:
    id: str
    channel: str
    topic: str
    state: str
    agents: str  # everyone who held the chat, in order, separated by spaces
    created: str  # ISO 8601, UTC
    first_response_seconds: float | None
    duration_seconds: float  # created to closed (or to the report's end while open)
    messages_in: int
    messages_out: int
    rating: int | None
    escalations: int | None  # when the deployment counts them
    # The agent the chat counts for in the totals: its last holder.
    agent: str = field(default="", repr=False)
    created_at: float = field(default=0.0, repr=False)

    def public(self) -> dict:
        data = asdict(self)
        return {name: data[name] for name in CONVERSATION_FIELDS}


@dataclass
class AgentTotals:
    agent: str
    name: str = ""
    chats: int = 0
    first_responses: list[float] = field(default_factory=list)
    rating_sum: int = 0
    ratings: int = 0
    messages_in: int = 0
    messages_out: int = 0

    def add(self, row: ConversationRow) -> None:
        self.chats += 1
        if row.first_response_seconds is not None:
            self.first_responses.append(row.first_response_seconds)
        if row.rating is not None:
            self.rating_sum += row.rating
            self.ratings += 1
        self.messages_in += row.messages_in
        self.messages_out += row.messages_out

    @property
    def median_first_response(self) -> float | None:
        return round(statistics.median(self.first_responses), 3) if self.first_responses else None

    @property
    def average_rating(self) -> float | None:
        return round(self.rating_sum / self.ratings, 2) if self.ratings else None

    def public(self) -> dict:
        return {"agent": self.agent, "name": self.name, "chats": self.chats,
                "median_first_response_seconds": self.median_first_response,
                "average_rating": self.average_rating, "ratings": self.ratings,
                "messages_in": self.messages_in, "messages_out": self.messages_out}


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def _num(value) -> float | None:
    text = _text(value)
    return float(text) if text else None


def _row(conversation_id: str, values: list, now: float) -> ConversationRow | None:
    d = dict(zip(_FIELDS, (_text(v) for v in values)))
    if not d["created_at"]:
        return None
    created = float(d["created_at"])
    first_in, first_out, closed = _num(d["first_customer_at"]), _num(d["first_response_at"]), _num(d["closed_at"])
    agents = []
    try:  # who held the chat when (the machine's ``holders``: [{agent, from, to}, ...])
        holders = json.loads(d["holders"]) if d["holders"] else []
    except ValueError:
        holders = []
    for held in holders if isinstance(holders, list) else []:
        agent = held.get("agent", "") if isinstance(held, dict) else ""
        if agent and agent not in agents:
            agents.append(agent)
    for extra in (d["last_agent"], d["assignee"]):
        if extra and extra not in agents:
            agents.append(extra)
    return ConversationRow(
        id=conversation_id, channel=d["channel"], topic=d["topic"], state=d["state"], agents=" ".join(agents),
        created=iso(created),
        first_response_seconds=round(first_out - first_in, 3) if first_in is not None and first_out is not None
        else None,
        duration_seconds=round(max(0.0, (closed if closed is not None else now) - created), 3),
        messages_in=int(d["messages_in"] or 0), messages_out=int(d["messages_out"] or 0),
        rating=int(d["rating"]) if d["rating"] else None,
        escalations=int(d["escalations"]) if d["escalations"] else None,
        agent=d["assignee"] or d["last_agent"] or (agents[-1] if agents else ""),
        created_at=created,
    )


def row_of(conversation_id: str, fields: dict, now: float) -> ConversationRow | None:
    """The report row of one conversation from its ``conv:<id>`` hash (str or bytes keys and values);
    None without ``created_at``. ``now`` ends the duration of a chat still open."""
    text = {_text(k): v for k, v in fields.items()}
    return _row(conversation_id, [text.get(name) for name in _FIELDS], now)


async def _created(store, ids: list[int]) -> list[float | None]:
    async with store.redis.pipeline(transaction=False) as pipe:
        for conversation_id in ids:
            pipe.hget(store.key("conv", str(conversation_id)), "created_at")
        return [_num(v) for v in await pipe.execute()]


async def conversation_rows(store, since: float, until: float, now: float,
                            batch: int = BATCH) -> AsyncIterator[ConversationRow]:
    """The conversations created in [since, until), oldest first."""
    top = int(_text(await store.redis.get(store.key("next_id"))) or 0)
    # Down from the newest, a batch at a time, to the first batch wholly before ``since``
    # (ids whose conversation is gone, removed after retention, count as old).
    start = top + 1
    high = top
    while high >= 1:
        ids = list(range(high, max(0, high - batch), -1))
        created = await _created(store, ids)
        recent = [i for i, c in zip(ids, created) if c is not None and c >= since]
        if recent:
            start = min(recent)
        if not any(c is not None and c >= since for c in created):
            break
        high -= batch
    # Up from there, reading every field a row needs.
    for low in range(start, top + 1, batch):
        ids = list(range(low, min(top, low + batch - 1) + 1))
        async with store.redis.pipeline(transaction=False) as pipe:
            for conversation_id in ids:
                pipe.hmget(store.key("conv", str(conversation_id)), list(_FIELDS))
            replies = await pipe.execute()
        for conversation_id, values in zip(ids, replies):
            row = _row(str(conversation_id), values, min(now, until))
            if row is not None and since <= row.created_at < until:
                yield row


@dataclass
class Report:
    since: float
    until: float
    agents: dict[str, AgentTotals] = field(default_factory=dict)
    conversations: int = 0

    def count(self, row: ConversationRow, names) -> None:
        self.conversations += 1
        if row.agent:
            totals = self.agents.setdefault(row.agent, AgentTotals(row.agent, names(row.agent)))
            totals.add(row)

    def agent_rows(self) -> list[dict]:
        return [self.agents[a].public() for a in sorted(self.agents)]


async def build(store, since: float, until: float, now: float, names=lambda a: a) -> tuple[list[dict], Report]:
    """The whole report in memory (the web console's, for a page of figures); the CLI streams instead."""
    report, rows = Report(since, until), []
    async for row in conversation_rows(store, since, until, now):
        report.count(row, names)
        rows.append(row.public())
    return rows, report


def _cell(value) -> str:
    return "" if value is None else str(value)


async def write_csv(out: TextIO, rows: AsyncIterator[ConversationRow], report: Report, names,
                    tables: str = "all") -> None:
    """CSV: the conversations table, then (after an empty line) the agents table; or just one of them."""
    writer = csv.writer(out, lineterminator="\n")
    if tables in ("all", "conversations"):
        writer.writerow(CONVERSATION_FIELDS)
    async for row in rows:
        report.count(row, names)
        if tables in ("all", "conversations"):
            data = row.public()
            writer.writerow([_cell(data[name]) for name in CONVERSATION_FIELDS])
    if tables == "all":
        out.write("\n")
    if tables in ("all", "agents"):
        writer.writerow(AGENT_FIELDS)
        for data in report.agent_rows():
            writer.writerow([_cell(data[name]) for name in AGENT_FIELDS])


async def write_json(out: TextIO, rows: AsyncIterator[ConversationRow], report: Report, names) -> None:
    """JSON: ``{"since", "until", "conversations": [...], "agents": [...]}``, written as it is read."""
    out.write(json.dumps({"since": iso(report.since), "until": iso(report.until)})[:-1])
    out.write(', "conversations": [')
    first = True
    async for row in rows:
        report.count(row, names)
        out.write(("" if first else ",\n") + json.dumps(row.public(), ensure_ascii=False))
        first = False
    out.write('], "agents": ')
    out.write(json.dumps(report.agent_rows(), ensure_ascii=False))
    out.write("}\n")
