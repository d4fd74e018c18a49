"""Hostile bodies over HTTP: the one JSON reader (``gateway.http``) and text Redis cannot store.

Every endpoint of chatgate's own (web console, web chat) and the Telegram webhook read JSON with
``gateway.http``: too large 413, not UTF-8, not JSON, nested too deep or not an object 400, each with a
JSON reason, and nothing stored. A lone surrogate (JSON's ``"\\udfff"``) is refused by chatgate's own
endpoints ("invalid character"); from a platform (Telegram, Twilio, Slack) it is stored as U+FFFD, since
the platform would retry a refusal forever. Nothing answers 500.
"""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlencode

import pytest
import redis as redis_sync
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.webchat import WebChat, WebChatConfig
from chatgate.compose import connect, load_config
from gateway.app import create_app
from gateway.http import MAX_DEPTH, BadBody, _depth, parse_json
from gateway.message import InboundMessage
from gateway.ports import Runtime
from tests.conftest import TOPICS
from tests.fakes.slack import block_action, message_event, sign
from tests.fakes.telegram import text_update
from tests.support import keys
from tests.test_bad_input import (CHANNEL, CHAT_ID, SIGNING_SECRET, config_text, telegram_headers,
                                  twilio_request, sms)
from tests.web_console_support import PASSWORDS, build

KEY = keys()
LONE = '"\\udfff"'  # JSON for a lone surrogate
DEEP = [b"[" * 5000, b"[" * 5000 + b"]" * 5000, b'{"text": ' * 5000, b'{"a":' + b"[" * 100_000]
# Within the web chat's 5 KiB limit for a message of its 100 characters.
SHALLOWER = [b"[" * 5000, b'{"text": ' * 500, b"[" * 2500 + b"]" * 2500]


def db(redis_url: str, decode: bool = True) -> redis_sync.Redis:
    return redis_sync.Redis.from_url(redis_url, decode_responses=decode)


def snapshot(redis_url: str) -> dict:
    """Every key of chatgate's with its value, to show a refusal changed nothing."""
    r = db(redis_url, decode=False)
    return {key: r.dump(key) for key in r.keys(KEY("*"))}


def history(redis_url: str, conversation_id: str) -> list[dict]:
    return [json.loads(raw) for raw in db(redis_url).lrange(KEY("msgs", conversation_id), 0, -1)]


# -- the reader itself ------------------------------------------------------------------------


@pytest.mark.parametrize("raw, code", [
    (b"\xff\xfe{}", "not_utf8"),
    (b'{"a": "\xed\xbf\xbf"}', "not_utf8"),  # a surrogate spelled in UTF-8 bytes is not UTF-8
    (b"{broken", "bad_json"),
    (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "too_deep"),
    *[(deep, "too_deep") for deep in DEEP],
    (LONE.encode(), "invalid_character"),
    (b'{"\\uDFFF": 1}', "invalid_character"),  # in a key, and in capitals
    (b'["ok", {"x": ["\\ud800 then text"]}]', "invalid_character"),
])
def test_parse_json_refuses_with_a_reason(raw, code):
    with pytest.raises(BadBody) as refused:
        parse_json(raw)
    assert (refused.value.status, refused.value.code) == (400, code) and refused.value.reason


def test_parse_json_takes_what_is_fine():
    assert parse_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    # Brackets in strings are text, not nesting; escaped quotes do not end a string.
    text = "[{" * 100 + '\\"[[[' * 50
    assert parse_json(json.dumps({"text": text}).encode()) == {"text": text}
    # A pair of surrogate escapes is one character; an escaped backslash before "ud" is no escape.
    assert parse_json(b'"\\ud83d\\ude00"') == "\U0001F600"
    assert parse_json(b'"\\\\udfff"') == "\\udfff"


def test_parse_json_replaces_lone_surrogates_when_told():
    raw = b'{"text": "a\\udfffb", "\\ud800": ["\\udc00", "\\ud83d\\ude00"], "n": 1}'
    assert parse_json(raw, surrogates="replace") == {"text": "a\ufffdb", "\ufffd": ["\ufffd", "\U0001F600"], "n": 1}


def test_the_depth_scan_is_linear_on_hostile_strings():
    for raw in (b'"\\"' * 100_000, b'"' + b"\\" * 300_000, b"[]" * 150_000, b'["' * 150_000):
        started = time.perf_counter()
        _depth(raw)
        assert time.perf_counter() - started < 1.0


json_text = st.text(alphabet=st.characters(), max_size=12)  # surrogates included
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | json_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(json_text, inner, max_size=3),
    max_leaves=30)


def _nesting(value) -> int:
    if isinstance(value, list):
        return 1 + max(map(_nesting, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_nesting, value.values()), default=0)
    return 0


def _has_surrogate(value) -> bool:
    return "\\ud" in json.dumps(value).lower()


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=json_values, max_depth=st.integers(1, 8), cut=st.integers(0, 400))
def test_fuzzed_json_is_read_or_refused_with_bad_body(value, max_depth, cut):
    raw = json.dumps(value).encode()
    assert _depth(raw) == _nesting(value)
    for surrogates in ("refuse", "replace"):
        try:
            got = parse_json(raw, max_depth, surrogates)
        except BadBody as bad:
            assert bad.status == 400
            assert _nesting(value) > max_depth or (surrogates == "refuse" and _has_surrogate(value))
        else:
            assert _nesting(value) <= max_depth
            json.dumps(got, ensure_ascii=False).encode()  # Redis can write it
            if not _has_surrogate(value):
                assert got == value
    try:
        parse_json(raw[:cut], max_depth, "replace")  # truncated: read or refused, nothing else
    except BadBody:
        pass


# -- the web console --------------------------------------------------------------------------


@pytest.fixture
async def console(redis_url, tmp_path):
    harness = build(tmp_path, redis_url)
    async with TestClient(TestServer(harness.app)) as client:
        yield harness, client
    await harness.close()


async def signed_in(client, user: str) -> str:
    response = await client.post("/console/login", data={"username": user, "password": PASSWORDS[user]},
                                 allow_redirects=False)
    assert response.status == 303, await response.text()
    return (await (await client.get("/console/api/me")).json())["csrf"]


async def raw_post(client, path: str, csrf: str, body: bytes) -> tuple[int, dict]:
    async with client.post(path, data=body, headers={"X-CSRF-Token": csrf,
                                                     "Content-Type": "application/json"}) as response:
        return response.status, await response.json()


async def test_console_bodies_with_a_lone_surrogate_or_too_deep_get_400_and_change_nothing(console, redis_url):
    harness, client = console
    cid = await harness.customer_writes("hello")
    await harness.services.conversations.accept(cid, "ada")
    csrf = await signed_in(client, "ada")
    await asyncio.sleep(0.2)  # the worker has delivered what accept queued
    before = snapshot(redis_url)
    paths = [f"/console/api/chats/{cid}/reply", f"/console/api/chats/{cid}/note",
             f"/console/api/chats/{cid}/transfer", "/console/api/saved-replies",
             "/console/api/saved-replies/delete", "/console/api/admin"]
    lone = {"text": LONE, "note": LONE, "name": LONE, "client_id": '"abcdefgh1"'}
    for path in paths:
        body = "{" + ", ".join(f'"{k}": {v}' for k, v in lone.items()) + "}"
        status, answer = await raw_post(client, path, csrf, body.encode())
        assert (status, answer["error"]) == (400, "invalid_character"), (path, answer)
        assert "invalid character" in answer["message"]
        for deep in DEEP[:3]:
            status, answer = await raw_post(client, path, csrf, deep)
            assert (status, answer["error"]) == (400, "bad_json"), (path, answer)
            assert "nested" in answer["message"]
        status, answer = await raw_post(client, path, csrf, b'{"text": "caf\xe9"}')
        assert (status, answer["error"]) == (400, "bad_json") and "UTF-8" in answer["message"]
        status, answer = await raw_post(client, path, csrf, b'{"text": "' + b"x" * 70_000 + b'"}')
        assert (status, answer["error"]) == (413, "too_large")
    assert snapshot(redis_url) == before
    # The same reply without the surrogate goes out.
    status, answer = await raw_post(client, f"/console/api/chats/{cid}/reply", csrf,
                                    b'{"text": "fine \\ud83d\\ude00", "client_id": "abcdefgh2"}')
    assert status == 200, answer
    assert history(redis_url, cid)[-1]["text"] == "fine \U0001F600"


async def test_the_core_stores_u_fffd_for_a_lone_surrogate_and_its_batch_mates_are_unharmed(console, redis_url):
    harness, _ = console
    conversations = harness.services.conversations
    # Two messages in the same turn of the event loop share one round trip (Store.run's batch).
    bad, good = await asyncio.gather(
        conversations.receive(InboundMessage("telegram", "2001", "p1", "odd \udfff text", name="\ud800Eve")),
        conversations.receive(InboundMessage("telegram", "2002", "p2", "plain text", name="Bob")))
    assert history(redis_url, bad.conversation_id)[0]["text"] == "odd \ufffd text"
    assert db(redis_url).hget(KEY("conv", bad.conversation_id), "name") == "\ufffdEve"
    assert history(redis_url, good.conversation_id)[0]["text"] == "plain text"
    await conversations.accept(bad.conversation_id, "ada")
    assert await conversations.reply(bad.conversation_id, "ada", "re \udfff")
    assert await conversations.note(bad.conversation_id, "ada", "note \udfff")
    texts = [entry["text"] for entry in history(redis_url, bad.conversation_id)]
    assert "re \ufffd" in texts and "note \ufffd" in texts
    saved = await conversations.save_reply("greet\udfff", "hi \udfff", by="ada")
    assert (saved.name, saved.text) == ("greet\ufffd", "hi \ufffd")
    await conversations.delete_reply("greet\udfff", by="ada")


# -- the web chat -----------------------------------------------------------------------------


@pytest.fixture
async def webchat(redis_url, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(TOPICS + '\n[[agents]]\nid = "alice"\nname = "Alice"\n')
    services = connect(load_config(path, extra=[WebChat]), redis_url, channels=[WebChat], consoles=[])
    chat = WebChat(WebChatConfig(max_message_chars=100), Runtime(services.config, services.store))
    app = web.Application()
    chat.mount(app, services)
    async with TestClient(TestServer(app)) as client:
        yield client
    await services.close()


async def chat_post(client, path: str, body: bytes) -> tuple[int, dict]:
    async with client.post(path, data=body, headers={"Content-Type": "application/json"}) as response:
        return response.status, await response.json()


async def test_web_chat_refuses_lone_surrogates_and_deep_nesting_and_stores_nothing(webchat, redis_url):
    client = webchat
    for body in (b'{"name": ' + LONE.encode() + b"}", b'{"name": "Ada", "location": "x\\udc00"}'):
        status, answer = await chat_post(client, "/chat/api/start", body)
        assert (status, answer["error"]) == (400, "invalid_character") and "invalid character" in answer["message"]
    for deep in DEEP:
        status, answer = await chat_post(client, "/chat/api/start", deep)
        assert status in (400, 413) and answer["error"] in ("malformed", "too_large")
    assert db(redis_url).keys(KEY("webchat", "customer", "*")) == []
    status, answer = await chat_post(client, "/chat/api/start", b'{"name": "Ada"}')
    assert status == 200, answer
    before = {k: v for k, v in snapshot(redis_url).items() if b":rate:" not in k}
    for body in (b'{"text": ' + LONE.encode() + b', "client_id": "m1"}', b'{"text": "hi", "client_id": "m1", '
                 b'"x": ["\\ud800"]}'):
        status, answer = await chat_post(client, "/chat/api/messages", body)
        assert (status, answer["error"]) == (400, "invalid_character")
    for deep in SHALLOWER:
        status, answer = await chat_post(client, "/chat/api/messages", deep)
        assert (status, answer["error"]) == (400, "malformed") and "nested" in answer["message"]
        status, answer = await chat_post(client, "/chat/api/rating", deep)
        assert status in (400, 413)
    assert {k: v for k, v in snapshot(redis_url).items() if b":rate:" not in k} == before
    status, answer = await chat_post(client, "/chat/api/messages", b'{"text": "\\ud83d\\ude00 ok", "client_id": "m2"}')
    assert status == 200 and answer["message"]["text"] == "\U0001F600 ok"


# -- the platforms: stored with U+FFFD, never refused for it ------------------------------------


@pytest.fixture
async def platforms(redis_url, make_config, slack):
    app = create_app(connect(make_config(config_text(redis_url, slack.api_url, max_body=65536)), redis_url))
    async with TestClient(TestServer(app)) as client:
        yield client


async def send(client, path: str, body: bytes | str, headers: dict) -> tuple[int, str]:
    async with client.post(path, data=body.encode() if isinstance(body, str) else body, headers=headers) as response:
        return response.status, await response.text()


async def test_telegram_text_names_and_captions_with_lone_surrogates_are_stored_with_u_fffd(platforms, redis_url):
    update = text_update(1, CHAT_ID, "where\udfff is it", first_name="A\ud800da")
    status, text = await send(platforms, "/webhooks/telegram", json.dumps(update), telegram_headers())
    assert (status, json.loads(text)) == (200, {"ok": True})
    assert history(redis_url, "1")[0]["text"] == "where\ufffd is it"
    assert db(redis_url).hget(KEY("conv", "1"), "name") == "A\ufffdda Lovelace"
    # A photo with a caption: the full (python-telegram-bot) path.
    photo = text_update(2, CHAT_ID, None, caption="look \udfff",
                        photo=[{"file_id": "F1", "file_unique_id": "U1", "width": 10, "height": 10}])
    status, text = await send(platforms, "/webhooks/telegram", json.dumps(photo), telegram_headers())
    assert status == 200, text
    assert history(redis_url, "1")[-1]["text"] == "look \ufffd"


async def test_telegram_bodies_too_deep_or_not_utf8_get_400_and_a_bad_secret_header_401(platforms, redis_url):
    for body in (*DEEP[:3], b'{"update_id": 1, "message": {"text": "\xed\xbf\xbf"}}'):
        status, text = await send(platforms, "/webhooks/telegram", body, telegram_headers())
        assert status == 400 and "malformed body" in json.loads(text)["error"], text
    status, text = await send(platforms, "/webhooks/telegram", b"[" * 70_000, telegram_headers())
    assert status == 413 and "larger" in json.loads(text)["error"]
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "caf\xe9"}
    status, _ = await send(platforms, "/webhooks/telegram", json.dumps(text_update(1, CHAT_ID, "hi")), headers)
    assert status == 401
    assert snapshot(redis_url) == {}


async def test_twilio_fields_that_are_not_utf8_are_stored_with_u_fffd(platforms, redis_url):
    form = sms("SM" + "5" * 32, "PLACEHOLDER")
    decoded = {**form, "Body": "hi \ufffd\ufffd\ufffd", "ProfileName": "\ufffd\ufffd\ufffd"}  # as the server reads it
    body, headers = twilio_request(decoded)
    raw = urlencode({**form, "ProfileName": "NAME"}).replace("PLACEHOLDER", "hi+%ED%BF%BF").replace(
        "NAME", "%ED%A0%80")
    status, text = await send(platforms, "/webhooks/twilio", raw, headers)
    assert status == 200, text
    assert history(redis_url, "1")[0]["text"] == "hi \ufffd\ufffd\ufffd"
    assert db(redis_url).hget(KEY("conv", "1"), "name") == "\ufffd\ufffd\ufffd"


async def test_a_slack_reply_with_a_lone_surrogate_is_sent_with_u_fffd(platforms, slack, redis_url):
    status, _ = await send(platforms, "/webhooks/telegram", json.dumps(text_update(1, CHAT_ID, "hello")),
                           telegram_headers())
    assert status == 200
    click = block_action("accept", "1", "UAGENT1", CHANNEL, "1.000000", slack.response_url)
    status, _ = await send(platforms, "/slack/events", click,
                           {"Content-Type": "application/x-www-form-urlencoded", **sign(SIGNING_SECRET, click)})
    assert status == 200
    db(redis_url).hset(KEY("ref", "slack-thread"), f"{CHANNEL}:1.000000", "1")
    for ts, text in (("1.000001", "on its way \udfff"), ("1.000002", "note: check \ud800")):
        event = message_event("UAGENT1", CHANNEL, text, ts, "1.000000")
        status, answer = await send(platforms, "/slack/events", event,
                                    {"Content-Type": "application/json", **sign(SIGNING_SECRET, event)})
        assert status == 200, answer
    texts = [entry["text"] for entry in history(redis_url, "1")]
    assert "on its way \ufffd" in texts and any("check \ufffd" in text for text in texts), texts


# -- hostile headers: a refusal, never a 500 ----------------------------------------------------


async def test_forged_web_chat_cookies_that_are_not_ascii_get_401(webchat):
    for value in ("A" * 20 + ".1700000000.caf\xe9", "A" * 20 + ".\u0661\u0662." + "0" * 64):
        async with webchat.get("/chat/api/messages", headers={"Cookie": "chatgate_chat=" + value}) as response:
            assert response.status == 401, await response.text()
            assert (await response.json())["error"] == "bad_session"


async def test_signature_headers_that_are_not_slacks_or_twilios_get_401_or_403(platforms, redis_url):
    event = message_event("UAGENT1", CHANNEL, "hi", "1.000001", "1.000000")
    now = str(int(time.time()))
    for timestamp, signature in (("abc", "v0=abc"), ("caf\xe9", "v0=abc"), ("1e3", "v0=abc"), (now, "v0=caf\xe9")):
        status, text = await send(platforms, "/slack/events", event, {
            "Content-Type": "application/json", "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": signature})
        assert status == 401, (timestamp, signature, text)
    body, headers = twilio_request(sms("SM" + "6" * 32, "hello"))
    status, _ = await send(platforms, "/webhooks/twilio", body, {**headers, "X-Twilio-Signature": "caf\xe9"})
    assert status == 403
    assert snapshot(redis_url) == {}


async def test_an_unencodable_text_that_escapes_every_check_is_a_400_not_a_500(redis_url, make_config, slack):
    """The last resort (gateway.app's middleware): a handler passing on text Redis cannot write."""
    services = connect(make_config(config_text(redis_url, slack.api_url)), redis_url)
    app = create_app(services)

    async def careless(request: web.Request) -> web.Response:
        await services.store.redis.set(services.store.key("probe"), "\udfff")
        return web.json_response({"ok": True})

    app.router.add_post("/probe", careless)
    async with TestClient(TestServer(app)) as client:
        status, text = await send(client, "/probe", b"", {})
    assert status == 400 and "invalid character" in json.loads(text)["error"]
    assert snapshot(redis_url) == {}
