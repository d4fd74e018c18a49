"""Platform fidelity, end to end: every message arrives whole, safe and looking right.

Customers on Telegram, SMS and WhatsApp, agents in Slack, through the real ``chatgate web`` and
``chatgate worker`` processes; the fakes enforce the platforms' documented limits (Telegram's
4,096 characters and HTML entities, Twilio's 1,600, Slack's Block Kit limits), so a limit broken
in code fails here.
"""

from __future__ import annotations

import asyncio
import html
import json
import re

import pytest

from tests import conftest
from tests.fakes.slack import MAX_SECTION_TEXT, block_errors, home_opened
from tests.fakes.telegram import MAX_TEXT, html_text, text_update, utf16_len
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, inbound, signed
from tests.support import eventually, keys

# The store's keys (``Store.key``) under the default prefix, for this module's plain Redis clients.
KEY = keys()
PUBLIC_URL = "https://support.example.com"
SMS_FROM = "+15005550006"
WHATSAPP_FROM = "+14155238886"
TWILIO = {"enabled": True, "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "sms_from": SMS_FROM,
          "whatsapp_from": "whatsapp:" + WHATSAPP_FROM}
PINGS = re.compile(r"<!(channel|here|everyone)|<@U[A-Z0-9]+")


class Chat:
    """A running deployment seen as a support team would use it."""

    def __init__(self, deployment: conftest.Deployment):
        self.d = deployment
        self.gateway, self.slack, self.telegram, self.twilio = (deployment.gateway, deployment.slack,
                                                                deployment.telegram, deployment.twilio)
        self.redis = deployment.store()

    def open_chat(self, channel: str, customer: str) -> str | None:
        value = self.redis.get(KEY("open", channel, customer))
        return value.decode() if value else None

    def chat(self, conversation_id: str) -> dict:
        return {k.decode(): v.decode() for k, v in self.redis.hgetall(KEY("conv", conversation_id)).items()}

    def card_ts(self, conversation_id: str) -> str:
        return eventually(lambda: (self.redis.hget(KEY("ref", "slack-card"), conversation_id)
                                   or b"").decode(), what="the chat card")

    def twilio_post(self, params: dict) -> tuple[int, str]:
        body, headers = signed(AUTH_TOKEN, PUBLIC_URL + "/webhooks/twilio", params)
        return self.gateway.post("/webhooks/twilio", body, headers)

    def start(self, channel: str, customer: str, send, accept: bool = True) -> tuple[str, str]:
        """The customer's first message (``send()`` posts it), the card, and the agent's accept."""
        status, body = send()
        assert status == 200, body
        conversation_id = eventually(lambda: self.open_chat(channel, customer), what="the chat")
        card_ts = self.card_ts(conversation_id)
        if accept:
            assert self.gateway.click("accept", conversation_id, "UAGENT1", card_ts)[0] == 200
            eventually(lambda: self.chat(conversation_id).get("state") == "active", what="accept")
        return conversation_id, card_ts

    def telegram_chat(self, chat_id: int, text: str, accept: bool = True, **names) -> tuple[str, str]:
        return self.start("telegram", str(chat_id),
                          lambda: self.gateway.telegram(text_update(chat_id % 100000, chat_id, text, **names)),
                          accept)

    def slack_texts(self) -> list[str]:
        """Every text chatgate posted or published to Slack that Slack reads as mrkdwn (plain_text is
        shown literally, so it cannot ping anyone)."""
        found: list[str] = []

        def walk(node) -> None:
            if isinstance(node, dict):
                if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
                    found.append(node["text"])
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        for call in self.slack.calls:
            if call.method in ("chat.postMessage", "chat.update", "chat.postEphemeral", "views.publish"):
                found.append(str(call.params.get("text", "")))
                walk(call.params.get("blocks"))
                view = call.params.get("view")
                walk(json.loads(view) if isinstance(view, str) else view)
        return found

    def sent_html(self, chat_id: int) -> list[str]:
        return [c.params["text"] for c in self.telegram.calls_to("sendMessage")
                if str(c.params.get("chat_id")) == str(chat_id)]


@pytest.fixture(scope="module")
def team(module_deployment):
    return Chat(module_deployment(server={"public_url": PUBLIC_URL}, twilio=TWILIO))


# -- 1. mention injection ------------------------------------------------------------------------


def test_customer_mentions_ping_nobody_on_the_card_thread_and_home(team):
    chat_id = 555000101
    conversation_id, card_ts = team.telegram_chat(
        chat_id, "Hi <!channel> and <!here>, ask <@U0BOSS> & <#C0GENERAL> about <https://evil.example|this>",
        accept=False, first_name="<!channel>", last_name="<@U0BOSS>")
    card = json.dumps(team.slack.messages[card_ts])
    assert "&lt;!channel&gt;" in card and "&lt;@U0BOSS&gt;" in card and "&amp;" in card
    # A location whose venue title is a mention, then a follow-up message.
    venue = {"location": {"latitude": 52.52, "longitude": 13.4}, "title": "<!everyone>", "address": "<@U0X>"}
    team.gateway.telegram(text_update(2, chat_id, None, message_id=2,
                                      location={"latitude": 52.52, "longitude": 13.4}, venue=venue))
    team.gateway.telegram(text_update(3, chat_id, "again <!here>", message_id=3))
    eventually(lambda: [t for t in team.slack.thread_texts(card_ts) if "again &lt;!here&gt;" in t],
               what="the escaped follow-up")
    # The App Home of an agent lists the chat.
    assert team.gateway.slack_event(home_opened("UAGENT9"))[0] == 200
    eventually(lambda: "UAGENT9" in team.slack.home_views, what="the App Home")
    assert "&lt;!channel&gt;" in json.dumps(team.slack.home_views["UAGENT9"])
    team.d.wait_idle()
    assert any("&lt;!everyone&gt;, &lt;@U0X&gt;" in t for t in team.slack.thread_texts(card_ts))  # the venue
    for text in team.slack_texts():
        assert not PINGS.search(text.replace("<@UAGENT1>", "").replace("<@UAGENT9>", "")), text


# -- 2. Slack markup to customers ------------------------------------------------------------------

AGENT_MRKDWN = ("See <https://example.com/track?a=1&amp;b=2|the tracking page> &amp; *now*, "
                "<@UALICE> helps &lt;3 <mailto:help@example.com|help@example.com>")


def test_agent_mrkdwn_reaches_telegram_as_html_with_names(team):
    team.slack.users["UALICE"] = "Alice Smith"
    chat_id = 555000102
    _, card_ts = team.telegram_chat(chat_id, "Where is my parcel?")
    assert team.gateway.say("UAGENT1", AGENT_MRKDWN, card_ts)[0] == 200
    sent = eventually(lambda: team.telegram.calls_to("sendMessage") and team.sent_html(chat_id),
                      what="the reply")
    call = [c for c in team.telegram.calls_to("sendMessage") if str(c.params["chat_id"]) == str(chat_id)][0]
    assert call.params["parse_mode"] == "HTML"
    shown = html_text(sent[0])
    assert shown == "See the tracking page & now, Alice Smith helps <3 help@example.com"
    assert '<a href="https://example.com/track?a=1&amp;b=2">the tracking page</a>' in sent[0]
    assert "<b>now</b>" in sent[0]
    # The history keeps chatgate text (the core speaks no Slack markup).
    history = [json.loads(m) for m in team.redis.lrange(KEY("msgs", team.open_chat('telegram', str(chat_id))),
                                                         0, -1)]
    assert "&amp;" not in history[-1]["text"] and "<@" not in history[-1]["text"]
    assert team.slack.calls_to("users.info")


@pytest.mark.parametrize("channel", ["whatsapp", "sms"])
def test_agent_mrkdwn_reaches_twilio_readable(team, channel):
    team.slack.users["UALICE"] = "Alice Smith"
    number = "+4915123450001" if channel == "whatsapp" else "+442079460001"
    sender = ("whatsapp:" if channel == "whatsapp" else "") + number
    _, card_ts = team.start(channel, number, lambda: team.twilio_post(inbound(f"SMmk{channel}", sender, "hello")))
    assert team.gateway.say("UAGENT1", AGENT_MRKDWN, card_ts)[0] == 200
    body = eventually(lambda: team.twilio.bodies(sender), what="the reply")[0]
    if channel == "whatsapp":
        assert body == ("See the tracking page (https://example.com/track?a=1&b=2) & *now*, Alice Smith helps <3 "
                        "help@example.com")
    else:
        assert body == ("See the tracking page (https://example.com/track?a=1&b=2) & now, Alice Smith helps <3 "
                        "help@example.com")


def test_long_agent_reply_reaches_telegram_whole_in_order_and_a_retry_resends_no_part(team):
    chat_id = 555000103
    _, card_ts = team.telegram_chat(chat_id, "Tell me everything")
    paragraphs = [f"Paragraph {i}: " + " ".join(f"w{i}x{j}" for j in range(120)) for i in range(14)]
    text = "\n\n".join(paragraphs)
    assert len(text) > 2 * MAX_TEXT
    before = len(team.telegram.calls_to("sendMessage"))
    # Telegram fails the second part once (a 502): the retry sends the rest, not the first part again.
    team.telegram.fail_send[before + 2] = (502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}, {})
    assert team.gateway.say("UAGENT1", text, card_ts)[0] == 200
    eventually(lambda: len(team.sent_html(chat_id)) >= 3, timeout=30, what="every part")
    team.d.wait_idle()
    parts = [html_text(p) for p in team.sent_html(chat_id)]
    assert all(utf16_len(p) <= MAX_TEXT for p in parts)
    assert "\n\n".join(p.strip("\n") for p in parts).split() == text.split()
    assert len(parts) == len(set(parts))  # none twice
    assert team.telegram.calls_to("failure")


def test_reply_written_in_another_console_shows_in_the_thread_as_mrkdwn(team):
    from chatgate.compose import connect, load_config

    chat_id = 555000104
    conversation_id, card_ts = team.telegram_chat(chat_id, "hi")

    async def reply() -> None:
        services = connect(load_config(team.d.config), team.d.redis_url)
        try:
            await services.conversations.reply(conversation_id, "UAGENT1", "**Done** & see [the page](https://x.example/a)"
                                               " <!channel>", via="web")
        finally:
            await services.close()

    asyncio.run(reply())
    posted = eventually(lambda: [t for t in team.slack.thread_texts(card_ts) if "(to the customer)" in t],
                        what="the reply in the thread")[0]
    assert "*Done* &amp; see <https://x.example/a|the page> &lt;!channel&gt;" in posted
    eventually(lambda: any("Done" in x for x in team.sent_html(chat_id)), what="the reply")


# -- 3. length limits on the agent side ---------------------------------------------------------------


def test_long_customer_messages_reach_slack_whole_and_card_and_home_stay_within_limits(team):
    chat_id = 555000105
    first = " ".join(f"line{i} <b>&</b>" for i in range(900))  # ~12,000 characters, escaping grows it
    huge_name = "N" * 3000
    conversation_id, card_ts = team.telegram_chat(chat_id, first, accept=False, first_name=huge_name,
                                                  last_name="<!here>")
    card = team.slack.messages[card_ts]
    assert not block_errors(card["blocks"])
    assert "continued in the thread" in json.dumps(card["blocks"])
    posts = eventually(lambda: [t for t in team.slack.thread_texts(card_ts)
                                if t and html.unescape(t).count("line") > 0], what="the whole first message")
    team.d.wait_idle()
    posts = [t for t in team.slack.thread_texts(card_ts)]
    assert all(len(p) <= MAX_SECTION_TEXT for p in posts)
    joined = html.unescape(" ".join(posts))
    assert all(f"line{i} <b>&</b>" in joined for i in (0, 450, 899))
    # The Home lists the chat within Block Kit's limits.
    assert team.gateway.slack_event(home_opened("UAGENT7"))[0] == 200
    view = eventually(lambda: team.slack.home_views.get("UAGENT7"), what="the App Home")
    assert not block_errors(view["blocks"], max_blocks=100)
    # Accepted, a second long message arrives as ordered thread posts.
    assert team.gateway.click("accept", conversation_id, "UAGENT1", card_ts)[0] == 200
    second = "\n".join(f"second {i} " + "z" * 60 for i in range(120))
    team.gateway.telegram(text_update(7, chat_id, second, message_id=7))
    eventually(lambda: any("second 119" in t for t in team.slack.thread_texts(card_ts)), what="the end")
    team.d.wait_idle()
    mine = [t for t in team.slack.thread_texts(card_ts) if "second " in t]
    assert len(mine) >= 2 and all(len(p) <= MAX_SECTION_TEXT for p in mine)
    order = [int(n) for p in mine for n in re.findall(r"second (\d+)", p)]
    assert order == list(range(120))


# -- 6. smaller expectations ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [2 ** 70, 1.5, "abc"])
def test_impossible_telegram_chat_ids_are_refused_and_store_nothing(team, bad):
    before = set(team.redis.keys(KEY("open", "*")))
    status, body = team.gateway.telegram(text_update(9, bad, "hello"))
    assert status == 400 and "id" in body
    assert set(team.redis.keys(KEY("open", "*"))) == before


def test_emoji_rtl_and_markdown_names_survive_end_to_end(team):
    chat_id = 555000106
    name = ("**Zoë_🚀**", "مرحبا *שלום*")
    conversation_id, card_ts = team.telegram_chat(chat_id, "👋🏽 سلام، أين طلبي؟", first_name=name[0],
                                                  last_name=name[1])
    card = json.dumps(team.slack.messages[card_ts], ensure_ascii=False)
    assert "**Zoë_🚀** مرحبا *שלום*" in card and "👋🏽 سلام، أين طلبي؟" in card
    assert team.chat(conversation_id)["name"] == "**Zoë_🚀** مرحبا *שלום*"
    team.gateway.say("UAGENT1", "שלום 👨‍👩‍👧 *תודה*", card_ts)
    sent = eventually(lambda: team.sent_html(chat_id), what="the reply")
    assert html_text(sent[0]) == "שלום 👨‍👩‍👧 תודה"


def test_empty_agent_message_is_not_sent_and_the_agent_is_told(team):
    chat_id = 555000107
    _, card_ts = team.telegram_chat(chat_id, "hello?")
    before = len(team.slack.ephemerals())
    assert team.gateway.say("UAGENT1", " \n  ", card_ts)[0] == 200
    told = eventually(lambda: team.slack.ephemerals()[before:], what="the refusal")
    assert "Not sent to the customer" in told[0] and "empty" in told[0]
    team.d.wait_idle()
    assert team.sent_html(chat_id) == []


# -- 5. WhatsApp's 24-hour window (4 seconds here) -------------------------------------------------------

WINDOW = 4
TEMPLATE_SID = "HX" + "0123456789abcdef" * 2


def _whatsapp_window_chat(team: Chat, number: str) -> tuple[str, str, str, float]:
    sender = "whatsapp:" + number
    conversation_id, card_ts = team.start("whatsapp", number, lambda: team.twilio_post(
        inbound("SMw1", sender, "Is my order shipped?", ProfileName="Grace")))
    wrote_at = float(team.chat(conversation_id)["last_customer_at"])
    return sender, conversation_id, card_ts, wrote_at


def _wait_past(moment: float) -> None:
    """Let the wall clock pass ``moment``: the reply window's real length is what these tests are about
    (what happens after it is polled for)."""
    import time

    time.sleep(max(0.0, moment + 0.3 - time.time()))


def test_whatsapp_reply_outside_the_window_without_template_is_refused_at_once(deployment):
    team = Chat(deployment(server={"public_url": PUBLIC_URL}, twilio={**TWILIO, "whatsapp_window": WINDOW}))
    sender, conversation_id, card_ts, wrote_at = _whatsapp_window_chat(team, "+4915123450011")
    assert "reply window open until" in json.dumps(team.slack.messages[card_ts]["blocks"])
    _wait_past(wrote_at + WINDOW)
    before = len(team.slack.ephemerals())
    assert team.gateway.say("UAGENT1", "Yes, it shipped yesterday", card_ts)[0] == 200
    told = eventually(lambda: team.slack.ephemerals()[before:], what="the refusal")[0]
    assert "Not sent to the customer" in told and "24 hours" in told and "template" in told
    deployment_idle(team)
    assert team.twilio.bodies(sender) == []
    assert team.chat(conversation_id)["messages_out"] == "0"
    # The customer writes again: the window is open and the reply goes out.
    team.twilio_post(inbound("SMw2", sender, "hello?", ProfileName="Grace"))
    eventually(lambda: any("hello?" in t for t in team.slack.thread_texts(card_ts)), what="the message")
    assert team.gateway.say("UAGENT1", "Yes, it shipped yesterday", card_ts)[0] == 200
    eventually(lambda: team.twilio.bodies(sender) == ["Yes, it shipped yesterday"], what="the reply")


def test_whatsapp_reply_outside_the_window_goes_as_the_template_and_the_agent_is_told(deployment):
    team = Chat(deployment(server={"public_url": PUBLIC_URL}, twilio={
        **TWILIO, "whatsapp_window": WINDOW, "whatsapp_template_sid": TEMPLATE_SID},
        tail='[twilio.whatsapp_template_variables]\n"1" = "We have an answer to your question: reply to see it."\n'))
    sender, conversation_id, card_ts, wrote_at = _whatsapp_window_chat(team, "+4915123450012")
    _wait_past(wrote_at + WINDOW)
    assert team.gateway.say("UAGENT1", "Yes, it shipped yesterday", card_ts)[0] == 200
    sent = eventually(lambda: team.twilio.messages(sender), what="the template")[0]
    assert sent["ContentSid"] == TEMPLATE_SID and "Body" not in sent
    assert json.loads(sent["ContentVariables"]) == {"1": "We have an answer to your question: reply to see it."}
    eventually(lambda: any("approved WhatsApp template" in t for t in team.slack.thread_texts(card_ts)),
               what="the note to the agent")
    history = [json.loads(m) for m in team.redis.lrange(KEY("msgs", conversation_id), 0, -1)]
    assert history[-1]["template"] is True and history[-1]["text"] == "Yes, it shipped yesterday"
    # Back inside the window after the customer answers: free-form again.
    team.twilio_post(inbound("SMw3", sender, "ok, what is it?", ProfileName="Grace"))
    eventually(lambda: any("what is it?" in t for t in team.slack.thread_texts(card_ts)), what="the answer")
    team.gateway.say("UAGENT1", "It shipped yesterday", card_ts)
    eventually(lambda: "It shipped yesterday" in team.twilio.bodies(sender), what="the free-form reply")


def deployment_idle(team: Chat) -> None:
    team.d.wait_idle()


# -- 4. files, customer -> agent ----------------------------------------------------------------------------

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40
PDF = b"%PDF-1.4\n" + b"x" * 5000
OGG = b"OggS" + b"\x00" * 3000


def _file_message(chat_id: int, message_id: int, **content) -> dict:
    update = text_update(message_id, chat_id, None, message_id=message_id)
    update["message"].update(content)
    return update


def test_telegram_photo_document_and_voice_arrive_in_the_thread_in_order_and_a_huge_file_is_explained(team):
    chat_id = 555000108
    conversation_id, card_ts = team.telegram_chat(chat_id, "My parcel arrived broken")
    team.telegram.add_file("ph-big", JPEG, "photos/file_1.jpg")
    team.telegram.add_file("doc-1", PDF, "documents/file_2.pdf")
    team.telegram.add_file("voice-1", OGG, "voice/file_3.oga")
    photo = [{"file_id": "ph-small", "file_unique_id": "s", "width": 90, "height": 90, "file_size": 100},
             {"file_id": "ph-big", "file_unique_id": "b", "width": 800, "height": 600, "file_size": len(JPEG)}]
    team.gateway.telegram(_file_message(chat_id, 20, photo=photo, caption="look at <!channel> this"))
    team.gateway.telegram(_file_message(chat_id, 21, document={
        "file_id": "doc-1", "file_unique_id": "d", "file_name": "invoice.pdf", "mime_type": "application/pdf",
        "file_size": len(PDF)}))
    team.gateway.telegram(text_update(22, chat_id, "and a voice note:", message_id=22))
    team.gateway.telegram(_file_message(chat_id, 23, voice={
        "file_id": "voice-1", "file_unique_id": "v", "duration": 2, "mime_type": "audio/ogg", "file_size": len(OGG)}))
    team.gateway.telegram(_file_message(chat_id, 24, document={
        "file_id": "huge-1", "file_unique_id": "h", "file_name": "scan.tiff", "mime_type": "image/tiff",
        "file_size": 25 * 1024 * 1024}))
    eventually(lambda: any("scan.tiff" in t for t in team.slack.thread_texts(card_ts)), what="the huge-file note")
    team.d.wait_idle()
    files = [f for f in team.slack.files if f["thread_ts"] == card_ts]
    assert [(f["name"], f["data"]) for f in files] == [("photo.jpg", JPEG), ("invoice.pdf", PDF),
                                                       ("voice.oga", OGG)]
    note = next(t for t in team.slack.thread_texts(card_ts) if "scan.tiff" in t)
    assert "20 MB" in note and "25.0 MB" in note
    # In order with the text around them: caption, photo, document, text, voice, note.
    order = []
    for call in team.slack.calls:
        if call.method == "chat.postMessage" and call.params.get("thread_ts") == card_ts:
            order.append(call.params["text"])
        elif call.method == "files.completeUploadExternal" and call.params.get("thread_ts") == card_ts:
            order.append("FILE")
    tail = order[order.index(next(t for t in order if "look at" in t)):]
    kinds = ["FILE" if t == "FILE" else "note" if "scan.tiff" in t else "text" for t in tail]
    assert kinds == ["text", "FILE", "text", "FILE", "text", "text", "FILE", "text", "note"]


@pytest.mark.parametrize("channel", ["whatsapp", "sms"])
def test_twilio_media_is_fetched_with_the_account_credentials_and_uploaded(team, channel):
    number = "+4915123450021" if channel == "whatsapp" else "+442079460021"
    sender = ("whatsapp:" if channel == "whatsapp" else "") + number
    url = team.twilio.add_media(f"2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM{channel}/Media/ME1", JPEG,
                                "image/jpeg")
    conversation_id, card_ts = team.start(channel, number, lambda: team.twilio_post(inbound(
        f"SMmedia{channel}", sender, "The box was broken", NumMedia=1, MediaUrl0=url,
        MediaContentType0="image/jpeg")), accept=False)
    eventually(lambda: [f for f in team.slack.files if f["thread_ts"] == card_ts], what="the uploaded photo")
    uploaded = [f for f in team.slack.files if f["thread_ts"] == card_ts]
    assert uploaded[0]["data"] == JPEG and uploaded[0]["name"].startswith("image")
    assert team.twilio.calls_to("media")


def test_a_failed_upload_is_retried_alone_and_the_text_before_it_is_posted_once(team):
    number = "+442079460022"
    url = team.twilio.add_media(f"2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MMretry/Media/ME1", JPEG, "image/jpeg")
    # Slack fails the upload's last step twice: the job is retried, the thread's text must not come again.
    team.slack.method_failures["files.completeUploadExternal"] = [(500, {"ok": False, "error": "internal_error"}, {})] * 2
    conversation_id, card_ts = team.start("sms", number, lambda: team.twilio_post(inbound(
        "SMuploadretry", number, "Photo of the dent", NumMedia=1, MediaUrl0=url, MediaContentType0="image/jpeg")),
        accept=False)
    eventually(lambda: [f for f in team.slack.files if f["thread_ts"] == card_ts], timeout=30,
               what="the photo, uploaded on a retry")
    texts = [c.params.get("text", "") for c in team.slack.calls_to("chat.postMessage")
             if c.params.get("thread_ts") == card_ts]
    assert sum("Photo of the dent" in t for t in texts) == 1, texts
    assert len([f for f in team.slack.files if f["thread_ts"] == card_ts]) == 1
    assert not team.slack.method_failures["files.completeUploadExternal"], "both failures were met"


# -- 4. files, agent -> customer ------------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20


def share(team: Chat, card_ts: str, text: str, *files: dict) -> tuple[int, str]:
    import time

    from tests.fakes.slack import message_event

    return team.gateway.slack_event(message_event("UAGENT1", conftest.CHANNEL, text, f"{time.time():.6f}", card_ts,
                                                  files=list(files)))


def test_agent_files_reach_telegram_as_photo_and_document_after_the_text(team):
    chat_id = 555000109
    conversation_id, card_ts = team.telegram_chat(chat_id, "Can you send me the invoice?")
    photo = team.slack.add_private_file("label.png", PNG, "image/png")
    pdf = team.slack.add_private_file("invoice.pdf", PDF, "application/pdf")
    assert share(team, card_ts, "Here you go: *both* files", photo, pdf)[0] == 200
    eventually(lambda: team.telegram.calls_to("sendDocument"), what="the document")
    team.d.wait_idle()
    texts = team.sent_html(chat_id)
    assert texts == ["Here you go: <b>both</b> files"]
    sent_photo = team.telegram.calls_to("sendPhoto")[-1].params
    sent_doc = team.telegram.calls_to("sendDocument")[-1].params
    assert sent_photo["photo"] == {"filename": "label.png", "size": len(PNG)}
    assert sent_doc["document"] == {"filename": "invoice.pdf", "size": len(PDF)}
    order = [c.method for c in team.telegram.calls if c.method in ("sendMessage", "sendPhoto", "sendDocument")
             and str(c.params.get("chat_id")) == str(chat_id)]
    assert order == ["sendMessage", "sendPhoto", "sendDocument"]
    history = [json.loads(m) for m in team.redis.lrange(KEY("msgs", conversation_id), 0, -1)]
    assert [a["name"] for a in json.loads(history[-1]["attachments"])] == ["label.png", "invoice.pdf"]
    # A file alone (no text) is a reply too.
    assert share(team, card_ts, "", team.slack.add_private_file("map.jpg", JPEG, "image/jpeg"))[0] == 200
    eventually(lambda: len(team.telegram.calls_to("sendPhoto")) >= 2, what="the second photo")


def test_agent_file_too_big_for_the_platform_is_refused_at_once(team):
    chat_id = 555000110
    _, card_ts = team.telegram_chat(chat_id, "send the video")
    before = len(team.slack.ephemerals())
    big = team.slack.add_private_file("video.mp4", b"tiny", "video/mp4", size=60 * 1024 * 1024)
    assert share(team, card_ts, "the video", big)[0] == 200
    told = eventually(lambda: team.slack.ephemerals()[before:], what="the refusal")[0]
    assert "Not sent" in told and "video.mp4" in told and "50 MB" in told and "60.0 MB" in told
    team.d.wait_idle()
    assert team.sent_html(chat_id) == []
    # WhatsApp: 5 MB per file through Twilio.
    number = "+4915123450031"
    sender = "whatsapp:" + number
    _, wa_ts = team.start("whatsapp", number, lambda: team.twilio_post(inbound("SMbig1", sender, "hi")))
    before = len(team.slack.ephemerals())
    assert share(team, wa_ts, "", team.slack.add_private_file("scan.pdf", b"x", "application/pdf",
                                                                size=6 * 1024 * 1024))[0] == 200
    told = eventually(lambda: team.slack.ephemerals()[before:], what="the WhatsApp refusal")[0]
    assert "5 MB" in told and "6.0 MB" in told
    team.d.wait_idle()
    assert team.twilio.messages(sender) == []


@pytest.mark.parametrize("number", ["+4915123450041", "+14155550141", "+442079460041"])
def test_agent_file_reaches_twilio_by_signed_media_url_or_as_a_link(team, number):
    import urllib.error
    import urllib.request

    channel = "whatsapp" if number.startswith("+49") else "sms"
    sender = ("whatsapp:" if channel == "whatsapp" else "") + number
    _, card_ts = team.start(channel, number, lambda: team.twilio_post(inbound(f"SMf{number}", sender, "hi")))
    assert share(team, card_ts, "The label:", team.slack.add_private_file("label.png", PNG, "image/png"))[0] == 200
    sent = eventually(lambda: team.twilio.messages(sender), what="the message")
    team.d.wait_idle()
    sent = team.twilio.messages(sender)
    prefix = PUBLIC_URL + "/media/"
    if channel == "sms" and not number.startswith("+1"):
        # SMS without MMS: the link in the text.
        assert len(sent) == 1 and sent[0]["Body"].startswith("The label:\nlabel.png: " + prefix)
        url = sent[0]["Body"].split(": ")[-1]
    else:
        assert [m.get("Body") for m in sent] == ["The label:", None]
        url = sent[1]["MediaUrl"]
    assert url.startswith(prefix)
    token = url[len(prefix):]
    # What Twilio (or the customer) fetches: the file, streamed from Slack with the bot token.
    with urllib.request.urlopen(f"{team.gateway.base}/media/{token}", timeout=10) as response:
        assert response.read() == PNG and response.headers["Content-Type"] == "image/png"
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{team.gateway.base}/media/{forged}", timeout=10)
    assert refused.value.code == 403


def test_expired_media_link_is_refused(team):
    import urllib.error
    import urllib.request

    import redis.asyncio as aioredis

    from gateway.media import Media
    from gateway.store import Store

    async def expired() -> str:
        store = Store(aioredis.from_url(team.d.redis_url), "chatgate")
        try:
            return await Media(store).token({"source": "slack", "ref": "https://files.example/x", "name": "x"}, ttl=-1)
        finally:
            await store.redis.aclose()

    token = asyncio.run(expired())
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{team.gateway.base}/media/{token}", timeout=10)
    assert refused.value.code == 403 and b"expired" in refused.value.read()
