"""The web-chat channel over HTTP: a real Redis, the core's Conversations, the channel mounted on an app."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from channels.webchat import COOKIE, WebChat, WebChatConfig
from gateway import config as config_module
from gateway.message import OutboundMessage
from gateway.ports import Runtime
from chatgate.compose import connect, load_config
from tests.conftest import TOPICS
from workers.outbox import drain

AGENT = "alice"
SHOP = "https://shop.example"
MID_MINUTE = 1_800_000_030.0
AGENTS = f'\n[[agents]]\nid = "{AGENT}"\nname = "Alice"\n'
CONFIG = WebChatConfig(allowed_origins=(SHOP,), messages_per_minute=10, messages_per_minute_per_ip=50,
                       max_message_chars=100, greeting="Hello! How can we help?")


@pytest.fixture
async def core(redis_url, tmp_path):
    """The core wired to the real Redis and the web chat, with one agent."""
    path = tmp_path / "config.toml"
    path.write_text(TOPICS + AGENTS)
    services = connect(load_config(path, extra=[WebChat]), redis_url, channels=[WebChat], consoles=[])
    yield services
    await services.close()


@pytest.fixture
async def open_client(core):
    """Build the app with a web chat configured as given and open a test client on it."""
    clients = []

    async def make(config: WebChatConfig = CONFIG) -> tuple[TestClient, WebChat]:
        chat = WebChat(config, Runtime(core.config, core.store))
        chat.events_wait = 0.2
        chat.clock = lambda: MID_MINUTE  # no test straddles a rate-limit window
        app = web.Application()
        chat.mount(app, core)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client, chat

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def client_and_chat(open_client):
    return await open_client()


async def start(client: TestClient, name: str = "Ada", **extra) -> dict:
    response = await client.post("/chat/api/start", json={"name": name, **extra})
    assert response.status == 200, await response.text()
    return await response.json()


def set_cookie(client: TestClient, value: str) -> None:
    """Replace the session cookie (as a page whose cookie was changed would send it)."""
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({COOKIE: value}, client.make_url("/chat"))


def customer_of(client: TestClient) -> str:
    cookie = next(c for c in client.session.cookie_jar if c.key == COOKIE)
    return cookie.value.split(".")[0]


async def write(client: TestClient, text: str, client_id: str, **headers):
    return await client.post("/chat/api/messages", json={"text": text, "client_id": client_id}, headers=headers)


async def deliver(core, chat: WebChat, customer_id: str) -> int:
    """What the worker does for the customer's outbox, with this channel's send."""

    async def send(item: bytes, _maybe_sent: bool) -> None:
        await chat.send(OutboundMessage.from_json(item))

    return await drain(core.store, core.store.customer_outbox("webchat", customer_id), send)


async def next_event(response, timeout: float = 5.0) -> tuple[str, str, dict]:
    """The next server-sent event (kind, id, data), skipping comments and the retry line."""
    kind, event_id, data = "message", "", None
    while True:
        raw = await asyncio.wait_for(response.content.readline(), timeout)
        if not raw:
            raise AssertionError("the event stream ended")
        line = raw.decode().rstrip("\n")
        if not line:
            if data is not None:
                return kind, event_id, data
            continue
        if line.startswith(":") or line.startswith("retry:"):
            continue
        field, _, value = line.partition(": ")
        if field == "event":
            kind = value
        elif field == "id":
            event_id = value
        elif field == "data":
            data = json.loads(value)


async def event_of(response, kind: str) -> tuple[str, dict]:
    while True:
        got, event_id, data = await next_event(response)
        if got == kind:
            return event_id, data


async def assert_error(response, status: int, code: str) -> dict:
    assert response.status == status, await response.text()
    body = await response.json()
    assert body["error"] == code and isinstance(body["message"], str) and body["message"]
    return body


# -- start, write, read -------------------------------------------------------------


async def test_start_write_and_read_back(client_and_chat, core):
    client, _ = client_and_chat
    started = await start(client, "Ada Lovelace", phone="+44 20 7946 0018", location="London")
    assert started["greeting"] == "Hello! How can we help?" and started["returning"] is False
    cookie = next(c for c in client.session.cookie_jar if c.key == COOKIE)
    assert cookie["httponly"] and cookie["path"] == "/chat" and cookie["samesite"] == "Lax"

    response = await write(client, "  Where is my parcel?  ", "c1")
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["event"] == "created" and body["conversation"]["state"] == "new"
    assert body["message"]["text"] == "Where is my parcel?" and body["message"]["from"] == "you"

    customer = customer_of(client)
    conversation = await core.store.open_conversation("webchat", customer)
    assert (conversation.channel, conversation.name, conversation.phone, conversation.location) == (
        "webchat", "Ada Lovelace", "+442079460018", "London")
    assert conversation.topic == "delivery"  # the core's topic rules apply to web chat too

    history = await (await client.get("/chat/api/messages")).json()
    assert history["customer"]["name"] == "Ada Lovelace"
    assert history["conversation"] == {"id": conversation.id, "state": "new", "rating": None,
                                       "rating_pending": False, "closed": False}
    assert [(m["from"], m["text"]) for m in history["messages"]] == [("you", "Where is my parcel?")]


async def test_a_retried_message_is_stored_once(client_and_chat, core):
    client, _ = client_and_chat
    await start(client)
    first = await (await write(client, "Hello", "same-id")).json()
    again = await (await write(client, "Hello", "same-id")).json()
    assert first["event"] == "created" and again["duplicate"] is True
    conversation = await core.store.open_conversation("webchat", customer_of(client))
    assert [e.text for e in await core.store.history(conversation.id)] == ["Hello"]


async def test_reload_keeps_the_conversation_and_a_returning_customer_is_known(open_client, core):
    client, chat = await open_client()
    await start(client)
    await write(client, "First question", "m1")
    customer = customer_of(client)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/chat/api/messages"))[COOKIE].value

    # Another page load (even served by another web process) with the same cookie: the same chat.
    other, _ = await open_client()
    set_cookie(other, cookie)
    history = await (await other.get("/chat/api/messages")).json()
    assert [m["text"] for m in history["messages"]] == ["First question"]
    restarted = await start(other, "Ada")
    assert restarted["returning"] is True and customer_of(other) == customer

    conversation = await core.store.open_conversation("webchat", customer)
    await core.conversations.accept(conversation.id, AGENT)
    await core.conversations.resolve(conversation.id, AGENT)
    assert await core.conversations.leave(conversation.id, AGENT) == "closed"
    closed = await (await other.get("/chat/api/messages")).json()
    assert closed["conversation"]["closed"] is True and closed["conversation"]["id"] == conversation.id

    # Writing after close starts a new chat for the same customer, offered to their last agent first.
    body = await (await write(other, "Me again", "m2")).json()
    assert body["event"] == "created" and body["conversation"]["id"] != conversation.id
    second = await core.store.get(body["conversation"]["id"])
    assert second.customer_id == customer and second.previous_agent == AGENT


# -- refusals: each answers {"error", "message"} and stores nothing --------------------------


async def test_per_session_rate_limit(client_and_chat, core):
    client, _ = client_and_chat
    await start(client)
    for n in range(10):
        assert (await write(client, f"message {n}", f"r{n}")).status == 200
    refused = await write(client, "one too many", "r10")
    body = await assert_error(refused, 429, "rate_limited")
    assert refused.headers["Retry-After"] == "31" and "a minute" in body["message"]
    conversation = await core.store.open_conversation("webchat", customer_of(client))
    assert len(await core.store.history(conversation.id)) == 10


async def test_per_ip_rate_limit(open_client, core):
    client, _ = await open_client(replace(CONFIG, messages_per_minute=50, messages_per_minute_per_ip=4))
    await start(client)  # a start counts against the address too
    for n in range(3):
        assert (await write(client, f"message {n}", f"i{n}")).status == 200
    client.session.cookie_jar.clear()
    refused = await client.post("/chat/api/start", json={"name": "Someone else"})
    body = await assert_error(refused, 429, "rate_limited")
    assert "network" in body["message"] and refused.headers["Retry-After"]


async def test_forwarded_address_counts_when_trusted(open_client):
    client, chat = await open_client(replace(CONFIG, messages_per_minute_per_ip=1))
    chat.trust_forwarded_for = True  # [server] trust_forwarded_for
    first = {"X-Forwarded-For": "198.51.100.7, 10.0.0.1"}
    assert (await client.post("/chat/api/start", json={"name": "A"}, headers=first)).status == 200
    await assert_error(await client.post("/chat/api/start", json={"name": "A"}, headers=first), 429, "rate_limited")
    other = {"X-Forwarded-For": "10.0.0.2"}
    assert (await client.post("/chat/api/start", json={"name": "B"}, headers=other)).status == 200


async def test_open_event_streams_per_customer_are_capped(client_and_chat):
    client, _ = client_and_chat
    await start(client)
    streams = [await client.get("/chat/api/events") for _ in range(5)]
    assert all(s.status == 200 for s in streams)
    await assert_error(await client.get("/chat/api/events"), 429, "too_many_streams")
    for stream in streams:
        stream.close()


async def test_size_limits(client_and_chat, core):
    client, chat = client_and_chat
    await start(client)
    body = await assert_error(await write(client, "x" * 101, "big"), 413, "too_long")
    assert "100" in body["message"]
    huge = json.dumps({"text": "x" * (chat._body_limit() + 10), "client_id": "huge"})
    await assert_error(await client.post("/chat/api/messages", data=huge,
                                         headers={"Content-Type": "application/json"}), 413, "too_large")
    await assert_error(await client.post("/chat/api/start", json={"name": "n" * 101}), 413, "too_long")
    assert await core.store.open_conversation("webchat", customer_of(client)) is None
    assert (await write(client, "x" * 100, "fits")).status == 200


async def test_empty_and_malformed_messages(client_and_chat, core):
    client, _ = client_and_chat
    await start(client)
    body = await assert_error(await write(client, " \n\t ", "e1"), 400, "empty")
    assert body["message"] == "empty message"
    await assert_error(await client.post("/chat/api/messages", data="{not json",
                                         headers={"Content-Type": "application/json"}), 400, "malformed")
    await assert_error(await client.post("/chat/api/messages", json=["a list"]), 400, "malformed")
    await assert_error(await client.post("/chat/api/messages", json={"text": 5, "client_id": "a"}), 400, "bad_text")
    await assert_error(await client.post("/chat/api/messages", json={"text": "hi", "client_id": "a:b"}),
                       400, "bad_client_id")
    await assert_error(await client.post("/chat/api/messages", data="text=hi"), 415, "unsupported_media_type")
    await assert_error(await client.post("/chat/api/start", json={"name": "  "}), 400, "name_required")
    await assert_error(await client.post("/chat/api/start", json={"name": "A", "phone": "call me"}), 400,
                       "bad_phone")
    assert await core.store.open_conversation("webchat", customer_of(client)) is None


async def test_no_or_forged_cookie_is_refused(client_and_chat, core):
    client, _ = client_and_chat
    await assert_error(await write(client, "hello", "n1"), 401, "no_session")
    await assert_error(await client.get("/chat/api/messages"), 401, "no_session")
    await assert_error(await client.get("/chat/api/events"), 401, "no_session")

    await start(client)
    customer, issued, signature = client.session.cookie_jar.filter_cookies(
        client.make_url("/chat"))[COOKIE].value.split(".")
    forgeries = [
        f"{customer}.{issued}.{'0' * 64}",  # wrong signature
        f"{'A' * len(customer)}.{issued}.{signature}",  # someone else's id with this signature
        f"{customer}.{int(issued) + 1}.{signature}",  # a longer life
        "garbage",
    ]
    for forged in forgeries:
        set_cookie(client, forged)
        await assert_error(await write(client, "hello", "f1"), 401, "bad_session")
    assert await core.store.inbox() and (await core.store.inbox()).total == 0


async def test_expired_session_is_refused(open_client, core):
    client, chat = await open_client()
    await start(client)
    old = await chat.cookie_value(customer_of(client), issued=1)
    set_cookie(client, old)
    await assert_error(await write(client, "hello", "x1"), 401, "session_expired")


async def test_a_returning_customer_keeps_the_session(open_client):
    client, chat = await open_client()
    await start(client)
    fresh = await client.get("/chat/api/messages")
    assert COOKIE not in fresh.cookies  # young enough: not renewed
    customer = customer_of(client)
    half_old = int(time.time() - chat.config.session_max_age * 0.6)
    set_cookie(client, await chat.cookie_value(customer, issued=half_old))
    renewed = await client.get("/chat/api/messages")
    assert renewed.status == 200 and COOKIE in renewed.cookies
    assert customer_of(client) == customer and int(renewed.cookies[COOKIE].value.split(".")[1]) > half_old


async def test_origins(client_and_chat, core):
    client, _ = client_and_chat
    refused = await client.post("/chat/api/start", json={"name": "Eve"}, headers={"Origin": "https://evil.example"})
    await assert_error(refused, 403, "origin_refused")
    assert "Set-Cookie" not in refused.headers

    allowed = await client.post("/chat/api/start", json={"name": "Ada"}, headers={"Origin": SHOP})
    assert allowed.status == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == SHOP
    assert allowed.headers["Access-Control-Allow-Credentials"] == "true"
    await assert_error(await write(client, "hi", "o1", Origin="https://evil.example"), 403, "origin_refused")
    assert (await write(client, "hi", "o2", Origin=f"http://{client.host}:{client.port}")).status == 200

    preflight = await client.options("/chat/api/messages", headers={
        "Origin": SHOP, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert preflight.status == 204 and "POST" in preflight.headers["Access-Control-Allow-Methods"]
    evil = await client.options("/chat/api/messages", headers={"Origin": "https://evil.example"})
    assert evil.status == 403 and "Access-Control-Allow-Origin" not in evil.headers

    conversation = await core.store.open_conversation("webchat", customer_of(client))
    assert [e.text for e in await core.store.history(conversation.id)] == ["hi"]


async def test_page_and_widget(client_and_chat):
    client, _ = client_and_chat
    page = await client.get("/chat?embed=1")
    assert page.status == 200 and page.content_type == "text/html"
    csp = page.headers["Content-Security-Policy"]
    assert f"frame-ancestors 'self' {SHOP}" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    html = await page.text()
    assert "<script>" not in html and 'src="chat/static/chat.js"' in html
    widget = await client.get("/chat/widget.js")
    assert widget.status == 200 and widget.content_type == "application/javascript"
    assert "chat?embed=1" in await widget.text()
    for asset in ("chat.js", "chat.css"):
        assert (await client.get(f"/chat/static/{asset}")).status == 200


# -- the agent side reaches the page ---------------------------------------------------


async def test_agent_reply_arrives_live_and_in_history(client_and_chat, core):
    client, chat = client_and_chat
    await start(client)
    body = await (await write(client, "Hi, I need help", "a1")).json()
    conversation_id = body["conversation"]["id"]
    customer = customer_of(client)

    events = await client.get("/chat/api/events")
    assert events.status == 200 and events.content_type == "text/event-stream"
    _, state = await event_of(events, "state")
    assert state["state"] == "new"

    await core.conversations.accept(conversation_id, AGENT)
    reply = "**Hello** _Ada_, see [our help](https://help.example/parcels)"
    assert await core.conversations.reply(conversation_id, AGENT, reply)
    assert await deliver(core, chat, customer) == 1

    event_id, message = await event_of(events, "message")
    assert (message["text"], message["from"], message["conversation_id"]) == (reply, "agent", conversation_id)
    assert message["seq"] == 2 and message["at"] > 0
    _, state = await event_of(events, "state")
    assert state["state"] == "active"
    events.close()

    history = await (await client.get("/chat/api/messages")).json()
    assert [(m["from"], m["text"]) for m in history["messages"]] == [("you", "Hi, I need help"), ("agent", reply)]
    assert history["last_event_id"] == event_id


async def test_events_resume_after_last_event_id(client_and_chat, core):
    client, chat = client_and_chat
    await start(client)
    body = await (await write(client, "Hello", "r1")).json()
    conversation_id = body["conversation"]["id"]
    await core.conversations.accept(conversation_id, AGENT)
    await core.conversations.reply(conversation_id, AGENT, "first")
    await core.conversations.reply(conversation_id, AGENT, "second")
    await deliver(core, chat, customer_of(client))
    first_id = (await core.store.redis.xrange(chat.stream_key(customer_of(client))))[0][0].decode()

    events = await client.get("/chat/api/events", headers={"Last-Event-ID": first_id})
    _, message = await event_of(events, "message")
    assert message["text"] == "second"
    events.close()


async def test_notes_never_reach_the_customer(client_and_chat, core):
    client, _ = client_and_chat
    await start(client)
    conversation_id = (await (await write(client, "Hello", "n1")).json())["conversation"]["id"]
    await core.conversations.accept(conversation_id, AGENT)
    await core.conversations.note(conversation_id, AGENT, "private: customer seems upset")
    history = await (await client.get("/chat/api/messages")).json()
    assert [m["text"] for m in history["messages"]] == ["Hello"]


async def test_rating_buttons_store_the_rating(client_and_chat, core):
    client, chat = client_and_chat
    await start(client)
    conversation_id = (await (await write(client, "Hello", "g1")).json())["conversation"]["id"]
    customer = customer_of(client)
    await assert_error(await client.post("/chat/api/rating", json={"rating": 5}), 409, "no_rating_pending")

    await core.conversations.accept(conversation_id, AGENT)
    await core.conversations.reply(conversation_id, AGENT, "Done!")
    await core.conversations.resolve(conversation_id, AGENT)
    await deliver(core, chat, customer)
    history = await (await client.get("/chat/api/messages")).json()
    assert history["conversation"]["rating_pending"] is True and history["conversation"]["state"] == "resolved"
    assert history["messages"][-1]["from"] == "system"  # the rating question

    await assert_error(await client.post("/chat/api/rating", json={"rating": 6}), 400, "bad_rating")
    await assert_error(await client.post("/chat/api/rating", json={"rating": True}), 400, "bad_rating")
    rated = await client.post("/chat/api/rating", json={"rating": 4})
    assert rated.status == 200, await rated.text()
    body = await rated.json()
    assert body["event"] == "rated" and body["conversation"]["rating"] == 4
    assert body["conversation"]["rating_pending"] is False
    assert (await core.store.get(conversation_id)).rating == 4
    await assert_error(await client.post("/chat/api/rating", json={"rating": 1}), 409, "no_rating_pending")

    await deliver(core, chat, customer)  # the thanks
    history = await (await client.get("/chat/api/messages")).json()
    assert history["messages"][-2]["text"] == "4" and history["messages"][-1]["from"] == "system"


async def test_closed_state_reaches_an_open_page(client_and_chat, core):
    client, _ = client_and_chat
    await start(client)
    conversation_id = (await (await write(client, "Hello", "s1")).json())["conversation"]["id"]
    await core.conversations.accept(conversation_id, AGENT)
    await core.conversations.resolve(conversation_id, AGENT)
    events = await client.get("/chat/api/events")
    _, state = await event_of(events, "state")
    assert state["rating_pending"] is True
    await core.conversations.leave(conversation_id, AGENT)
    _, state = await event_of(events, "state")
    assert state["closed"] is True and state["id"] == conversation_id
    events.close()


# -- send, secret, config -----------------------------------------------------------


async def test_send_appends_to_the_customer_stream(core):
    chat = WebChat(CONFIG, Runtime(core.config, core.store))
    customer = "c" * 24
    first = await chat.send(OutboundMessage("webchat", customer, "one", "7", 3))
    second = await chat.send(OutboundMessage("webchat", customer, "two", "7", 4))
    entries = await core.store.redis.xrange(chat.stream_key(customer))
    assert [e[0].decode() for e in entries] == [first, second]
    assert entries[0][1][b"text"] == b"one" and entries[0][1][b"conversation_id"] == b"7"
    assert chat.stream_key(customer).startswith(core.store.key("webchat", "out"))
    from gateway.ports import DeliveryError

    with pytest.raises(DeliveryError) as refused:
        await chat.send(OutboundMessage("sms", "+441234", "wrong channel"))
    assert refused.value.permanent


async def test_the_generated_secret_is_shared_by_every_process(core):
    one = WebChat(CONFIG, Runtime(core.config, core.store))
    two = WebChat(CONFIG, Runtime(core.config, core.store))
    assert await one.secret() == await two.secret()
    assert await core.store.redis.get(core.store.key("webchat", "secret")) == await one.secret()
    configured = WebChat(replace(CONFIG, secret="s" * 32), Runtime(core.config, core.store))
    assert await configured.secret() == b"s" * 32


def _reader(data: dict, problems: list[str]):
    reader_class = getattr(config_module, "ConfigReader", None) or config_module._Reader
    return reader_class(data, "config.toml", problems, "webchat")


def test_load_config_defaults_and_values():
    problems: list[str] = []
    assert WebChat.load_config(_reader({}, problems)) == WebChatConfig()
    config = WebChat.load_config(_reader({
        "allowed_origins": ["https://Shop.Example/", "http://localhost:3000"], "max_message_chars": 500,
        "messages_per_minute": 10, "messages_per_minute_per_ip": 30, "session_max_age": "7d", "greeting": "Hi",
    }, problems))
    assert problems == []
    assert config.allowed_origins == ("https://shop.example", "http://localhost:3000")
    assert (config.max_message_chars, config.messages_per_minute, config.messages_per_minute_per_ip,
            config.session_max_age, config.greeting) == (500, 10, 30, 7 * 86400.0, "Hi")


def test_load_config_problems():
    problems: list[str] = []
    WebChat.load_config(_reader({"allowed_origins": ["*", "https://ok.example/path"], "max_message_chars": 0,
                                 "session_max_age": 5, "secret": "short", "colour": "red"}, problems))
    text = "\n".join(problems)
    for key in ("allowed_origins", "max_message_chars", "session_max_age", "secret", "colour"):
        assert f"webchat.{key}" in text, text


async def test_the_app_mounts_the_channel_from_its_config_table(redis_url, tmp_path):
    """Through the composition root: the [webchat] table read by load_config, routes mounted by create_app."""
    from gateway.app import create_app

    path = tmp_path / "config.toml"
    path.write_text(TOPICS + AGENTS + f'\n[webchat]\nallowed_origins = ["{SHOP}/"]\nmax_message_chars = 50\n'
                    'messages_per_minute = 3\ngreeting = "Welcome!"\n')
    services = connect(load_config(path, extra=[WebChat]), redis_url, channels=[WebChat], consoles=[])
    chat = services.channels["webchat"]
    chat.clock = lambda: MID_MINUTE
    assert services.channel_labels == {"webchat": "Web chat"}
    assert (chat.config.allowed_origins, chat.config.max_message_chars) == ((SHOP,), 50)
    async with TestClient(TestServer(create_app(services))) as client:
        assert (await start(client))["greeting"] == "Welcome!"
        await assert_error(await write(client, "x" * 51, "long"), 413, "too_long")
        conversation_id = (await (await write(client, "Hello", "h1")).json())["conversation"]["id"]
        await services.conversations.accept(conversation_id, AGENT)
        await services.conversations.reply(conversation_id, AGENT, "Hi Ada", via="web")
        assert await deliver(services, chat, customer_of(client)) == 1
        history = await (await client.get("/chat/api/messages")).json()
        assert [(m["from"], m["text"]) for m in history["messages"]] == [("you", "Hello"), ("agent", "Hi Ada")]
        assert (await write(client, "third", "h3")).status == 200
        await assert_error(await write(client, "fourth", "h4"), 429, "rate_limited")


def test_disabled_mounts_nothing(core):
    app = web.Application()
    WebChat(WebChatConfig(enabled=False), Runtime(core.config, core.store)).mount(app, core)
    assert not [r for r in app.router.routes()]


async def test_the_event_stream_outlives_the_redis_socket_timeout(client_and_chat, core):
    """redis-py 8 cuts a socket read off after 5 s: the stream's XREAD blocks less than that."""
    client, chat = client_and_chat
    chat.events_wait = 15.0  # the default
    await start(client)
    conversation_id = (await (await write(client, "Hello", "t1")).json())["conversation"]["id"]
    events = await client.get("/chat/api/events")
    await event_of(events, "state")
    await asyncio.sleep(6)
    await core.conversations.accept(conversation_id, AGENT)
    await core.conversations.reply(conversation_id, AGENT, "still here")
    await deliver(core, chat, customer_of(client))
    _, message = await event_of(events, "message")
    assert message["text"] == "still here"
    events.close()
