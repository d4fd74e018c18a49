"""Bad input over HTTP gets a clear refusal and changes nothing; secrets never leak.

The web application runs in-process (aiohttp's TestServer) on the real Redis;
Slack's Web API is the local fake. The last tests run ``chatgate web`` and
``chatgate worker`` as processes, to check what the command actually logs.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlencode

import pytest
import redis as redis_sync
from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from chatgate.compose import connect
from gateway.app import create_app
from tests.fakes.slack import block_action, message_event, sign
from tests.fakes.telegram import text_update
from tests.support import eventually, keys

# The store's keys (``Store.key``) under the default prefix, for this module's plain Redis clients.
KEY = keys()

TELEGRAM_TOKEN = "123456:TG-bot-token-never-logged"
TELEGRAM_SECRET = "tg-webhook-secret-never-logged"
SLACK_TOKEN = "xoxb-slack-bot-token-never-logged"
SIGNING_SECRET = "slack-signing-secret-never-logged"
TWILIO_TOKEN = "twilio-auth-token-never-logged"
SECRETS = (TELEGRAM_TOKEN, TELEGRAM_SECRET, SLACK_TOKEN, SIGNING_SECRET, TWILIO_TOKEN)
PUBLIC_URL = "http://gateway.test"
CHANNEL = "C0SUPPORT"
CHAT_ID = 4242
# Where no Redis listens: a socket path that does not exist.
NO_REDIS = "unix:///nonexistent/chatgate-test/redis.sock"


def config_text(redis_url: str, slack_url: str = "http://127.0.0.1:9/api/", telegram_url: str = "http://127.0.0.1:9/bot",
                max_body: int = 2048, port: int = 8080, public_url: str = PUBLIC_URL) -> str:
    return f"""
[server]
port = {port}
public_url = "{public_url}"
max_body_bytes = {max_body}
[redis]
url = "{redis_url}"
[telegram]
enabled = true
token = "{TELEGRAM_TOKEN}"
secret_token = "{TELEGRAM_SECRET}"
api_url = "{telegram_url}"
[twilio]
enabled = true
account_sid = "AC00000000000000000000000000000000"
auth_token = "{TWILIO_TOKEN}"
sms_from = "+15005550006"
api_url = "http://127.0.0.1:9"
[slack]
enabled = true
bot_token = "{SLACK_TOKEN}"
signing_secret = "{SIGNING_SECRET}"
channel = "{CHANNEL}"
api_url = "{slack_url}"
[delivery]
retry_intervals = [0.1, 0.1]
"""


@pytest.fixture
async def client(redis_url, make_config, slack):
    """The web app in-process, on the real Redis, with a 2 KiB body limit."""
    app = create_app(connect(make_config(config_text(redis_url, slack.api_url)), redis_url))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.fixture
async def client_without_redis(make_config, slack):
    """The web app configured with a Redis that is not there."""
    app = create_app(connect(make_config(config_text(NO_REDIS, slack.api_url)), NO_REDIS))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def stored(redis_url: str) -> list[bytes]:
    return redis_sync.Redis.from_url(redis_url).keys(KEY("*"))


async def post(client, path: str, body: bytes | str, headers: dict) -> tuple[int, str]:
    async with client.post(path, data=body.encode() if isinstance(body, str) else body, headers=headers) as response:
        return response.status, await response.text()


def telegram_headers(content_type: str = "application/json") -> dict:
    return {"Content-Type": content_type, "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}


def twilio_request(params: dict, path: str = "/webhooks/twilio") -> tuple[bytes, dict]:
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC_URL + path, params)
    return urlencode(params).encode(), {"Content-Type": "application/x-www-form-urlencoded",
                                        "X-Twilio-Signature": signature}


def slack_form(body: str, timestamp: int | None = None, secret: str = SIGNING_SECRET) -> dict:
    return {"Content-Type": "application/x-www-form-urlencoded", **sign(secret, body, timestamp)}


def sms(sid: str, body: str) -> dict:
    return {"MessageSid": sid, "SmsSid": sid, "AccountSid": "AC00000000000000000000000000000000",
            "From": "+14155550100", "To": "+15005550006", "Body": body, "NumMedia": "0"}


# -- size limit ---------------------------------------------------------------------


async def test_bodies_over_the_limit_get_413_on_every_webhook_and_store_nothing(client, redis_url):
    big_json = json.dumps(text_update(1, CHAT_ID, "x" * 4000))
    assert (await post(client, "/webhooks/telegram", big_json, telegram_headers()))[0] == 413

    body, headers = twilio_request(sms("SM" + "1" * 32, "y" * 4000))
    assert (await post(client, "/webhooks/twilio", body, headers))[0] == 413
    status_body, status_headers = twilio_request({"MessageSid": "SM1", "MessageStatus": "delivered",
                                                  "Padding": "z" * 4000}, "/webhooks/twilio/status")
    assert (await post(client, "/webhooks/twilio/status", status_body, status_headers))[0] == 413

    slack_body = message_event("UAGENT1", CHANNEL, "w" * 4000, "1.000001", "1.000000")
    status, _ = await post(client, "/slack/events", slack_body,
                           {"Content-Type": "application/json", **sign(SIGNING_SECRET, slack_body)})
    assert status == 413
    assert stored(redis_url) == []


async def test_a_body_just_under_the_limit_is_accepted(client, redis_url):
    update = text_update(1, CHAT_ID, "")
    update["message"]["text"] = "a" * (2048 - len(json.dumps(update)) - 10)
    status, _ = await post(client, "/webhooks/telegram", json.dumps(update), telegram_headers())
    assert status == 200
    assert redis_sync.Redis.from_url(redis_url).hget(KEY("conv", "1"), "state") == b"new"


# -- malformed bodies and content types ---------------------------------------------------


@pytest.mark.parametrize("body, says", [
    (b"{not json", "malformed body"),
    (b'{"update_id": 1, "message": ', "malformed body"),
    (b"\xff\xfe\x00garbage", "malformed body"),
    (b"[1, 2, 3]", "update_id"),
    (b'{"update_id": "seven", "message": {}}', "update_id"),
    (b'{"update_id": 7, "message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"}, '
     b'"text": 12345}}', "not a string"),
])
async def test_malformed_telegram_bodies_get_400_with_a_message(client, redis_url, body, says):
    status, text = await post(client, "/webhooks/telegram", body, telegram_headers())
    assert status == 400
    assert says in json.loads(text)["error"]
    assert stored(redis_url) == []


async def test_a_twilio_form_without_its_required_fields_gets_400(client, redis_url):
    body, headers = twilio_request({"Body": "hello", "To": "+15005550006"})
    status, text = await post(client, "/webhooks/twilio", body, headers)
    assert status == 400 and "From and MessageSid" in json.loads(text)["error"]
    body, headers = twilio_request({"MessageSid": "SM1"}, "/webhooks/twilio/status")
    status, text = await post(client, "/webhooks/twilio/status", body, headers)
    assert status == 400 and "MessageStatus" in json.loads(text)["error"]
    assert stored(redis_url) == []


@pytest.mark.parametrize("body, content_type", [
    ("{broken", "application/json"),
    ("[1, 2]", "application/json"),
    ("payload=%7Bbroken", "application/x-www-form-urlencoded"),
    ("payload=%5B%5D", "application/x-www-form-urlencoded"),
])
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
async def test_malformed_slack_bodies_get_400_with_a_message(client, slack, redis_url, body, content_type, signed):
    headers = {"Content-Type": content_type, **(sign(SIGNING_SECRET, body) if signed else {})}
    status, text = await post(client, "/slack/events", body, headers)
    assert status == 400 and "malformed body" in json.loads(text)["error"]
    assert stored(redis_url) == []


def _action_without_action_id() -> str:
    payload = json.loads(parse_qs(block_action("accept", "1", "UAGENT1", CHANNEL, "1.000001",
                                               "http://127.0.0.1:9/respond"))["payload"][0])
    del payload["actions"][0]["action_id"]
    return urlencode({"payload": json.dumps(payload)})


@pytest.mark.parametrize("body, content_type, reason", [
    ('{"type": "event_callback", "event": "x"}', "application/json", "event object with a type"),
    ('{"type": "event_callback", "event": {"user": "U1"}}', "application/json", "event object with a type"),
    ('{"type": "no_such_type"}', "application/json", "unknown type"),
    (_action_without_action_id(), "application/x-www-form-urlencoded", "each with an action_id"),
], ids=["event-not-an-object", "event-without-type", "unknown-type", "action-without-action_id"])
async def test_a_signed_but_malformed_slack_body_gets_400_with_the_reason(client, redis_url, body, content_type,
                                                                          reason):
    status, text = await post(client, "/slack/events", body, {"Content-Type": content_type,
                                                              **sign(SIGNING_SECRET, body)})
    assert status == 400, text
    error = json.loads(text)["error"]
    assert "malformed Slack body" in error and reason in error
    assert stored(redis_url) == []
    # Unsigned, the same body learns nothing: bolt's 401.
    status, text = await post(client, "/slack/events", body, {"Content-Type": content_type})
    assert status == 401 and reason not in text


@pytest.mark.parametrize("path, content_type, expected", [
    ("/webhooks/telegram", "text/plain", "application/json"),
    ("/webhooks/telegram", "application/x-www-form-urlencoded", "application/json"),
    ("/webhooks/twilio", "application/json", "application/x-www-form-urlencoded"),
    ("/webhooks/twilio", "multipart/form-data", "application/x-www-form-urlencoded"),
    ("/webhooks/twilio/status", "text/xml", "application/x-www-form-urlencoded"),
])
async def test_a_wrong_content_type_gets_415_saying_what_is_expected(client, redis_url, path, content_type, expected):
    body = json.dumps(text_update(1, CHAT_ID, "hello")) if "telegram" in path else urlencode(sms("SM9", "hello"))
    headers = {**telegram_headers(content_type), "X-Twilio-Signature": "c2lnbmF0dXJl"}
    status, text = await post(client, path, body, headers)
    assert status == 415
    assert expected in json.loads(text)["error"]
    assert stored(redis_url) == []


async def test_unknown_fields_in_a_telegram_update_are_ignored(client, redis_url):
    update = text_update(1, CHAT_ID, "Where is my parcel?", brand_new_field={"nested": [1, 2, {"x": None}]})
    update["future_update_field"] = "whatever Telegram adds next"
    update["message"]["chat"]["is_forum_of_the_future"] = True
    status, text = await post(client, "/webhooks/telegram", json.dumps(update), telegram_headers())
    assert (status, json.loads(text)) == (200, {"ok": True})
    db = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    assert db.hget(KEY("conv", "1"), "query") == "Where is my parcel?"
    assert json.loads(db.lindex(KEY("msgs", "1"), 0))["text"] == "Where is my parcel?"


# -- Slack authentication -----------------------------------------------------------------


async def open_chat(client) -> None:
    """A customer chat exists (conversation 1, state new)."""
    status, _ = await post(client, "/webhooks/telegram", json.dumps(text_update(1, CHAT_ID, "hello")),
                           telegram_headers())
    assert status == 200


async def test_a_slack_request_older_than_five_minutes_is_refused_and_changes_nothing(client, slack, redis_url):
    await open_chat(client)
    db = redis_sync.Redis.from_url(redis_url)
    before = {key: db.dump(key) for key in db.keys(KEY("*"))}
    body = block_action("accept", "1", "UAGENT1", CHANNEL, "1.000001", slack.response_url)
    # Signed correctly, but six minutes ago: a replay.
    status, _ = await post(client, "/slack/events", body, slack_form(body, int(time.time()) - 360))
    assert status == 401
    # A reply event replayed the same way.
    reply = message_event("UAGENT1", CHANNEL, "replayed reply", "1.000002", "1.000001")
    status, _ = await post(client, "/slack/events", reply,
                           {"Content-Type": "application/json", **sign(SIGNING_SECRET, reply, int(time.time()) - 301)})
    assert status == 401
    assert {key: db.dump(key) for key in db.keys(KEY("*"))} == before
    assert db.hget(KEY("conv", "1"), "state") == b"new"
    assert slack.calls_to("chat.postEphemeral") == [] and slack.calls_to("response_url") == []


async def test_a_slack_request_four_minutes_old_is_still_accepted(client, slack, redis_url):
    await open_chat(client)
    body = block_action("accept", "1", "UAGENT1", CHANNEL, "1.000001", slack.response_url)
    status, _ = await post(client, "/slack/events", body, slack_form(body, int(time.time()) - 240))
    assert status == 200
    assert redis_sync.Redis.from_url(redis_url).hget(KEY("conv", "1"), "assignee") == b"UAGENT1"


@pytest.mark.parametrize("headers", [
    {"X-Slack-Signature": "v0=" + "0" * 64},
    {"X-Slack-Signature": "garbage"},
    {},
], ids=["wrong signature", "malformed signature", "no signature"])
async def test_a_slack_request_with_a_bad_signature_is_refused_and_changes_nothing(client, slack, redis_url, headers):
    await open_chat(client)
    db = redis_sync.Redis.from_url(redis_url)
    before = {key: db.dump(key) for key in db.keys(KEY("*"))}
    body = block_action("accept", "1", "UAGENT1", CHANNEL, "1.000001", slack.response_url)
    forged = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": str(int(time.time())),
              **headers}
    status, _ = await post(client, "/slack/events", body, forged)
    assert status == 401
    status, _ = await post(client, "/slack/events", body, slack_form(body, secret="not-the-signing-secret"))
    assert status == 401
    assert {key: db.dump(key) for key in db.keys(KEY("*"))} == before
    assert slack.calls_to("chat.postEphemeral") == [] and slack.calls_to("response_url") == []


# -- Redis unreachable, and no secret in logs or answers ----------------------------------


async def test_with_redis_unreachable_webhooks_answer_503_and_healthz_says_not_ok(client_without_redis):
    status, text = await post(client_without_redis, "/webhooks/telegram",
                              json.dumps(text_update(1, CHAT_ID, "hello")), telegram_headers())
    assert status == 503 and "retry later" in json.loads(text)["error"]
    body, headers = twilio_request(sms("SM" + "2" * 32, "hello"))
    status, text = await post(client_without_redis, "/webhooks/twilio", body, headers)
    assert status == 503 and "retry later" in json.loads(text)["error"]

    async with client_without_redis.get("/healthz") as response:
        assert response.status == 503
        health = await response.json()
    # Why (Redis's error) only for the operator's metrics token: tests/test_hostile_clients.py.
    assert health == {"ok": False}


def leaked(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def everything_logged(caplog) -> str:
    """Every record's message, arguments and traceback, as a handler would print them."""
    formatter = logging.Formatter("%(name)s %(message)s")
    return "\n".join(formatter.format(record) + repr(record.args) for record in caplog.records)


async def test_failures_never_put_a_secret_in_logs_or_answers(client_without_redis, client, slack, redis_url, caplog):
    caplog.set_level(logging.DEBUG)
    answers = []

    # Redis unreachable: every webhook fails.
    answers.append(await post(client_without_redis, "/webhooks/telegram",
                              json.dumps(text_update(1, CHAT_ID, "hello")), telegram_headers()))
    body, headers = twilio_request(sms("SM" + "3" * 32, "hello"))
    answers.append(await post(client_without_redis, "/webhooks/twilio", body, headers))
    click = block_action("accept", "1", "UAGENT1", CHANNEL, "1.000001", slack.response_url)
    answers.append(await post(client_without_redis, "/slack/events", click, slack_form(click)))
    async with client_without_redis.get("/healthz") as response:
        answers.append((response.status, await response.text()))

    # Redis up, Slack's API failing while chatgate answers a click on a chat that does not exist.
    slack.failures += [(500, {"ok": False, "error": "fatal_error"}, {})] * 3
    unknown = block_action("accept", "999", "UAGENT1", CHANNEL, "1.000001", slack.response_url)
    answers.append(await post(client, "/slack/events", unknown, slack_form(unknown)))
    # Forged and malformed requests.
    answers.append(await post(client, "/webhooks/telegram", b"{", telegram_headers()))
    answers.append(await post(client, "/webhooks/telegram", b"{}", {"X-Telegram-Bot-Api-Secret-Token": "guess",
                                                                    "Content-Type": "application/json"}))
    answers.append(await post(client, "/slack/events", click, slack_form(click, secret="guess")))

    assert [status for status, _ in answers[:2]] == [503, 503]
    assert answers[3][0] == 503 and all(status != 500 for status, _ in answers[4:])
    assert caplog.records, "the failures were logged"
    assert leaked(everything_logged(caplog)) == []
    assert leaked(json.dumps(answers)) == []


def secret_deployment(deployment, **options):
    """chatgate processes at DEBUG with this module's secrets (the fakes' tokens included)."""
    return deployment(
        env={"CHATGATE_LOG_LEVEL": "DEBUG"}, telegram_token=TELEGRAM_TOKEN, server={"public_url": PUBLIC_URL},
        telegram={"secret_token": TELEGRAM_SECRET}, slack={"bot_token": SLACK_TOKEN, "signing_secret": SIGNING_SECRET},
        twilio={"enabled": True, "auth_token": TWILIO_TOKEN, "sms_from": "+15005550006"}, **options)


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_chatgate_web_logs_no_secret_at_debug_when_redis_is_unreachable(deployment):
    started = secret_deployment(deployment, redis={"url": NO_REDIS}, workers=0, healthy=False)
    web, slack, base = started.webs[0], started.slack, started.gateway.base
    if True:  # noqa: SIM108 - keeps the steps below as they read
        answers = [
            http("POST", base + "/webhooks/telegram", json.dumps(text_update(1, CHAT_ID, "hi")).encode(),
                 telegram_headers()),
            http("GET", base + "/healthz"),
        ]
        body = urlencode(sms("SM" + "4" * 32, "hello")).encode()
        signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC_URL + "/webhooks/twilio",
                                                                     sms("SM" + "4" * 32, "hello"))
        answers.append(http("POST", base + "/webhooks/twilio", body,
                            {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}))
        click = block_action("accept", "1", "UAGENT1", CHANNEL, "1.000001", slack.response_url)
        answers.append(http("POST", base + "/slack/events", click.encode(), slack_form(click)))
    log = web.output()
    assert [status for status, _ in answers[:3]] == [503, 503, 503], answers
    assert "Redis unavailable" in log and " DEBUG " in log, log[-3000:]
    assert leaked(log) == [], log[-3000:]
    assert leaked(json.dumps(answers)) == []


def test_chatgate_worker_logs_no_secret_at_debug_when_the_platforms_fail(deployment):
    started = secret_deployment(deployment)
    slack, telegram, base = started.slack, started.telegram, started.gateway.base
    web, worker = started.webs[0], started.workers[0]
    # Telegram refuses the greeting for good; Slack fails the card twice, then takes it.
    telegram.failures.append((400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}, {}))
    slack.failures += [(500, {"ok": False, "error": "fatal_error"}, {})] * 2
    if True:  # noqa: SIM108 - keeps the steps below as they read
        assert http("POST", base + "/webhooks/telegram", json.dumps(text_update(1, CHAT_ID, "/start")).encode(),
                    telegram_headers())[0] == 200
        assert http("POST", base + "/webhooks/telegram", json.dumps(text_update(2, CHAT_ID, "help")).encode(),
                    telegram_headers())[0] == 200
        eventually(lambda: [c for c in slack.calls_to("chat.postMessage") if "thread_ts" not in c.params],
                   what="the card, after Slack's failures")
        eventually(lambda: "giving up on a message" in worker.output(), timeout=15, what="the given-up greeting")
    logs = web.output() + worker.output()
    assert "giving up on a message" in logs and "chat not found" in logs.lower(), logs[-3000:]
    assert " DEBUG " in logs  # the level really was DEBUG
    assert leaked(logs) == [], logs[-3000:]
