"""Fuzzing the connectors' parsers and webhooks (hypothesis).

No input may crash a parser with anything but its documented ValueError, no
webhook may answer 500, and whatever a webhook accepted must leave every
conversation in Redis whole: required fields present, history as long as its
``seq``. A request that was refused stores nothing at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import string
import time

import pytest
import redis as redis_sync
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from channels import telegram, twilio
from chatgate.compose import connect
from gateway.app import create_app
from gateway.message import InboundMessage
from tests.fakes.slack import FakeSlack
from tests.support import keys

# The store's keys (``Store.key``) under the default prefix, for this module's plain Redis clients.
KEY = keys()

TELEGRAM_SECRET = "fuzz-secret-token"
TWILIO_TOKEN = "fuzz-twilio-auth-token-0123456789"
SLACK_SECRET = "fuzz-slack-signing-secret"
PUBLIC_URL = "http://gateway.test"
REQUIRED_FIELDS = ("id", "channel", "customer_id", "state", "created_at")

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
FUZZ_HTTP = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))

# -- strategies ---------------------------------------------------------------------

junk_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
    st.just("x" * 70_000),  # a huge string
    st.sampled_from(["", " ", "/start", "/start@bot extra", "\u0000", "\ud7ff", "🙂" * 5, "1", "-1", "nan"]),
    # Lone surrogates (JSON's "\udfff"), which no UTF-8 encoder can write: stored as U+FFFD, never a 500.
    st.sampled_from(["\udfff", "a\ud800b", "\udc00\ud83d"]),
)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.floats(allow_nan=False), junk_text,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


def optional_fields(**fields) -> st.SearchStrategy[dict]:
    """A dict holding any subset of ``fields`` (each drawn from its strategy)."""
    return st.fixed_dictionaries({}, optional=fields)


ints = st.integers(min_value=-(2 ** 63), max_value=2 ** 63)
floats = st.floats(allow_nan=True, allow_infinity=True)
texts = st.one_of(junk_text, st.none())
strings = junk_text
chat = optional_fields(id=ints, type=st.sampled_from(["private", "group", "channel"]),
                       first_name=texts, last_name=texts, title=texts, username=texts)
user = st.fixed_dictionaries({"id": ints, "is_bot": st.booleans(), "first_name": strings},
                             optional={"last_name": texts, "username": texts})
photo_size = st.fixed_dictionaries({"file_id": strings, "file_unique_id": strings, "width": ints, "height": ints},
                                   optional={"file_size": ints})
document = st.fixed_dictionaries({"file_id": strings, "file_unique_id": strings},
                                 optional={"file_name": texts, "mime_type": texts})
location = st.fixed_dictionaries({"latitude": floats, "longitude": floats})
venue = st.fixed_dictionaries({"location": location, "title": strings, "address": strings})
contact = st.fixed_dictionaries({"phone_number": strings, "first_name": strings}, optional={"user_id": ints})
entity = st.fixed_dictionaries({"type": st.sampled_from(["bot_command", "mention", "url", "bold"]),
                                "offset": ints, "length": ints})
extras = {
    "from": user, "text": texts, "caption": texts, "photo": st.lists(photo_size, max_size=3),
    "document": document, "location": location, "venue": venue, "contact": contact,
    "entities": st.lists(entity, max_size=3), "sticker": json_values, "unknown_field": json_values,
}
# A message with its required fields present and any of the others, each of the right shape
# though perhaps with missing or odd members.
message = st.fixed_dictionaries(
    {"message_id": st.integers(min_value=1, max_value=2 ** 31), "date": st.integers(min_value=0, max_value=2 ** 31),
     "chat": st.fixed_dictionaries({"id": ints, "type": st.just("private")}, optional={"first_name": texts})},
    optional=extras,
)
field_names = st.sampled_from(["message_id", "date", "chat", *extras])
junk = st.one_of(json_values, st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
                 st.lists(json_values, max_size=3))


def _mutate(message: dict, name: str, value, drop: bool) -> dict:
    changed = {**message, name: value}
    if drop:
        del changed[name]
    return changed


# The same with one field missing or of the wrong type (a huge date, text that is a list, ...).
broken_message = st.builds(_mutate, message, field_names, junk, st.booleans())
update_ids = st.integers(min_value=0, max_value=2 ** 31)
telegram_updates = st.one_of(
    st.builds(lambda u, m: {"update_id": u, "message": m}, update_ids, message),
    st.builds(lambda u, m: {"update_id": u, "message": m}, update_ids, broken_message),
    optional_fields(update_id=st.one_of(update_ids, junk), message=st.one_of(message, junk),
                    edited_message=message, channel_post=message, callback_query=json_values),
)

twilio_keys = st.sampled_from([
    "From", "To", "Body", "MessageSid", "SmsSid", "AccountSid", "NumMedia", "MediaUrl0", "MediaUrl1",
    "MediaContentType0", "MediaContentType1", "Latitude", "Longitude", "Label", "Address", "ProfileName",
    "FromCity", "FromState", "FromCountry", "WaId", "NumSegments",
]) | st.text(max_size=12)
twilio_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "+14155550100", "whatsapp:+447700900123", "whatsapp:", "12345", "+", "SM123",
                     "0", "1", "2", "-1", "999999", "1e3", "nan", "inf", "52.5", "STOP", "start",
                     "image/jpeg", "https://example.test/m.jpg", "x" * 5000]),
)
twilio_forms = st.dictionaries(twilio_keys, twilio_values, max_size=12)


# -- the parsers --------------------------------------------------------------------


@FUZZ
@given(data=st.one_of(json_values, telegram_updates))
def test_telegram_parse_returns_a_result_or_raises_value_error(data):
    try:
        result = telegram.parse(data)
    except ValueError as exc:
        assert str(exc), "a ValueError must say what is wrong"
        return
    assert result is None or isinstance(result, (telegram.Start, InboundMessage))
    if isinstance(result, InboundMessage):
        assert result.customer_id and isinstance(result.text, str)
        assert result.text or result.attachments


@FUZZ
@given(form=twilio_forms, known=st.sampled_from(["", "Berlin, Germany"]))
def test_twilio_parse_returns_a_result_or_raises_value_error(form, known):
    try:
        result = twilio.parse(form, known)
    except ValueError as exc:
        assert str(exc)
        return
    assert result is None or isinstance(result, twilio.Parsed)
    if result is not None:
        assert result.message.customer_id is not None and result.message.platform_id
        assert result.message.text or result.message.attachments


# -- through HTTP, in-process -------------------------------------------------------


def config_text(redis_url: str, slack_api: str) -> str:
    return f"""
[server]
public_url = "{PUBLIC_URL}"
max_body_bytes = 65536
[redis]
url = "{redis_url}"
[telegram]
enabled = true
token = "123456:FUZZ-telegram-token"
secret_token = "{TELEGRAM_SECRET}"
api_url = "http://127.0.0.1:9/bot"
[twilio]
enabled = true
account_sid = "AC00000000000000000000000000000000"
auth_token = "{TWILIO_TOKEN}"
sms_from = "+15005550006"
api_url = "http://127.0.0.1:9"
[slack]
enabled = true
bot_token = "xoxb-fuzz"
signing_secret = "{SLACK_SECRET}"
channel = "C0FUZZ"
api_url = "{slack_api}"
"""


def consistent(redis_url: str) -> list[str]:
    """Problems with the conversations in Redis (empty when every one is whole)."""
    db = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    problems = []
    for key in db.scan_iter(KEY("conv", "*")):
        conv = db.hgetall(key)
        missing = [name for name in REQUIRED_FIELDS if not conv.get(name)]
        if missing:
            problems.append(f"{key} lacks {missing}")
        history = db.llen(key.replace(":conv:", ":msgs:", 1))
        if str(history) != conv.get("seq"):
            problems.append(f"{key}: seq {conv.get('seq')} but {history} messages in its history")
    for key in db.scan_iter(KEY("msgs", "*")):
        if not db.exists(key.replace(":msgs:", ":conv:", 1)):
            problems.append(f"{key}: a history without its conversation")
    return problems


def stored_keys(redis_url: str) -> set[str]:
    """Conversation data in Redis (the RQ queue's keys are not conversation data)."""
    db = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    return {key for key in db.scan_iter(KEY("*"))}


@pytest.fixture(scope="module")
def slack_api():
    fake = FakeSlack().start()
    yield fake.api_url
    fake.stop()


@pytest.fixture
def gateway(redis_url, make_config, slack_api):
    """An in-process client of the web app with Telegram, Twilio (signed) and Slack enabled."""
    loop = asyncio.new_event_loop()
    app = create_app(connect(make_config(config_text(redis_url, slack_api)), redis_url))
    client = TestClient(TestServer(app), loop=loop)
    loop.run_until_complete(client.start_server())
    yield loop, client
    loop.run_until_complete(client.close())
    loop.close()


def post(gateway, path: str, body: bytes, headers: dict) -> tuple[int, str]:
    loop, client = gateway

    async def go():
        async with client.post(path, data=body, headers=headers) as response:
            return response.status, await response.text()

    return loop.run_until_complete(go())


def flush(redis_url: str) -> None:
    redis_sync.Redis.from_url(redis_url).flushall()


def truncated(data: bytes, cut: int) -> bytes:
    return data[: cut % max(len(data), 1)]


telegram_bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    telegram_updates.map(lambda u: json.dumps(u).encode()),
    st.tuples(telegram_updates.map(lambda u: json.dumps(u).encode()), st.integers(0, 10_000))
    .map(lambda t: truncated(*t)),
    st.just(b"[" * 20_000 + b"]" * 20_000),  # nesting deep enough to break a recursive parser
)
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain",
                                 "application/x-www-form-urlencoded", "multipart/form-data", ""])


@FUZZ_HTTP
@given(body=telegram_bodies, content_type=content_types,
       extra_header=st.one_of(st.text(alphabet=string.ascii_letters, max_size=50),
                              st.integers(min_value=6000, max_value=12000).map(lambda n: "h" * n)))
def test_telegram_webhook_never_answers_500_and_keeps_conversations_whole(gateway, redis_url, body,
                                                                          content_type, extra_header):
    flush(redis_url)
    headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET, "X-Fuzz": extra_header}
    if content_type:
        headers["Content-Type"] = content_type
    status, text = post(gateway, "/webhooks/telegram", body, headers)
    assert status < 500, text
    assert status in (200, 400, 413, 415, 431), (status, text)
    if status != 200:
        assert text.strip(), "a refusal says why"
        assert stored_keys(redis_url) == set(), "a refused webhook stored something"
    assert consistent(redis_url) == []


def twilio_signature(url: str, form: dict) -> str:
    return RequestValidator(TWILIO_TOKEN).compute_signature(url, form)


def form_body(form: dict) -> bytes:
    from urllib.parse import urlencode

    return urlencode(form).encode()


@FUZZ_HTTP
@given(form=twilio_forms)
def test_twilio_webhook_signed_fuzzed_forms_never_500_and_keep_conversations_whole(gateway, redis_url, form):
    assume(all("\x00" not in k + v for k, v in form.items()))
    flush(redis_url)
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-Twilio-Signature": twilio_signature(PUBLIC_URL + "/webhooks/twilio", form)}
    status, text = post(gateway, "/webhooks/twilio", form_body(form), headers)
    assert status < 500, text
    assert status in (200, 400), (status, text)
    if status == 400:
        assert "error" in text and stored_keys(redis_url) == set()
    assert consistent(redis_url) == []


status_forms = st.fixed_dictionaries({}, optional={
    "MessageSid": st.sampled_from(["SMKNOWN", "SMOTHER", ""]) | st.text(max_size=12),
    "SmsSid": st.sampled_from(["SMKNOWN", ""]),
    "MessageStatus": st.sampled_from(["queued", "sent", "delivered", "read", "failed", "undelivered", ""])
    | st.text(max_size=12),
    "ErrorCode": st.sampled_from(["30003", "63016", "", "abc", "-1", "99999999999999999999"]) | st.text(max_size=8),
    "AccountSid": st.text(max_size=8),
})


@FUZZ_HTTP
@given(form=status_forms)
def test_twilio_status_callback_fuzzed_never_500_and_keeps_conversations_whole(gateway, redis_url, form):
    assume(all("\x00" not in k + v for k, v in form.items()))
    flush(redis_url)
    # One stored customer message whose reply SMKNOWN the status callbacks may talk about.
    first = {"From": "+14155550100", "To": "+15005550006", "MessageSid": "SMIN1", "Body": "hello", "NumMedia": "0"}
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-Twilio-Signature": twilio_signature(PUBLIC_URL + "/webhooks/twilio", first)}
    assert post(gateway, "/webhooks/twilio", form_body(first), headers)[0] == 200
    db = redis_sync.Redis.from_url(redis_url)
    db.hset(KEY("ref", "twilio-sid"), "SMKNOWN", "1:1")
    history = db.lrange(KEY("msgs", "1"), 0, -1)

    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-Twilio-Signature": twilio_signature(PUBLIC_URL + "/webhooks/twilio/status", form)}
    status, text = post(gateway, "/webhooks/twilio/status", form_body(form), headers)
    assert status in (200, 204, 400), (status, text)
    assert consistent(redis_url) == []
    if status == 400:
        assert "error" in text and db.lrange(KEY("msgs", "1"), 0, -1) == history


@FUZZ_HTTP
@given(body=st.one_of(st.binary(max_size=300), twilio_forms.map(form_body)),
       content_type=content_types, signed=st.booleans())
def test_twilio_webhook_random_bodies_never_500(gateway, redis_url, body, content_type, signed):
    flush(redis_url)
    headers = {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}
    if content_type:
        headers["Content-Type"] = content_type
    status, text = post(gateway, "/webhooks/twilio", body, headers)
    assert status < 500, text
    # The signature cannot match a random body: nothing may be stored.
    assert status in (400, 403, 413, 415), (status, text)
    assert stored_keys(redis_url) == set()
    assert consistent(redis_url) == []


def slack_signed(body: bytes, secret: str = SLACK_SECRET) -> dict:
    """Slack's signature headers over raw bytes (the fakes' ``sign`` takes text)."""
    timestamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": "v0=" + digest}


slack_payloads = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(["type", "event", "payload", "challenge", "token", "team_id"]), json_values,
                    max_size=4).map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: form_body({"payload": json.dumps(v)})),
    st.fixed_dictionaries({"type": st.just("block_actions"), "actions": st.lists(json_values, max_size=2),
                           "user": json_values, "channel": json_values})
    .map(lambda d: form_body({"payload": json.dumps(d)})),
)


@FUZZ_HTTP
@given(body=slack_payloads, content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                                                          "text/plain"]), forged=st.booleans())
def test_slack_events_unsigned_junk_never_500_and_changes_nothing(gateway, redis_url, body, content_type, forged):
    flush(redis_url)
    headers = {"Content-Type": content_type, **(slack_signed(body, "not-the-secret") if forged else {})}
    status, text = post(gateway, "/slack/events", body, headers)
    assert status in (400, 401, 413), (status, text)
    assert stored_keys(redis_url) == set()


@FUZZ_HTTP
@given(body=slack_payloads, content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded"]))
def test_slack_events_signed_junk_changes_nothing(gateway, redis_url, body, content_type):
    # Correctly signed junk can only come from Slack itself (or the secret's holder): it is
    # answered (or refused with a 4xx and a reason), never a 500, and nothing is stored or changed.
    flush(redis_url)
    status, text = post(gateway, "/slack/events", body, {"Content-Type": content_type, **slack_signed(body)})
    assert status in (200, 400, 404, 413), (status, text)
    assert SLACK_SECRET not in text
    assert stored_keys(redis_url) == set()


def test_the_consistency_check_notices_a_half_written_conversation(redis_url):
    """The invariant the fuzzers rely on does catch a broken conversation."""
    db = redis_sync.Redis.from_url(redis_url)
    db.hset(KEY("conv", "1"), mapping={"id": "1", "channel": "telegram", "customer_id": "5",
                                          "state": "new", "created_at": "1", "seq": "2"})
    db.rpush(KEY("msgs", "1"), "{}")
    db.hset(KEY("conv", "2"), mapping={"id": "2", "seq": "0"})
    db.rpush(KEY("msgs", "3"), "{}")
    problems = consistent(redis_url)
    assert any("seq 2 but 1" in p for p in problems)
    assert any("conv:2 lacks" in p for p in problems)
    assert any("msgs:3: a history without its conversation" in p for p in problems)


_names = st.one_of(st.none(), st.text(max_size=12))


@FUZZ
@given(text=st.text(max_size=40), first=_names, last=_names, username=_names, title=_names,
       chat_id=st.integers(-2 ** 40, 2 ** 40), with_user=st.booleans(), date=st.integers(0, 2 ** 32))
@example(text="0", first="", last="0", username=None, title=None, chat_id=0, with_user=True, date=0)  # no first name
def test_the_plain_text_fast_path_reads_updates_as_python_telegram_bot_does(text, first, last, username, title,
                                                                             chat_id, with_user, date):
    """Plain text messages skip python-telegram-bot's objects; what they give must be the same."""
    from telegram import Update

    def named(holder: dict) -> dict:
        for key, value in (("first_name", first), ("last_name", last), ("username", username)):
            if value is not None:
                holder[key] = value
        return holder

    chat = named({"id": chat_id, "type": "private"})
    if title is not None:
        chat["title"] = title
    message = {"message_id": 7, "date": date, "chat": chat, "text": text}
    if with_user:
        message["from"] = named({"id": chat_id, "is_bot": False, "first_name": first or "F"})
    update = {"update_id": 1, "message": message}
    fast = telegram._plain_text(update)
    full = telegram._normalize(Update.de_json(json.loads(json.dumps(update)), None))
    assert fast == full
