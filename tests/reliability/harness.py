"""A small chatgate deployment for fault injection: one Redis, two web processes,
two workers, fake Slack and Telegram — and the checks of what reached them."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis as redis_sync

from gateway.redis_server import EmbeddedRedis
from tests.conftest import Process, free_port, wait_http
from tests.fakes.slack import FakeSlack, block_action, message_event, sign
from tests.fakes.telegram import FakeTelegram, text_update

SIGNING_SECRET = "reliability-signing-secret"
TELEGRAM_SECRET = "reliability-telegram-secret"
CHANNEL = "C0RELIABLE"


@dataclass
class Tally:
    """What one fault scenario sent and what arrived."""

    fault: str
    sent: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, expected: list[str], arrived: list[str]) -> None:
        """Compare one stream (one chat, one direction): what was accepted vs what arrived, in order.

        Expected texts are unique tokens; an arrived text counts for the token it contains
        (Slack posts decorate the customer's words with their name).
        """
        self.sent += len(expected)
        wanted = set(expected)
        relevant = [next((e for e in expected if e in text), None) for text in arrived]
        relevant = [text for text in relevant if text is not None]
        self.delivered += len(set(relevant))
        self.lost += len(wanted - set(relevant))
        self.duplicated += len(relevant) - len(set(relevant))
        first_seen = list(dict.fromkeys(relevant))
        in_order = [text for text in expected if text in set(first_seen)]
        self.out_of_order += sum(1 for a, b in zip(first_seen, in_order) if a != b)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.out_of_order)


class Deployment:
    """Start with ``start()``; every piece can be stopped and started again."""

    def __init__(self, tmp_path: Path, webs: int = 2, workers: int = 2):
        self.tmp = tmp_path
        self.redis = EmbeddedRedis(tmp_path / "redis")
        self.slack = FakeSlack()
        self.telegram = FakeTelegram()
        self.ports = [free_port() for _ in range(webs)]
        self.webs: list[Process | None] = [None] * webs
        self.workers: list[Process | None] = [None] * workers
        self.config = tmp_path / "config.toml"
        self._starts = 0

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> "Deployment":
        self.redis.start()
        self.slack.start()
        self.telegram.start()
        self.config.write_text(f"""
[redis]
url = "{self.redis.url}"
[telegram]
enabled = true
token = "{self.telegram.token}"
secret_token = "{TELEGRAM_SECRET}"
api_url = "{self.telegram.api_url}"
[slack]
enabled = true
bot_token = "xoxb-reliability"
signing_secret = "{SIGNING_SECRET}"
channel = "{CHANNEL}"
api_url = "{self.slack.api_url}"
[conversation]
auto_close = false
[delivery]
retry_intervals = [0.5, 1, 1, 2, 2, 3]
timeout = "10s"
recovery_after = "2s"
""")
        for index in range(len(self.webs)):
            self.start_web(index)
        for index in range(len(self.workers)):
            self.start_worker(index)
        for index, port in enumerate(self.ports):
            wait_http(f"http://127.0.0.1:{port}/healthz", process=self.webs[index])
        return self

    def _process(self, kind: str, args: list[str]) -> Process:
        self._starts += 1
        return Process([kind, "-c", str(self.config), *args], self.tmp / f"{kind}-{self._starts}.log")

    def start_web(self, index: int) -> None:
        port = self.ports[index]
        config = self.tmp / f"web-{index}.toml"
        config.write_text(self.config.read_text() + f"\n[server]\nport = {port}\n")
        self._starts += 1
        self.webs[index] = Process(["web", "-c", str(config)], self.tmp / f"web-{index}-{self._starts}.log")

    def start_worker(self, index: int) -> None:
        self.workers[index] = self._process("worker", [])

    def kill_worker(self, index: int) -> None:
        """SIGKILL the worker and its work horses at once, as a crashed machine would."""
        process = self.workers[index]
        family = [psutil.Process(process.popen.pid)]
        family += family[0].children(recursive=True)
        for member in family:
            try:
                member.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        process.popen.wait()
        process.log.close()
        self.workers[index] = None

    def stop(self) -> None:
        for process in [*self.webs, *self.workers]:
            if process is not None:
                process.stop()
        self.slack.stop()
        self.telegram.stop()
        self.redis.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.read_text(errors='replace')[-4000:]}"
                         for p in sorted(self.tmp.glob("*.log")))

    # -- talking to chatgate ------------------------------------------------------

    def post(self, path: str, body: bytes, headers: dict, web: int = 0) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{self.ports[web]}{path}", data=body,
                                         headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return 0

    def customer_says(self, update_id: int, chat: int, text: str, web: int = 0) -> int:
        body = json.dumps(text_update(update_id, chat, text, first_name=f"Customer{chat}")).encode()
        return self.post("/webhooks/telegram", body, {"Content-Type": "application/json",
                                                     "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}, web)

    def click(self, action: str, conversation_id: str, agent: str, web: int = 0) -> int:
        card_ts = self.card_ts(conversation_id) or "1.1"
        body = block_action(action, conversation_id, agent, CHANNEL, card_ts, self.slack.response_url)
        return self.post("/slack/events", body.encode(),
                         {"Content-Type": "application/x-www-form-urlencoded", **sign(SIGNING_SECRET, body)}, web)

    def agent_says(self, agent: str, conversation_id: str, text: str, ts: str, web: int = 0) -> int:
        body = message_event(agent, CHANNEL, text, ts, self.card_ts(conversation_id))
        return self.post("/slack/events", body.encode(),
                         {"Content-Type": "application/json", **sign(SIGNING_SECRET, body)}, web)

    # -- what arrived --------------------------------------------------------------

    def store(self) -> redis_sync.Redis:
        return redis_sync.Redis.from_url(self.redis.url)

    def conversation_of(self, chat: int) -> str | None:
        value = self.store().get(f"{{chatgate}}:open:telegram:{chat}")
        return value.decode() if value else None

    def card_ts(self, conversation_id: str) -> str | None:
        value = self.store().hget("{chatgate}:ref:slack-card", conversation_id)
        return value.decode() if value else None

    def customer_texts_in_slack(self, conversation_id: str) -> list[str]:
        """What the agents saw of the chat, in order: the card's query, then the thread posts."""
        ts = self.card_ts(conversation_id)
        if ts is None:
            return []
        query = self.store().hget(f"{{chatgate}}:conv:{conversation_id}", "query").decode()
        return [query, *self.slack.thread_texts(ts)]

    def wait(self, predicate, timeout: float = 60.0, what: str = "it") -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")


def check_conversations(store: redis_sync.Redis) -> list[str]:
    """Every conversation in exactly one state, in exactly the list that state means, with
    at most one assignee. Returns the inconsistencies found (empty when all is well)."""
    problems = []
    inbox = {m.decode() for m in store.zrange("{chatgate}:inbox", 0, -1)}
    closed = {m.decode() for m in store.zrange("{chatgate}:closed", 0, -1)}
    assigned: dict[str, set[str]] = {}
    for key in store.scan_iter("{chatgate}:assigned:*"):
        agent = key.decode().rsplit(":", 1)[1]
        for member in store.zrange(key, 0, -1):
            assigned.setdefault(member.decode(), set()).add(agent)
    for key in store.scan_iter("{chatgate}:conv:*"):
        conv = {k.decode(): v.decode() for k, v in store.hgetall(key).items()}
        cid, state, assignee = conv["id"], conv["state"], conv.get("assignee", "")
        holders = assigned.get(cid, set())
        lists = {"inbox"} if cid in inbox else set()
        if cid in closed:
            lists.add("closed")
        if holders:
            lists.add("assigned")
        expected = {"new": {"inbox"}, "active": {"assigned"}, "resolved": {"assigned"}, "closed": {"closed"}}[state]
        if lists != expected:
            problems.append(f"chat {cid} is {state} but in {sorted(lists)}")
        if state in ("active", "resolved") and holders != {assignee}:
            problems.append(f"chat {cid} is {state} for {assignee!r} but in the Assigned lists of {sorted(holders)}")
        if state == "new" and assignee:
            problems.append(f"chat {cid} is new but assigned to {assignee}")
    return problems
