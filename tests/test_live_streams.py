"""Live streams at team size, through a whole chatgate (a web process, a worker, real Redis).

Every console and web-chat stream of a web process takes its events from that
process's one reader per stream kind: opening streams opens no Redis
connection; the limits answer 429 without slowing webhooks; and a stream whose
reader lost Redis ends, so the browser reconnects and resumes by event id.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis as redis_sync

from chatgate.compose import connect, load_config
from tests.fakes.telegram import text_update
from tests.live_support import (Sse, chat_customer, connected_clients, console_cookie, open_chat_stream,
                                open_console_stream, process_connections, session)
from tests.support import eventually

PER_IP = 20


@pytest.fixture(scope="module")
def chatgate(module_deployment):
    return module_deployment(webs=1, workers=1, server={"trust_forwarded_for": True},
                             webchat={"max_streams_per_ip": PER_IP})


def base(chatgate) -> str:
    return f"http://127.0.0.1:{chatgate.ports[0]}"


async def open_many(opens, batch: int = 10) -> list[Sse]:
    streams = []
    for first in range(0, len(opens), batch):
        responses = await asyncio.gather(*(make() for make in opens[first:first + batch]))
        assert all(r.status == 200 for r in responses), [r.status for r in responses]
        streams += [Sse(r).start() for r in responses]
    return streams


async def test_two_hundred_streams_open_no_redis_connection(chatgate):
    url = base(chatgate)
    async with session() as http:
        cookies = [await chat_customer(http, url, f"10.1.{n // 200}.{n % 200}") for n in range(100)]
        consoles = [await console_cookie(http, url, chatgate.redis_url) for _ in range(10)]
        opens = [lambda n=n: open_chat_stream(http, url, cookies[n], f"10.1.{n // 200}.{n % 200}") for n in range(100)]
        opens += [lambda n=n: open_console_stream(http, url, consoles[n % 10]) for n in range(100)]
        warm = await open_many(opens[:10] + opens[100:110])
        web = chatgate.webs[0].popen.pid
        before, before_web = connected_clients(chatgate.redis_url), process_connections(web)
        streams = warm + await open_many(opens[10:100] + opens[110:])
        assert len(streams) == 200
        # Idle, every stream still open; Redis saw no new connection for them.
        await asyncio.sleep(1.0)
        # The shared pool may grow with the requests opening streams at once (ten here), never with the
        # 180 streams they opened.
        after, after_web = connected_clients(chatgate.redis_url), process_connections(web)
        assert after <= before + 15 and after_web <= before_web + 15, (before, after, before_web, after_web)
        assert not any(s.ended for s in streams)

        # One console event reaches all hundred console streams, through the one reader.
        chatgate.customer_says(1, 4242, "Hello from Telegram")
        consoles_streams = streams[10:20] + streams[110:]
        for stream in consoles_streams:
            await stream.wait(lambda s: s.of("chat"))
        # The web process's connections stay flat too (the worker's come and go with its jobs).
        assert process_connections(web) <= before_web + 15, (before_web, process_connections(web))
        for stream in streams:
            await stream.close()


async def test_one_address_flooding_streams_gets_429_while_webhooks_and_healthz_stay_fast(chatgate):
    url = base(chatgate)
    flooder = "10.9.9.9"
    async with session() as http:
        cookies = [await chat_customer(http, url, flooder) for _ in range(6)]
        answers = await asyncio.gather(*(open_chat_stream(http, url, cookies[n % 6], flooder) for n in range(30)))
        statuses = sorted(r.status for r in answers)
        assert statuses.count(200) == PER_IP and statuses.count(429) == 30 - PER_IP, statuses
        refused = next(r for r in answers if r.status == 429)
        assert int(refused.headers["Retry-After"]) > 0
        assert (await refused.json())["error"].startswith("too_many_streams")

        # A web hook and the health check answer at once meanwhile.
        timings = []
        for n in range(10):
            began = time.monotonic()
            status = chatgate.customer_says(100 + n, 5000 + n, "still fast?")
            timings.append(time.monotonic() - began)
            assert status == 200
            began = time.monotonic()
            async with http.get(f"{url}/healthz") as health:
                assert health.status == 200
            timings.append(time.monotonic() - began)
        assert max(timings) < 1.0, timings

        # One console session may hold ten streams, not more.
        agent = await console_cookie(http, url, chatgate.redis_url)
        console = await asyncio.gather(*(open_console_stream(http, url, agent) for _ in range(11)))
        assert sorted(r.status for r in console) == [200] * 10 + [429]
        for response in [*answers, *console]:
            response.close()


def kill_reader(redis_url: str, name: str) -> None:
    store = redis_sync.Redis.from_url(redis_url)
    readers = [c for c in store.client_list() if c.get("name") == name]
    assert readers, f"no Redis connection named {name}"
    for client in readers:
        store.client_kill_filter(_id=client["id"])


async def test_a_stream_whose_reader_loses_redis_ends_and_the_reconnecting_page_misses_nothing(chatgate):
    url = base(chatgate)
    address = "10.2.0.1"
    services = connect(load_config(chatgate.config), chatgate.redis_url)
    async with session() as http:
        try:
            cookie = await chat_customer(http, url, address)
            async with http.post(f"{url}/chat/api/messages", json={"text": "Hello", "client_id": "k1"},
                                 headers={"Cookie": cookie, "X-Forwarded-For": address}) as written:
                conversation_id = (await written.json())["conversation"]["id"]
            agent = await console_cookie(http, url, chatgate.redis_url)
            chat = Sse(await open_chat_stream(http, url, cookie, address)).start()
            console = Sse(await open_console_stream(http, url, agent)).start()
            await services.conversations.accept(conversation_id, "admin")
            await services.conversations.reply(conversation_id, "admin", "one")
            await chat.wait(lambda s: [m for _, m in s.of("message") if m["text"] == "one"])
            await console.wait(lambda s: len(s.of("chat")) >= 2)

            kill_reader(chatgate.redis_url, "chatgate-live-webchat")
            kill_reader(chatgate.redis_url, "chatgate-live-console")
            await chat.wait(lambda s: s.ended, timeout=10)
            await console.wait(lambda s: s.ended, timeout=10)
            assert chat.ended and console.ended

            # Meanwhile the agent writes again; the reconnecting page and console resume by event id.
            await services.conversations.reply(conversation_id, "admin", "two")
            eventually(lambda: len(chatgate.store().xrange(chatgate.key("webchat", "out",
                                                                       cookie.split("=")[1].split(".")[0]))) >= 2)
            again = Sse(await open_chat_stream(http, url, cookie, address, last_id=chat.last_id)).start()
            console_again = Sse(await open_console_stream(http, url, agent, last_id=console.last_id)).start()
            await services.conversations.reply(conversation_id, "admin", "three")
            await again.wait(lambda s: [m for _, m in s.of("message") if m["text"] == "three"])
            texts = [m["text"] for _, m in chat.of("message") + again.of("message")]
            assert texts == ["one", "two", "three"], texts
            ids = [i for i, _ in chat.of("message") + again.of("message")]
            assert len(set(ids)) == 3

            await console_again.wait(lambda s: len(s.of("chat")) >= 2)
            console_ids = [i for i, _ in console.of("chat") + console_again.of("chat")]
            assert len(console_ids) == len(set(console_ids))
            stream = chatgate.store().xrange(chatgate.key("web", "events"))
            on_redis = [raw.decode() for raw, _ in stream]
            assert console_ids == on_redis[on_redis.index(console_ids[0]):][:len(console_ids)]
            for stream_ in (chat, console, again, console_again):
                await stream_.close()
        finally:
            await services.close()


# -- the pieces, without processes ----------------------------------------------------------


async def test_a_subscription_too_slow_to_keep_up_ends_rather_than_grow():
    from gateway.fanout import FanOut, StreamEnded

    fanout = FanOut("redis://unused", "key", lambda stream_id, fields: None, name="test")
    slow, quick = fanout.subscribe(limit=3), fanout.subscribe(limit=3)
    for n in range(3):
        slow.push((f"1-{n}", n))
        quick.push((f"1-{n}", n))
    assert [item for _, item in await quick.next(0.1)] == [0, 1, 2]
    slow.push(("1-3", 3))  # one more than it may hold
    quick.push(("1-3", 3))
    with pytest.raises(StreamEnded):
        await slow.next(0.1)
    assert not slow.items and [item for _, item in await quick.next(0.1)] == [3]
    slow.close()
    quick.close()
    assert fanout.subscribers == 0


@pytest.mark.parametrize("table, key", [("server", "max_streams"), ("webchat", "max_streams_per_ip")])
def test_stream_limits_in_the_config_are_checked(make_config, table, key):
    with pytest.raises(Exception) as error:
        make_config(f"[{table}]\n{key} = 0\n")
    message = str(error.value)
    assert key in message and "config.toml" in message and ">= 1" in message, message
    if table == "server":
        assert make_config("[server]\nmax_streams = 12\n").server.max_streams == 12
