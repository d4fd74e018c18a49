"""``chatgate report`` on a scripted day of conversations (the test's clock, explicit dates)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from gateway import reports
from tests.conftest import ROOT
from tests.test_machine import inbound

# 2026-01-01 00:00 UTC is the clock's start (tests/conftest.py Clock).
DAY = "2026-01-01"


async def scripted_day(services, clock) -> list[str]:
    c = services.conversations
    clock.advance(9 * 3600)  # 09:00
    one = (await c.receive(inbound("Where is my parcel?", customer="1"))).conversation_id
    clock.advance(60)
    await c.accept(one, "alice")
    clock.advance(60)
    await c.reply(one, "alice", "Let me look.")  # first response 120 s
    await c.receive(inbound("Thanks", customer="1"))
    await c.resolve(one, "alice")
    await c.receive(inbound("5", customer="1"))
    clock.advance(300)
    await c.leave(one, "alice")  # closed at 09:07, duration 420 s
    two = (await c.receive(inbound("invoice question", customer="2", channel="sms"))).conversation_id
    clock.advance(30)
    await c.accept(two, "bob")
    clock.advance(270)
    await c.reply(two, "bob", "Here it is.")  # first response 300 s
    await c.reassign(two, "root", "alice")
    await c.reply(two, "alice", "Anything else?")
    await c.resolve(two, "alice")
    await c.receive(inbound("3", customer="2", channel="sms"))
    three = (await c.receive(inbound("hello", customer="3"))).conversation_id  # still waiting at 09:12
    clock.advance(86400)  # the next day: outside the report
    await c.receive(inbound("another day", customer="4"))
    return [one, two, three]


CONFIG = """
[[agents]]
id = "alice"
name = "Alice"
[[agents]]
id = "bob"
name = "Bob"
[[agents]]
id = "root"
admin = true
"""


@pytest.fixture
async def services(make_services):
    """The core with the report's team (an admin to reassign), on the test's clock."""
    return make_services(CONFIG)


def report(tmp_path, redis_url, *args) -> str:
    config = tmp_path / "report.toml"
    config.write_text(CONFIG)
    done = subprocess.run([sys.executable, "-m", "chatgate", "report", "-c", str(config), "--redis-url", redis_url,
                           "--since", DAY, "--until", "2026-01-01T12:00", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_report_csv_has_one_row_per_conversation_and_agent_totals(services, clock, tmp_path, redis_url):
    ids = await scripted_day(services, clock)
    out = report(tmp_path, redis_url, "--format", "csv")
    conversations_part, agents_part = out.split("\n\n")
    rows = list(csv.reader(io.StringIO(conversations_part)))
    assert rows[0] == list(reports.CONVERSATION_FIELDS)
    assert rows[1:] == [
        [ids[0], "telegram", "delivery", "closed", "alice", "2026-01-01T09:00:00Z", "120.0", "420.0", "3", "1",
         "5", ""],
        [ids[1], "sms", "billing", "resolved", "bob alice", "2026-01-01T09:07:00Z", "300.0", "10380.0", "2", "2",
         "3", ""],
        [ids[2], "telegram", "general", "new", "", "2026-01-01T09:12:00Z", "", "10080.0", "1", "0", "", ""],
    ]
    agents = list(csv.reader(io.StringIO(agents_part)))
    assert agents == [
        list(reports.AGENT_FIELDS),
        ["alice", "Alice", "2", "210.0", "4.0", "2", "5", "3"],
    ]


async def test_report_json_and_one_table(services, clock, tmp_path, redis_url):
    ids = await scripted_day(services, clock)
    data = json.loads(report(tmp_path, redis_url, "--format", "json"))
    assert data["since"] == "2026-01-01T00:00:00Z" and data["until"] == "2026-01-01T12:00:00Z"
    assert [c["id"] for c in data["conversations"]] == ids
    assert data["conversations"][1]["agents"] == "bob alice" and data["conversations"][1]["rating"] == 3
    assert data["agents"] == [{"agent": "alice", "name": "Alice", "chats": 2, "median_first_response_seconds": 210.0,
                               "average_rating": 4.0, "ratings": 2, "messages_in": 5, "messages_out": 3}]
    agents_only = report(tmp_path, redis_url, "--table", "agents")
    assert agents_only.splitlines()[0] == ",".join(reports.AGENT_FIELDS)


async def test_report_reads_a_long_history_in_batches(services, clock, redis_url):
    for n in range(30):
        clock.advance(3600)
        await services.conversations.receive(inbound(f"q {n}", customer=f"b{n}"))
    since = clock.now - 10 * 3600 + 1  # the last ten
    rows = [r async for r in reports.conversation_rows(services.store, since, clock.now + 1, clock.now, batch=4)]
    assert [int(r.id) for r in rows] == list(range(21, 31))
