"""Web console sessions that end when they should, and sign-in limits that hold behind a proxy and against
an attacker who knows an agent's name. The real app in-process (``tests.web_console_support.build``)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent_console.web.passwords import hash_password
from agent_console.web.sessions import COOKIE
from channels.webchat import WebChat
from gateway import config as config_module
from gateway.config import ConfigError
from tests import web_console_support
from tests.conftest import Clock
from tests.web_console_support import PASSWORDS, build

TRUSTED = "[server]\ntrust_forwarded_for = true\n"


async def sign_in(client, user: str, password: str | None = None, via: str | None = None, **extra):
    headers = {"X-Forwarded-For": via} if via else {}
    headers.update(extra.pop("headers", {}))
    return await client.post("/console/login", data={"username": user, "password": password or PASSWORDS[user]},
                             headers=headers, allow_redirects=False, **extra)


async def signed_in(client, user: str = "alice", via: str | None = None) -> str:
    response = await sign_in(client, user, via=via)
    assert response.status == 303, await response.text()
    return (await (await client.get("/console/api/me")).json())["csrf"]


def cookie_of(client) -> str:
    return client.session.cookie_jar.filter_cookies(client.make_url("/console"))[COOKIE].value


def with_cookie(client, value: str) -> None:
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({COOKIE: value}, client.make_url("/console"))


async def ends_within(response, seconds: float) -> float:
    """Read the SSE response to its end; how long that took (fails if it is still open after ``seconds``)."""
    started = time.monotonic()

    async def drain() -> None:
        while await response.content.readany():
            pass

    await asyncio.wait_for(drain(), seconds)
    return time.monotonic() - started


async def open_stream(client):
    response = await client.get("/console/api/events")
    assert response.status == 200
    head = b""
    while b"event: figures" not in head:  # open and serving
        head += await asyncio.wait_for(response.content.readany(), 5)
    return response


# -- sessions end when they should --------------------------------------------------------


async def test_sign_out_ends_open_streams_of_every_session_of_that_agent_only(redis_url, tmp_path):
    harness = build(tmp_path, redis_url)
    harness.console.ping_every = 30.0  # no ping comes to the rescue: the session check ends the stream
    server = TestServer(harness.app)
    try:
        async with TestClient(server) as laptop, TestClient(server) as phone, TestClient(server) as bob:
            csrf = await signed_in(laptop)
            await signed_in(phone)
            await signed_in(bob, "bob")
            laptop_stream, phone_stream, bob_stream = (await open_stream(laptop), await open_stream(phone),
                                                       await open_stream(bob))
            cid = await harness.customer_writes("Hello")
            seen = b""
            while cid.encode() not in seen:  # the stream delivers while signed in
                seen += await asyncio.wait_for(phone_stream.content.readany(), 5)

            assert (await laptop.post("/console/logout", headers={"X-CSRF-Token": csrf})).status == 200
            assert await ends_within(laptop_stream, 5) < 5
            assert await ends_within(phone_stream, 5) < 5  # the other device's session ended with it
            assert (await phone.get("/console/api/me")).status == 401
            # Bob's stream goes on and still gets events.
            assert not bob_stream.content.at_eof()
            other = await harness.customer_writes("Hello again", customer="1002")
            seen = b""
            while other.encode() not in seen:
                seen += await asyncio.wait_for(bob_stream.content.readany(), 5)
            assert (await bob.get("/console/api/me")).status == 200
            for stream in (laptop_stream, phone_stream, bob_stream):
                stream.close()
            # Signing in again works, with a fresh session.
            await signed_in(laptop)
    finally:
        await harness.close()


async def test_a_changed_password_or_a_removed_agent_ends_their_sessions_on_restart(redis_url, tmp_path,
                                                                                   monkeypatch):
    harness = build(tmp_path, redis_url)
    cookies = {}
    try:
        async with TestClient(TestServer(harness.app)) as client:
            for user in ("alice", "bob", "ada"):
                client.session.cookie_jar.clear()
                await signed_in(client, user)
                cookies[user] = cookie_of(client)
    finally:
        await harness.close()

    # The web process restarts with a new config: Alice's password changed, Ada is gone, Bob is as he was.
    new_hash = hash_password("alice-new-secret", n=2**12)
    agents = web_console_support.AGENTS_TOML
    alice_old = agents.split('password_hash = "')[1].split('"')[0]
    agents = agents.replace(alice_old, new_hash)
    agents = agents[:agents.index('[[agents]]\nid = "ada"')]
    monkeypatch.setattr(web_console_support, "AGENTS_TOML", agents)
    harness = build(tmp_path, redis_url)
    harness.console.ping_every = 30.0
    try:
        async with TestClient(TestServer(harness.app)) as client:
            for user, status in (("alice", 401), ("ada", 401), ("bob", 200)):
                with_cookie(client, cookies[user])
                assert (await client.get("/console/api/me")).status == status, user
                page = await client.get("/console", allow_redirects=False)
                assert page.status == (302 if status == 401 else 200), user
            with_cookie(client, cookies["alice"])
            assert (await client.get("/console/api/events")).status == 401
            client.session.cookie_jar.clear()
            assert (await sign_in(client, "alice")).status == 401  # the old password is gone
            assert (await sign_in(client, "alice", "alice-new-secret")).status == 303
            assert (await client.get("/console/api/me")).status == 200
    finally:
        await harness.close()


async def test_a_password_change_in_the_running_team_ends_an_open_stream(redis_url, tmp_path):
    """The stream re-checks its session against the team the process runs with, every few seconds."""
    harness = build(tmp_path, redis_url)
    harness.console.ping_every = 30.0
    try:
        async with TestClient(TestServer(harness.app)) as client:
            await signed_in(client)
            stream = await open_stream(client)
            team = harness.services.team
            team.agents["alice"] = replace(team.agent("alice"), password_hash=hash_password("changed-1", n=2**12))
            assert await ends_within(stream, 5) < 5
            assert (await client.get("/console/api/me")).status == 401
    finally:
        await harness.close()


# -- sign-in behind a proxy ------------------------------------------------------------------


async def test_the_forwarded_address_counts_only_when_trusted(redis_url, tmp_path):
    for trusted, agent_status in ((True, 303), (False, 429)):
        harness = build(tmp_path, redis_url, "login_attempts = 2\n", TRUSTED if trusted else "")
        await harness.services.store.redis.flushdb()
        try:
            async with TestClient(TestServer(harness.app)) as client:
                # The attacker's proxy hop is last; whatever they put before it is their own choice.
                for spoofed in ("192.0.2.1, 203.0.113.9", "192.0.2.2, 203.0.113.9"):
                    assert (await sign_in(client, "alice", "wrong", via=spoofed)).status == 401
                locked = await sign_in(client, "alice", via="192.0.2.3, 203.0.113.9")
                assert locked.status == 429, trusted
                # The agent, from another address behind the same proxy: counted apart only if trusted.
                response = await sign_in(client, "alice", via="198.51.100.4")
                assert response.status == agent_status, trusted
        finally:
            await harness.close()


def test_trust_forwarded_for_is_one_server_setting():
    config = config_module.from_dict({"server": {"trust_forwarded_for": True}}, "c.toml", [WebChat])
    assert config.server.trust_forwarded_for is True
    assert config_module.from_dict({}, "c.toml", [WebChat]).server.trust_forwarded_for is False
    with pytest.raises(ConfigError) as raised:
        config_module.from_dict({"webchat": {"trust_forwarded_for": True}}, "c.toml", [WebChat])
    [problem] = raised.value.problems
    assert "webchat.trust_forwarded_for" in problem and "[server] trust_forwarded_for" in problem


# -- lockout that does not spread ----------------------------------------------------------------


async def test_an_attackers_failures_do_not_lock_the_agent_out_elsewhere(redis_url, tmp_path):
    harness = build(tmp_path, redis_url, "login_attempts = 5\n", TRUSTED)
    try:
        async with TestClient(TestServer(harness.app)) as client:
            for _ in range(5):
                assert (await sign_in(client, "alice", "wrong", via="203.0.113.9")).status == 401
            # From the attacker's client: locked, with when to come back, as a page or as JSON.
            page = await sign_in(client, "alice", via="203.0.113.9")
            assert page.status == 429 and 0 < int(page.headers["Retry-After"]) <= 60
            assert "Too many sign-in attempts" in await page.text()
            api = await client.post("/console/login", json={"username": "alice", "password": PASSWORDS["alice"]},
                                    headers={"X-Forwarded-For": "203.0.113.9", "Accept": "application/json"})
            assert api.status == 429 and int(api.headers["Retry-After"]) > 0
            assert (await api.json())["error"] == "too_many_attempts"
            # The agent from their own client signs in at once.
            started = time.monotonic()
            assert (await sign_in(client, "alice", via="198.51.100.4")).status == 303
            assert time.monotonic() - started < 1.0
            client.session.cookie_jar.clear()

            # Many more failures from many clients: the name is slowed down everywhere, never locked.
            for address in ("203.0.113.10", "203.0.113.11"):
                for _ in range(5):
                    assert (await sign_in(client, "alice", "wrong", via=address)).status == 401
            started = time.monotonic()
            assert (await sign_in(client, "alice", via="198.51.100.4")).status == 303
            assert time.monotonic() - started >= 0.5  # 15 failures, 5 over 2 × login_attempts: a backoff
            client.session.cookie_jar.clear()
            # The JSON sign-in works too.
            ok = await client.post("/console/login", json={"username": "bob", "password": PASSWORDS["bob"]},
                                   headers={"X-Forwarded-For": "198.51.100.5", "Accept": "application/json"})
            assert ok.status == 200 and (await ok.json()) == {"ok": True}
            assert (await client.get("/console/api/me")).status == 200
    finally:
        await harness.close()


async def test_the_sliding_window_lets_no_more_than_login_attempts_through_across_a_minute(redis_url, tmp_path):
    harness = build(tmp_path, redis_url, "login_attempts = 5\n")
    clock = Clock(1_767_225_600.0 + 59.5)  # half a second before a minute starts
    harness.console.clock = clock
    try:
        async with TestClient(TestServer(harness.app)) as client:
            answers = []
            for _ in range(5):
                answers.append((await sign_in(client, "alice", "wrong")).status)
            clock.advance(1.0)  # a new minute: a fixed window would start counting again
            for _ in range(5):
                answers.append((await sign_in(client, "alice", "wrong")).status)
            assert answers == [401] * 5 + [429] * 5
            refused = await sign_in(client, "alice")
            assert refused.status == 429 and int(refused.headers["Retry-After"]) == 59
            clock.advance(58.5)  # 59.5 s after the first failures: still inside their minute
            assert (await sign_in(client, "alice")).status == 429
            clock.advance(0.6)  # now they are a minute old
            assert (await sign_in(client, "alice")).status == 303
    finally:
        await harness.close()
