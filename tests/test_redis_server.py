"""The embedded Redis: a real server that keeps its data across restarts."""

from __future__ import annotations

import redis

from gateway.redis_server import EmbeddedRedis
from tests.support import keys

# The store's keys (``Store.key``) under the default prefix, for this module's plain Redis clients.
KEY = keys()


def test_restart_loses_nothing(tmp_path):
    server = EmbeddedRedis(tmp_path / "data").start()
    client = redis.Redis.from_url(server.url)
    client.hset(KEY("conv", "1"), mapping={"state": "active", "assignee": "U1"})
    client.rpush(KEY("msgs", "1"), "hello")
    client.close()
    server.stop()
    assert server.process is None

    again = EmbeddedRedis(tmp_path / "data").start()
    client = redis.Redis.from_url(again.url)
    assert client.hgetall(KEY("conv", "1")) == {b"state": b"active", b"assignee": b"U1"}
    assert client.lrange(KEY("msgs", "1"), 0, -1) == [b"hello"]
    client.close()
    again.stop()


def test_a_second_process_reuses_the_running_server(tmp_path):
    first = EmbeddedRedis(tmp_path / "data").start()
    second = EmbeddedRedis(tmp_path / "data").start()
    assert second.process is None  # nothing started, nothing to stop
    redis.Redis.from_url(second.url).set("k", "v")
    second.stop()
    assert redis.Redis.from_url(first.url).get("k") == b"v"
    first.stop()
