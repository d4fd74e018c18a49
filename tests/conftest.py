"""Shared fixtures: a real Redis server for the whole run, flushed before each test."""

from __future__ import annotations

import os
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

ROOT = Path(__file__).resolve().parent.parent


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
async def services(redis_url, make_config, clock):
    """The core wired to the real Redis, the real RQ dispatcher and the in-process fake console,
    on the test's clock."""
    from tests.fakes.ports import FakeChannel, FakeConsole

    config = make_config(TOPICS + "\n[fakeconsole]\nenabled = true\n[fakechannel]\nenabled = true\n")
    services = connect(config, redis_url, channels=[*channel_classes(), FakeChannel],
                       consoles=[*console_classes(), FakeConsole], clock=clock)
    yield services
    await services.close()


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


def wait_http(url: str, timeout: float = 20.0, process: Process | None = None) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process is not None and process.popen.poll() is not None:
            raise AssertionError(f"process exited:\n{process.output()}")
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer in {timeout}s" + (f"\n{process.output()}" if process else ""))
