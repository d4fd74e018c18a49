"""Shared fixtures: a real Redis server for the whole run, flushed before each test."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import redis as redis_sync

from chatgate.compose import channel_classes, connect, console_classes, load_config
from gateway import config as config_module
from gateway.redis_server import EmbeddedRedis
from tests.fakes.slack import FakeSlack, block_action, message_event, sign
from tests.fakes.telegram import FakeTelegram, text_update
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.support import eventually, keys

ROOT = Path(__file__).resolve().parent.parent
# The store's keys under the default prefix, for the helpers here that read Redis with a plain client.
KEY = keys()


@pytest.fixture(scope="session")
def redis_server():
    """One embedded Redis (the same code chatgate runs) for the whole test run."""
    with tempfile.TemporaryDirectory(prefix="cg-redis-") as data_dir:
        server = EmbeddedRedis(data_dir).start()
        yield server
        server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    redis_sync.Redis.from_url(redis_server.url).flushall()
    return redis_server.url


@pytest.fixture
def make_config(tmp_path):
    """Build a Config from TOML text (written to a file, as chatgate reads it); the in-process
    fakes' tables (``[fakechannel]``, ``[fakeconsole]``) are known too."""
    from tests.fakes.ports import FakeChannel, FakeConsole

    def make(text: str = "") -> config_module.Config:
        path = tmp_path / "config.toml"
        path.write_text(text)
        return load_config(path, extra=[FakeChannel, FakeConsole])

    return make


TOPICS = """
[[topics]]
name = "billing"
keywords = ["invoice", "refund"]

[[topics]]
name = "delivery"
keywords = ["parcel"]
patterns = ['order\\s*#?\\d+']
"""


class Clock:
    """A clock the test moves by hand: no assertion depends on the wall clock."""

    def __init__(self, now: float = 1_767_225_600.0):  # 2026-01-01 00:00 UTC
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def make_services(redis_url, make_config, clock):
    """Build the core from ``TOPICS`` plus extra TOML, wired to the real Redis, the jobs it queues (no worker)
    and the in-process fake channel and console, on the test's clock; closed after the test."""
    from tests.fakes.ports import FakeChannel, FakeConsole

    built = []

    def make(extra: str = ""):
        config = make_config(TOPICS + extra + "\n[fakeconsole]\nenabled = true\n[fakechannel]\nenabled = true\n")
        built.append(connect(config, redis_url, channels=[*channel_classes(), FakeChannel],
                             consoles=[*console_classes(), FakeConsole], clock=clock))
        return built[-1]

    yield make
    for services in built:
        await services.close()


@pytest.fixture
async def services(make_services):
    """The core with the shared topics (see ``make_services``)."""
    return make_services()


@pytest.fixture
def slack():
    """A fake Slack Web API server of the test's own."""
    fake = FakeSlack().start()
    yield fake
    fake.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A chatgate subprocess (web or worker), stopped with its children."""

    def __init__(self, args: list[str], log_path: Path, env: dict | None = None):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "chatgate", *args], cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})}, start_new_session=True,
        )

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        from chatgate.cli import _stop_worker

        _stop_worker(self.popen)
        self.log.close()


def wait_http(url: str, timeout: float = 20.0, process: Process | None = None, healthy: bool = True) -> None:
    """Until ``url`` answers 200 (any answer at all, a 503 say, unless ``healthy``); fails at once
    if ``process`` exits meanwhile."""
    import urllib.error
    import urllib.request

    answer = ["nothing yet"]

    def answers() -> bool:
        if process is not None and process.popen.poll() is not None:
            raise AssertionError(f"process exited:\n{process.output()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                answer[0] = f"HTTP {response.status}"
                return response.status == 200
        except urllib.error.HTTPError as error:
            answer[0] = f"HTTP {error.code}"
            return not healthy
        except OSError as error:
            answer[0] = str(error)
            return False

    eventually(answers, timeout, interval=0.1, what=lambda: f"{url} to answer (its last answer: {answer[0]})"
               + (f"\n{process.output()}" if process else ""))


# -- the deployment: fakes + config + chatgate web and worker processes ------------------------

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TELEGRAM_SECRET = "s3cr3t-token_for-webhook"
CHANNEL = "C0SUPPORT"


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))


class Gateway:
    """One running ``chatgate web``: post webhooks to it, as the platforms do."""

    def __init__(self, port: int, slack, signing_secret: str = SIGNING_SECRET, channel: str = CHANNEL,
                 telegram_secret: str = TELEGRAM_SECRET, redis_url: str = ""):
        self.port = port
        self.redis_url = redis_url
        self.base = f"http://127.0.0.1:{port}"
        self.slack = slack
        self.signing_secret, self.channel, self.telegram_secret = signing_secret, channel, telegram_secret

    def store(self) -> redis_sync.Redis:
        return redis_sync.Redis.from_url(self.redis_url)

    def post(self, path: str, body: bytes, headers: dict) -> tuple[int, str]:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self.base + path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError:
            return 0, ""

    def telegram(self, update: dict, secret: str | None = None) -> tuple[int, str]:
        return self.post("/webhooks/telegram", json.dumps(update).encode(),
                         {"Content-Type": "application/json",
                          "X-Telegram-Bot-Api-Secret-Token": self.telegram_secret if secret is None else secret})

    def slack_form(self, body: str, secret: str | None = None) -> tuple[int, str]:
        return self.post("/slack/events", body.encode(), {"Content-Type": "application/x-www-form-urlencoded",
                                                          **sign(secret or self.signing_secret, body)})

    def slack_event(self, body: str, secret: str | None = None) -> tuple[int, str]:
        return self.post("/slack/events", body.encode(),
                         {"Content-Type": "application/json", **sign(secret or self.signing_secret, body)})

    def click(self, action: str, conversation_id: str, user: str, card_ts: str) -> tuple[int, str]:
        return self.slack_form(block_action(action, conversation_id, user, self.channel, card_ts,
                                            self.slack.response_url))

    def say(self, user: str, text: str, thread_ts: str, ts: str | None = None) -> tuple[int, str]:
        return self.slack_event(message_event(user, self.channel, text, ts or f"{time.time():.6f}", thread_ts))


class Deployment:
    """A whole chatgate: its own Redis, fake Slack, Telegram and Twilio, a config written once,
    ``webs`` web processes and ``workers`` workers. Sections are dicts merged over the defaults
    (``None`` drops a key); ``tail`` is extra TOML (``[[agents]]``, ``[[topics]]``). Every piece can be
    stopped and started again (the reliability tests)."""

    def __init__(self, tmp: Path, webs: int = 1, workers: int = 1, env: dict | None = None, tail: str = "",
                 telegram_token: str | None = None, healthy: bool = True, **sections: dict):
        self.tmp = tmp
        self.env = env or {}
        self.redis_server = EmbeddedRedis(str(tmp / "redis"))
        self.slack, self.twilio = FakeSlack(), FakeTwilio()
        self.telegram = FakeTelegram() if telegram_token is None else FakeTelegram(telegram_token)
        self.healthy = healthy  # False: the web processes need only answer (a config whose Redis is away)
        self.ports = [free_port() for _ in range(webs)]
        self.webs: list[Process | None] = [None] * webs
        self.workers: list[Process | None] = [None] * workers
        self.config = tmp / "config.toml"
        self.sections = sections
        # The store's key function for this deployment's prefix (``[redis] key_prefix``).
        self.key = keys((sections.get("redis") or {}).get("key_prefix") or config_module.RedisConfig.key_prefix)
        self.tail = tail
        self._starts = 0

    @property
    def redis_url(self) -> str:
        return self.redis_server.url

    @property
    def gateway(self) -> Gateway:
        return self.gateways[0]

    def config_text(self, port: int | None = None) -> str:
        """The config; a web process's has its own port."""
        # Pacing is off, as the fakes enforce no rate limit unless a test sets one: the tests and benchmarks
        # measure chatgate, not the platforms' limits (tests/test_pacing.py turns both on).
        defaults = {
            "server": {} if port is None else {"port": port},
            "redis": {"url": self.redis_url},
            "telegram": {"enabled": True, "token": self.telegram.token, "secret_token": TELEGRAM_SECRET,
                         "api_url": self.telegram.api_url, "rate_per_chat": 0, "rate_per_bot": 0},
            "slack": {"enabled": True, "bot_token": "xoxb-test-token", "signing_secret": SIGNING_SECRET,
                      "channel": CHANNEL, "api_url": self.slack.api_url, "post_rate": 0},
            "twilio": {"enabled": False, "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN,
                       "api_url": self.twilio.api_url, "rate_per_sender": 0, "whatsapp_rate_per_sender": 0},
            "conversation": {"auto_close": False},
            "routing": {},
            "delivery": {"retry_intervals": [0.2, 0.5]},
        }
        for name, values in self.sections.items():
            defaults.setdefault(name, {}).update(values or {})
        text = ""
        for name, values in defaults.items():
            text += f"[{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in values.items() if v is not None)
        return text + self.tail

    def start(self) -> "Deployment":
        self.redis_server.start()
        self.slack.start()
        self.telegram.start()
        self.twilio.start()
        self.config.write_text(self.config_text())
        for index in range(len(self.webs)):
            self.start_web(index)
        for index in range(len(self.workers)):
            self.start_worker(index)
        for index, port in enumerate(self.ports):
            wait_http(f"http://127.0.0.1:{port}/healthz", process=self.webs[index], healthy=self.healthy)
        self.gateways = [Gateway(port, self.slack, redis_url=self.redis_url) for port in self.ports]
        # A busy machine can take a while to start a worker; the tests' waits are for chatgate.
        eventually(lambda: all("Listening on" in w.output() for w in self.workers if w is not None), timeout=60,
                   what=lambda: f"the workers to listen\n{self.logs()}")
        return self

    def start_web(self, index: int) -> None:
        config = self.tmp / f"web-{index}.toml"
        config.write_text(self.config_text(port=self.ports[index]))
        self._starts += 1
        self.webs[index] = Process(["web", "-c", str(config)], self.tmp / f"web-{index}-{self._starts}.log",
                                   self.env)

    def start_worker(self, index: int) -> None:
        self._starts += 1
        self.workers[index] = Process(["worker", "-c", str(self.config)],
                                      self.tmp / f"worker-{index}-{self._starts}.log", self.env)

    def kill_worker(self, index: int) -> None:
        """SIGKILL the worker and its work horses at once, as a crashed machine would."""
        import signal

        import psutil

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
        self.twilio.stop()
        self.redis_server.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.read_text(errors='replace')[-4000:]}"
                         for p in sorted(self.tmp.glob("*.log")))

    def store(self) -> redis_sync.Redis:
        return redis_sync.Redis.from_url(self.redis_url)

    def busy(self, scheduled: bool = False, crashed: bool = False) -> str:
        """What is still to do ("" when nothing): a queued job, a started job, an outbox with items, or
        a timer or scheduled job due within a second (any if ``scheduled``). After a worker was
        SIGKILLed (or Redis went away under a job) its job stays in the started registry until RQ's
        own cleanup: ``crashed`` does not count those."""
        from rq import Queue

        from gateway.jobs import QUEUE, TIMERS_QUEUE

        store = self.store()
        horizon = "+inf" if scheduled else time.time() + 1
        for name in (TIMERS_QUEUE, QUEUE):
            queue = Queue(name, connection=store)
            if queue.count:
                return f"{queue.count} queued jobs in {name}"
            if not crashed and queue.started_job_registry.count:
                return f"started jobs {queue.started_job_registry.get_job_ids()}"
            due = store.zrangebyscore(queue.scheduled_job_registry.key, "-inf", horizon)
            if due:
                return f"scheduled jobs {due}"
        # Only the outboxes (lists): their locks and marks share the prefix.
        pending = [key.decode() for key in store.scan_iter(self.key("out", "*"))
                   if store.type(key) == b"list" and store.llen(key)]
        if pending:
            return f"outboxes with items {pending}"
        timers = store.zrangebyscore(self.key("timers"), "-inf", horizon)
        return f"timers {timers}" if timers else ""

    def wait_idle(self, scheduled: bool = False, timeout: float = 30.0, crashed: bool = False) -> None:
        """Poll until ``idle`` holds twice in a row (a job between the queue and the started
        registry is in neither for a moment); never a fixed sleep."""
        seen = ["", "?"]  # what was still to do, the last two looks

        def idle() -> bool:
            seen[:] = [seen[1], self.busy(scheduled, crashed)]
            return seen == ["", ""]

        eventually(idle, timeout, what=lambda: f"chatgate to become idle (still: {seen[1]})\n{self.logs()}")

    # -- talking to chatgate as the platforms do (any web process) ---------------------------

    def customer_says(self, update_id: int, chat: int, text: str, web: int = 0) -> int:
        return self.gateways[web].telegram(text_update(update_id, chat, text, first_name=f"Customer{chat}"))[0]

    def click(self, action: str, conversation_id: str, agent: str, web: int = 0) -> int:
        return self.gateways[web].click(action, conversation_id, agent, self.card_ts(conversation_id) or "1.1")[0]

    def agent_says(self, agent: str, conversation_id: str, text: str, ts: str, web: int = 0) -> int:
        return self.gateways[web].say(agent, text, self.card_ts(conversation_id), ts=ts)[0]

    def conversation_of(self, chat: int) -> str | None:
        value = self.store().get(self.key("open", "telegram", str(chat)))
        return value.decode() if value else None

    def card_ts(self, conversation_id: str) -> str | None:
        value = self.store().hget(self.key("ref", "slack-card"), conversation_id)
        return value.decode() if value else None

    def customer_texts_in_slack(self, conversation_id: str) -> list[str]:
        """What the agents saw of the chat, in order: the card's query, then the messages in the thread."""
        ts = self.card_ts(conversation_id)
        if ts is None:
            return []
        query = self.store().hget(self.key("conv", conversation_id), "query").decode()
        # A thread that fell behind gets several messages in one post, a line "*Name:* text" each.
        return [query, *(message for text in self.slack.thread_texts(ts)
                         for message in re.split(r"\n(?=\*[^*\n]+:\* )", text))]


def _deployments(make_dir):
    """A factory of started deployments, all stopped (their logs printed) at the end."""
    started: list[Deployment] = []

    def deploy(**options) -> Deployment:
        deployment = Deployment(make_dir(), **options)
        started.append(deployment)
        return deployment.start()

    yield deploy
    for deployment in started:
        deployment.stop()
        print(deployment.logs())


@pytest.fixture
def deployment(tmp_path):
    """``deployment(slack={...}, routing={...}, webs=2, workers=2)``: a started Deployment."""
    counter = iter(range(1000))
    yield from _deployments(lambda: tmp_path / f"deployment-{next(counter)}")


@pytest.fixture(scope="module")
def module_deployment(tmp_path_factory):
    """The same, shared by a module's tests."""
    yield from _deployments(lambda: tmp_path_factory.mktemp("deployment"))


# Debian's chromium, driven by Playwright (its own browser download is not reachable); .ci/run installs it.
CHROMIUM = os.environ.get("CHATGATE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture
async def browser():
    """Headless Chromium for the browser tests; they fail, saying why, when it is missing."""
    from playwright import async_api as playwright_api

    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: apt-get install chromium (see .ci/run)"
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        await browser.close()


# `CHATGATE_SCREENSHOTS=docs pytest tests/test_browser_*.py` refreshes the README's screenshots.
SCREENSHOTS = os.environ.get("CHATGATE_SCREENSHOTS", "")


async def screenshot(page, name: str, **options) -> None:
    """Keep a screenshot of ``page`` as ``name`` in $CHATGATE_SCREENSHOTS, when that is set."""
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(SCREENSHOTS) / name), **options)


def queued_jobs(redis_url: str) -> list[tuple[str, tuple]]:
    """The jobs waiting for a worker, timers' first: (function name, arguments)."""
    from rq import Queue

    from gateway.jobs import QUEUE, SERIALIZER, TIMERS_QUEUE

    connection = redis_sync.Redis.from_url(redis_url)
    return [(job.func_name.rsplit(".", 1)[-1], tuple(job.args))
            for name in (TIMERS_QUEUE, QUEUE)
            for job in Queue(name, connection=connection, serializer=SERIALIZER).get_jobs()]


def pending_timers(redis_url: str) -> dict[tuple[str, str], tuple[str, float]]:
    """The timers not yet run: (kind, subject) -> (argument, when due)."""
    from gateway.jobs import Timer

    connection = redis_sync.Redis.from_url(redis_url)
    found = {}
    for member, due in connection.zrange(KEY("timers"), 0, -1, withscores=True):
        timer = Timer.parse(member)
        found[(timer.kind, timer.subject)] = (timer.arg, due)
    return found
