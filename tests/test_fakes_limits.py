"""The fakes refuse what the real platforms refuse, as the real client libraries see it."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from telegram import Bot
from telegram.error import BadRequest, RetryAfter
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from channels.render import telegram_chunks
from channels.twilio import RewritingHttpClient

from .fakes.slack import FakeSlack
from .fakes.telegram import FakeTelegram
from .fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio


@pytest.fixture
def telegram():
    fake = FakeTelegram().start()
    yield fake
    fake.stop()


@pytest.fixture
def twilio():
    fake = FakeTwilio().start()
    yield fake
    fake.stop()


def bot(fake: FakeTelegram) -> Bot:
    return Bot(fake.token, base_url=fake.api_url, base_file_url=f"{fake.url}/file/bot")


# --- Telegram -----------------------------------------------------------------------------------

async def test_telegram_refuses_a_message_over_4096_utf16_units(telegram):
    async with bot(telegram) as b:
        await b.send_message(chat_id=1, text="x" * 4096)
        with pytest.raises(BadRequest, match="Message is too long"):
            await b.send_message(chat_id=1, text="😀" * 2049)  # 2049 characters, 4098 UTF-16 units
        # HTML is counted after parsing: tags and entities do not count.
        await b.send_message(chat_id=1, text="<b>" + "&amp;" * 4096 + "</b>", parse_mode="HTML")
    assert len(telegram.calls_to("sendMessage")) == 2


async def test_telegram_refuses_empty_text_and_bad_html(telegram):
    async with bot(telegram) as b:
        with pytest.raises(BadRequest, match="Message text is empty"):
            await b.send_message(chat_id=1, text="  ")
        with pytest.raises(BadRequest, match="Can't parse entities"):
            await b.send_message(chat_id=1, text="<b>open", parse_mode="HTML")
        with pytest.raises(BadRequest, match="Can't parse entities"):
            await b.send_message(chat_id=1, text="<blink>x</blink>", parse_mode="HTML")
        with pytest.raises(BadRequest, match="Can't parse entities"):
            await b.send_message(chat_id=1, text="1 < 2", parse_mode="HTML")


async def test_telegram_accepts_every_rendered_piece_of_a_long_reply(telegram):
    text = " ".join(f"**w{i}** & <i>" for i in range(2500))
    async with bot(telegram) as b:
        for piece in telegram_chunks(text):
            await b.send_message(chat_id=1, text=piece, parse_mode="HTML")
    assert len(telegram.calls_to("sendMessage")) >= 3


async def test_telegram_media_chat_action_and_files(telegram):
    telegram.add_file("F1", b"hello", "documents/file_1.txt")
    telegram.add_file("BIG", b"0" * (20 * 1024 * 1024 + 1), "documents/big.bin")
    async with bot(telegram) as b:
        assert await b.send_chat_action(chat_id=1, action="typing") is True
        photo = await b.send_photo(chat_id=1, photo=b"\x89PNG fake", caption="a photo", filename="p.png")
        assert photo.photo and photo.caption == "a photo"
        document = await b.send_document(chat_id=1, document=b"%PDF", filename="invoice.pdf")
        assert document.document.file_name == "invoice.pdf"
        with pytest.raises(BadRequest, match="Message caption is too long"):
            await b.send_document(chat_id=1, document=b"x", filename="x.txt", caption="c" * 1025)
        file = await b.get_file("F1")
        assert bytes(await file.download_as_bytearray()) == b"hello"
        with pytest.raises(BadRequest, match="File is too big"):
            await b.get_file("BIG")
    assert telegram.calls_to("sendDocument")[0].params["document"] == {"filename": "invoice.pdf", "size": 4}


# --- Twilio -------------------------------------------------------------------------------------

def twilio_client(fake: FakeTwilio) -> Client:
    return Client(ACCOUNT_SID, AUTH_TOKEN, http_client=RewritingHttpClient(fake.api_url))


def test_twilio_refuses_a_body_over_1600_characters(twilio):
    client = twilio_client(twilio)
    client.messages.create(to="+15551234567", from_="+15005550006", body="x" * 1600)
    with pytest.raises(TwilioRestException) as refused:
        client.messages.create(to="+15551234567", from_="+15005550006", body="x" * 1601)
    assert refused.value.code == 21617 and refused.value.status == 400
    assert len(twilio.messages()) == 1


def test_twilio_media_needs_basic_auth(twilio):
    url = twilio.add_media("/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", b"\xff\xd8jpeg", "image/jpeg")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=5)
    assert refused.value.code == 401
    auth = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {auth}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.read() == b"\xff\xd8jpeg" and response.headers["Content-Type"] == "image/jpeg"


# --- Slack --------------------------------------------------------------------------------------

def slack_client(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=fake.api_url)


def section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


@pytest.mark.parametrize("blocks", [
    [section("x")] * 51,
    [section("x" * 3001)],
    [{"type": "context", "elements": [{"type": "mrkdwn", "text": "x" * 3001}]}],
    [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}],
    [{"type": "actions", "elements": [{"type": "button", "action_id": "a", "text": {"type": "plain_text",
                                                                                     "text": "x" * 76}}]}],
])
async def test_slack_refuses_blocks_over_the_limits(slack, blocks):
    with pytest.raises(SlackApiError) as refused:
        await slack_client(slack).chat_postMessage(channel="C1", text="t", blocks=blocks)
    assert refused.value.response["error"] == "invalid_blocks"
    assert not slack.calls_to("chat.postMessage")


async def test_slack_accepts_blocks_at_the_limits(slack):
    blocks = [section("x" * 3000)] * 49 + [{"type": "header", "text": {"type": "plain_text", "text": "x" * 150}}]
    await slack_client(slack).chat_postMessage(channel="C1", text="t", blocks=blocks)


async def test_slack_refuses_text_over_40000_in_post_and_update(slack):
    client = slack_client(slack)
    posted = await client.chat_postMessage(channel="C1", text="x" * 40_000)
    with pytest.raises(SlackApiError) as refused:
        await client.chat_postMessage(channel="C1", text="x" * 40_001)
    assert refused.value.response["error"] == "msg_too_long"
    with pytest.raises(SlackApiError) as refused:
        await client.chat_update(channel="C1", ts=posted["ts"], text="t", blocks=[section("x" * 3001)])
    assert refused.value.response["error"] == "invalid_blocks"


async def test_slack_users_info(slack):
    slack.users = {"U1": "Alice"}
    user = (await slack_client(slack).users_info(user="U1"))["user"]
    assert user["real_name"] == "Alice" and user["profile"]["display_name"] == "Alice"
    with pytest.raises(SlackApiError) as refused:
        await slack_client(slack).users_info(user="U2")
    assert refused.value.response["error"] == "user_not_found"


async def test_slack_files_upload_v2(slack):
    response = await slack_client(slack).files_upload_v2(
        channel="C1", thread_ts="1.000001", file=b"%PDF-1.4 invoice", filename="invoice.pdf",
        initial_comment="Your invoice")
    assert response["file"]["name"] == "invoice.pdf"
    [shared] = slack.files
    assert shared["data"] == b"%PDF-1.4 invoice" and shared["channel_id"] == "C1"
    assert shared["thread_ts"] == "1.000001" and shared["initial_comment"] == "Your invoice"


# --- Rate limits (off unless a test sets them), answered with each platform's own 429 ---------------------

async def test_slack_answers_429_ratelimited_with_retry_after_per_channel(slack):
    slack.post_limit = (0.1, 2)  # slow to refill: a slow test run cannot sneak a post in
    client = slack_client(slack)
    await client.chat_postMessage(channel="C1", text="one")
    await client.chat_postMessage(channel="C1", text="two", thread_ts="1.000001")  # threads count for the channel
    with pytest.raises(SlackApiError) as refused:
        await client.chat_postMessage(channel="C1", text="three")
    response = refused.value.response
    assert response.status_code == 429 and response["error"] == "ratelimited" and response["ok"] is False
    assert int(response.headers["Retry-After"]) >= 1
    await client.chat_postMessage(channel="C2", text="another channel")  # its own limit
    assert [c.params["text"] for c in slack.calls_to("chat.postMessage")] == ["one", "two", "another channel"]
    assert [(c.method, c.params["text"], c.params["key"]) for c in slack.limited] == [
        ("chat.postMessage", "three", "C1")]


async def test_telegram_answers_429_retry_after_per_chat_and_per_bot(telegram):
    telegram.chat_limit, telegram.bot_limit = (0.1, 1), (0.1, 2)
    async with bot(telegram) as b:
        await b.send_message(chat_id=1, text="first")
        with pytest.raises(RetryAfter) as refused:
            await b.send_message(chat_id=1, text="same chat, too soon")
        assert "Flood control exceeded" in str(refused.value)  # python-telegram-bot's wording of the 429
        await b.send_message(chat_id=2, text="other chat")
        with pytest.raises(RetryAfter):  # the bot's own limit: two at once
            await b.send_message(chat_id=3, text="third chat")
    assert [(c.params["text"], c.params["limit"]) for c in telegram.limited] == [
        ("same chat, too soon", "chat"), ("third chat", "bot")]


async def test_telegram_429_body_is_the_bot_apis():
    import aiohttp

    fake = FakeTelegram().start()
    fake.chat_limit = (0.1, 1)
    try:
        async with aiohttp.ClientSession() as session:
            url = f"{fake.api_url}{fake.token}/sendMessage"
            async with session.post(url, json={"chat_id": 1, "text": "a"}) as first:
                assert first.status == 200
            async with session.post(url, json={"chat_id": 1, "text": "b"}) as second:
                assert second.status == 429
                body = await second.json()
    finally:
        fake.stop()
    wait = body["parameters"]["retry_after"]
    assert body == {"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {wait}",
                    "parameters": {"retry_after": wait}} and wait >= 1


def test_twilio_answers_429_with_20429_per_sender(twilio):
    twilio.sender_limit = (0.1, 1)
    client = twilio_client(twilio)
    client.messages.create(to="+15551234567", from_="+15005550006", body="first")
    with pytest.raises(TwilioRestException) as refused:
        client.messages.create(to="+15551234568", from_="+15005550006", body="too soon")
    assert refused.value.status == 429 and refused.value.code == 20429
    assert int(client.http_client.retry_after) >= 1
    client.messages.create(to="+15551234567", from_="+15005550007", body="another sender")
    assert [m["Body"] for m in twilio.messages()] == ["first", "another sender"]
    assert [c.params["Body"] for c in twilio.limited] == ["too soon"]
