"""Customers on SMS and WhatsApp through Twilio, agents in Slack.

The parser and the splitting are tested directly; everything else runs through
the real ``chatgate web`` and ``chatgate worker`` processes on a real Redis,
with local fakes of Twilio's Messages API and of Slack. Webhooks are signed
with the twilio package's own ``RequestValidator``.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

import pytest
import requests
from twilio.base.exceptions import TwilioRestException

from channels import twilio
from chatgate import cli
from gateway import config as config_module
from gateway.events import AgentEvent
from gateway.message import InboundMessage, Refused
from tests import conftest
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, error, inbound, signed, status_callback
from tests.support import eventually, keys

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0SUPPORT"
PUBLIC_URL = "https://support.example.com"  # what Twilio calls; the proxy forwards to our port
SMS_FROM = "+15005550006"
WHATSAPP_FROM = "+14155238886"
SMS_CUSTOMER = "+442079460958"  # a London number
WA_CUSTOMER = "+4915123456789"
# The store's keys (``Store.key``) under the default prefix, for this module's plain Redis clients.
KEY = keys()


# -- the parser, without processes ------------------------------------------------


def test_sms_message_is_normalized_with_number_region_and_e164():
    parsed = twilio.parse(inbound("SM1", "+44 20 7946 0958", "Where is my parcel?"))
    message = parsed.message
    assert (message.channel, message.customer_id, message.platform_id) == ("sms", SMS_CUSTOMER, "SM1")
    assert message.text == "Where is my parcel?"
    assert message.name == SMS_CUSTOMER and message.phone == SMS_CUSTOMER
    assert message.location == "London, United Kingdom"
    assert parsed.opt == ""


def test_twilio_sender_location_wins_over_the_number_region_and_never_overwrites_a_known_one():
    form = inbound("SM2", "+14155550123", "hi", FromCity="OAKLAND", FromState="CA", FromCountry="US")
    assert twilio.parse(form).message.location == "OAKLAND, CA, US"
    assert twilio.parse(inbound("SM3", "+14155550123", "hi")).message.location == "San Francisco, CA, United States"
    # The profile already has a location (e.g. one the customer shared): the region must not replace it.
    assert twilio.parse(form, known_location="Pier 39 (37.80, -122.40)").message.location == ""


def test_whatsapp_message_media_and_shared_location():
    form = inbound("SM4", "whatsapp:" + WA_CUSTOMER, "", ProfileName="Grace Hopper", NumMedia=2,
                   MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
                   MediaContentType0="image/jpeg",
                   MediaUrl1="https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2",
                   MediaContentType1="application/pdf")
    message = twilio.parse(form).message
    assert (message.channel, message.customer_id, message.name) == ("whatsapp", WA_CUSTOMER, "Grace Hopper")
    assert [(a.kind, a.content_type) for a in message.attachments] == [("image", "image/jpeg"),
                                                                        ("file", "application/pdf")]
    assert message.attachments[0].ref.endswith("/ME1")
    # Twilio sends at most ten; a forged count cannot make chatgate store more.
    many = {f"MediaUrl{i}": f"https://example.test/{i}.jpg" for i in range(12)}
    assert len(twilio.parse(inbound("SM4b", SMS_CUSTOMER, "", NumMedia=999999, **many)).message.attachments) == 10

    shared = twilio.parse(inbound("SM5", "whatsapp:" + WA_CUSTOMER, "", Latitude="52.520008",
                                  Longitude="13.404954", Address="Pariser Platz", Label="Brandenburg Gate"),
                          known_location="Germany").message
    assert shared.location == "Brandenburg Gate, Pariser Platz (52.52001, 13.40495)"
    assert shared.text == "Shared location: Brandenburg Gate, Pariser Platz (52.52001, 13.40495)"


def test_opt_out_and_opt_in_keywords_only_on_sms():
    assert twilio.parse(inbound("SM6", SMS_CUSTOMER, " stop ")).opt == "out"
    assert twilio.parse(inbound("SM7", SMS_CUSTOMER, "Unsubscribe")).opt == "out"
    assert twilio.parse(inbound("SM8", SMS_CUSTOMER, "START")).opt == "in"
    assert twilio.parse(inbound("SM9", SMS_CUSTOMER, "please stop the delivery")).opt == ""
    assert twilio.parse(inbound("SM10", "whatsapp:" + WA_CUSTOMER, "STOP")).opt == ""


def test_malformed_and_empty_webhooks():
    with pytest.raises(ValueError):
        twilio.parse({"Body": "no sender"})
    with pytest.raises(ValueError):
        twilio.parse(inbound("SM11", SMS_CUSTOMER, "x", NumMedia="lots"))
    assert twilio.parse(inbound("SM12", SMS_CUSTOMER, "")) is None


def test_long_text_is_split_under_twilios_limit_and_keeps_every_word():
    from channels.render import sms_chunks

    words = [f"word{i}" for i in range(700)]
    text = " ".join(words)
    parts = sms_chunks(text)
    assert len(parts) == 4 and all(twilio.MAX_BODY - 10 < len(p) <= twilio.MAX_BODY for p in parts[:3])
    assert " ".join(parts).split() == words
    assert "".join(sms_chunks("x" * 3300)) == "x" * 3300 and all(len(p) <= 1600 for p in sms_chunks("x" * 3300))
    assert sms_chunks("short") == ["short"]


def test_error_codes_are_explained():
    assert "24-hour window" in twilio.explain(63016)
    assert twilio.explain("21211").startswith("Twilio error 21211: ") and "not a valid phone number" in twilio.explain(21211)
    assert "99999" in twilio.explain(99999)


def test_api_errors_4xx_are_permanent_429_and_5xx_are_retried():
    uri = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    refused = twilio.delivery_error(TwilioRestException(400, uri, "Unable to create record", 21211, "POST"))
    assert refused.permanent and "21211" in str(refused) and "not a valid phone number" in str(refused)
    limited = twilio.delivery_error(TwilioRestException(429, uri, "Too Many Requests", 20429, "POST"), 2.0)
    assert not limited.permanent and limited.retry_after == 2.0
    failing = twilio.delivery_error(TwilioRestException(503, uri, "Service Unavailable", 20503, "POST"))
    assert not failing.permanent
    assert not twilio.delivery_error(requests.ConnectionError("refused")).permanent


def test_twilio_config_problems_name_key_file_and_expectation(make_config):
    with pytest.raises(config_module.ConfigError) as raised:
        make_config('[twilio]\nenabled = true\naccount_sid = "SK123"\nsms_from = "0044 20"\n')
    problems = "\n".join(raised.value.problems)
    assert "config.toml: twilio.account_sid: expected the Account SID" in problems
    assert "twilio.auth_token: expected" in problems
    assert "twilio.sms_from: expected a phone number in E.164 form" in problems
    with pytest.raises(config_module.ConfigError) as raised:
        make_config(f'[twilio]\nenabled = true\naccount_sid = "{ACCOUNT_SID}"\nauth_token = "x"\n')
    assert "at least one sender" in raised.value.problems[0]
    config = make_config(f'[twilio]\nenabled = true\naccount_sid = "{ACCOUNT_SID}"\nauth_token = "x"\n'
                         f'whatsapp_from = "whatsapp:{WHATSAPP_FROM}"\n')
    assert config.section("twilio").whatsapp_from == WHATSAPP_FROM and config.section("twilio").validate_signatures


def test_check_config_lists_twilio_as_enabled(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TEST_TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    path = tmp_path / "config.toml"
    path.write_text(f'[twilio]\nenabled = true\naccount_sid = "{ACCOUNT_SID}"\n'
                    f'auth_token = "env:TEST_TWILIO_AUTH_TOKEN"\nsms_from = "{SMS_FROM}"\n')
    assert cli.main(["check-config", str(path)]) == 0
    assert "enabled: twilio" in capsys.readouterr().out
    monkeypatch.delenv("TEST_TWILIO_AUTH_TOKEN")
    assert cli.main(["check-config", str(path)]) == 1
    assert "twilio.auth_token: expected environment variable TEST_TWILIO_AUTH_TOKEN" in capsys.readouterr().err


# -- the state machine's part, on the real Redis (no processes) ------------------------


async def _active_chat(services, number: str = SMS_CUSTOMER) -> str:
    received = await services.conversations.receive(InboundMessage("sms", number, "SMq1", "hello", phone=number))
    await services.conversations.accept(received.conversation_id, "UAGENT1")
    return received.conversation_id


async def test_delivery_status_never_steps_back_and_a_failure_is_reported_once(services):
    conversations, store = services.conversations, services.store
    chat = await _active_chat(services)
    await conversations.reply(chat, "UAGENT1", "first")
    for status in ("sent", "delivered", "sent", "queued"):  # callbacks arriving late
        await conversations.record_delivery(chat, 2, status, "SM1" if status == "sent" else "")
    assert (await store.message(chat, 2)).status == "delivered"
    await conversations.record_delivery(chat, 2, "read")
    assert (await store.message(chat, 2)).status == "read"

    await conversations.reply(chat, "UAGENT1", "second")
    await conversations.record_delivery(chat, 3, "failed", "undelivered: Twilio error 30003: unreachable")
    await conversations.record_delivery(chat, 3, "failed", "failed: Twilio error 30003: unreachable")
    await conversations.record_delivery(chat, 3, "delivered")
    entry = await store.message(chat, 3)
    assert (entry.status, entry.detail) == ("failed", "undelivered: Twilio error 30003: unreachable")
    events = [AgentEvent.from_json(e).kind.value
              for e in await store.redis.lrange(store.console_outbox("fake", chat), 0, -1)]
    assert events.count("delivery_failed") == 1


async def test_replies_to_an_opted_out_customer_are_refused_until_they_opt_back_in(services):
    conversations, store = services.conversations, services.store
    chat = await _active_chat(services)
    assert await conversations.set_opt_out("sms", SMS_CUSTOMER, True) is False
    assert await store.opted_out("sms", SMS_CUSTOMER)
    with pytest.raises(Refused) as refused:
        await conversations.reply(chat, "UAGENT1", "are you still there?")
    assert refused.value.code == "opted_out" and "not sent" in refused.value.reason
    assert [e.text for e in await store.history(chat)] == ["hello"]
    assert len(await store.redis.lrange(store.customer_outbox("sms", SMS_CUSTOMER), 0, -1)) == 0
    # Another channel of the same number is not affected.
    assert not await store.opted_out("whatsapp", SMS_CUSTOMER)

    assert await conversations.set_opt_out("sms", SMS_CUSTOMER, False) is True
    await conversations.reply(chat, "UAGENT1", "welcome back")
    assert [e.text for e in await store.history(chat)] == ["hello", "welcome back"]


# -- through real processes -------------------------------------------------------


class Gateway(conftest.Gateway):
    """The running chatgate: post signed Twilio and Slack webhooks to it."""

    def __init__(self, port: int, slack: FakeSlack, redis_url: str):
        super().__init__(port, slack, redis_url=redis_url)
        self.redis = self.store()

    def twilio(self, params: dict, path: str = "/webhooks/twilio", token: str = AUTH_TOKEN) -> tuple[int, str]:
        body, headers = signed(token, PUBLIC_URL + path, params)
        return self.post(path, body, headers)

    # Reads of the stored state, by the documented key layout.

    def open_chat(self, channel: str, number: str) -> str | None:
        value = self.redis.get(KEY("open", channel, number))
        return value.decode() if value else None

    def chat(self, conversation_id: str) -> dict:
        return {k.decode(): v.decode() for k, v in self.redis.hgetall(KEY("conv", conversation_id)).items()}

    def history(self, conversation_id: str) -> list[dict]:
        return [json.loads(item) for item in self.redis.lrange(KEY("msgs", conversation_id), 0, -1)]

    def card_ts(self, conversation_id: str) -> str:
        return eventually(lambda: (self.redis.hget(KEY("ref", "slack-card"), conversation_id)
                                   or b"").decode(), what="the chat card")

    def wait_state(self, conversation_id: str, state: str, timeout: float = 15.0) -> None:
        eventually(lambda: self.chat(conversation_id).get("state") == state, timeout=timeout,
                   what=f"chat {conversation_id} to be {state}")

    def start_chat(self, params: dict, agent: str = "UAGENT1") -> tuple[str, str]:
        """The customer writes, the agent accepts: (conversation id, card ts)."""
        channel, number = twilio._address(params["From"])
        assert self.twilio(params)[0] == 200
        conversation_id = eventually(lambda: self.open_chat(channel, number), what="the chat")
        card_ts = self.card_ts(conversation_id)
        assert self.click("accept", conversation_id, agent, card_ts)[0] == 200
        self.wait_state(conversation_id, "active")
        return conversation_id, card_ts


TWILIO = {"enabled": True, "account_sid": ACCOUNT_SID, "auth_token": "env:TEST_TWILIO_AUTH_TOKEN",
          "sms_from": SMS_FROM, "whatsapp_from": "whatsapp:" + WHATSAPP_FROM}


@pytest.fixture
def running(deployment):
    started = deployment(env={"TEST_TWILIO_AUTH_TOKEN": AUTH_TOKEN}, server={"public_url": PUBLIC_URL},
                         telegram={"enabled": False}, twilio=TWILIO,
                         conversation={"auto_close": True, "auto_close_after": 1})
    gateway = Gateway(started.ports[0], started.slack, started.redis_url)
    gateway.deployment = started
    return gateway, started.slack, started.twilio


def thread_has(slack: FakeSlack, card_ts: str, *needles: str):
    """A check for ``eventually``: the thread's posts that hold every needle."""
    return lambda: [t for t in slack.thread_texts(card_ts) if all(n in t for n in needles)]


@pytest.mark.parametrize("channel", ["sms", "whatsapp"])
def test_full_flow_over_twilio(running, channel):
    gateway, slack, fake = running
    whatsapp = channel == "whatsapp"
    number = WA_CUSTOMER if whatsapp else SMS_CUSTOMER
    sender = ("whatsapp:" if whatsapp else "") + number
    extra = {"ProfileName": "Grace Hopper"} if whatsapp else {}

    status, body = gateway.twilio(inbound("SMa1", sender, "My parcel never arrived", **extra))
    assert status == 200 and body.strip().endswith("<Response />") and "<?xml" in body
    conversation_id = eventually(lambda: gateway.open_chat(channel, number), what="the chat")
    card_ts = gateway.card_ts(conversation_id)
    card = json.dumps(slack.messages[card_ts]["blocks"])
    assert "My parcel never arrived" in card and number in card
    assert ("WhatsApp" if whatsapp else "SMS") in card
    assert ("Grace Hopper" if whatsapp else "London, United Kingdom") in card
    assert ("Germany" if whatsapp else "London") in gateway.chat(conversation_id)["location"]

    assert gateway.click("accept", conversation_id, "UAGENT1", card_ts)[0] == 200
    gateway.wait_state(conversation_id, "active")
    assert gateway.say("UAGENT1", "Sorry about that, I'm on it.", card_ts)[0] == 200
    to = ("whatsapp:" if whatsapp else "") + number
    eventually(lambda: fake.bodies(to), what="the reply at Twilio")
    sent = fake.messages(to)[0]
    assert sent["Body"] == "Sorry about that, I'm on it."
    assert sent["From"] == ("whatsapp:" + WHATSAPP_FROM if whatsapp else SMS_FROM)
    assert sent["StatusCallback"] == PUBLIC_URL + "/webhooks/twilio/status"

    gateway.click("resolve", conversation_id, "UAGENT1", card_ts)
    eventually(lambda: any("rate" in b for b in fake.bodies(to)), what="the rating question")
    gateway.twilio(inbound("SMa2", sender, "5", **extra))
    eventually(lambda: "Thank you for your rating!" in fake.bodies(to), what="the thanks")
    assert gateway.chat(conversation_id)["rating"] == "5"
    gateway.wait_state(conversation_id, "closed", timeout=20)
    eventually(lambda: "Closed" in json.dumps(slack.messages[card_ts]["blocks"]), what="the closed card")
    assert fake.bodies(to) == [
        "Sorry about that, I'm on it.",
        "Your chat has been resolved. How would you rate our help from 1 (poor) to 5 (excellent)?",
        "Thank you for your rating!",
    ]


def test_forged_or_missing_signature_is_refused_and_stores_nothing(running):
    gateway, slack, fake = running
    params = inbound("SMf1", SMS_CUSTOMER, "hello")
    status, body = gateway.twilio(params, token="not-the-auth-token")
    assert status == 403 and "X-Twilio-Signature" in body
    form, headers = signed(AUTH_TOKEN, PUBLIC_URL + "/webhooks/twilio", params)
    del headers["X-Twilio-Signature"]
    assert gateway.post("/webhooks/twilio", form, headers)[0] == 403
    # Signed for the address the web server sees instead of the public one Twilio calls.
    form, headers = signed(AUTH_TOKEN, gateway.base + "/webhooks/twilio", params)
    assert gateway.post("/webhooks/twilio", form, headers)[0] == 403
    # A body changed after signing.
    form, headers = signed(AUTH_TOKEN, PUBLIC_URL + "/webhooks/twilio", params)
    assert gateway.post("/webhooks/twilio", form.replace(b"hello", b"hacked"), headers)[0] == 403
    assert gateway.twilio(status_callback("SMx", "failed", SMS_CUSTOMER, 30003), path="/webhooks/twilio/status",
                          token="forged")[0] == 403
    assert gateway.store().keys(KEY("*")) == []
    # A signed but malformed webhook is a clear 400, and stores nothing either.
    status, body = gateway.twilio({"Body": "no sender"})
    assert status == 400 and "From and MessageSid" in body
    assert gateway.store().keys(KEY("*")) == []


def test_duplicate_message_sid_is_stored_once(running):
    gateway, slack, fake = running
    params = inbound("SMdup", SMS_CUSTOMER, "Is anyone there?")
    assert gateway.twilio(params)[0] == 200
    assert gateway.twilio(params)[0] == 200  # Twilio's retry
    conversation_id = eventually(lambda: gateway.open_chat("sms", SMS_CUSTOMER), what="the chat")
    gateway.card_ts(conversation_id)
    gateway.twilio(inbound("SMdup2", SMS_CUSTOMER, "Hello?"))
    eventually(lambda: len(gateway.history(conversation_id)) == 2, what="the second message")
    assert [m["text"] for m in gateway.history(conversation_id)] == ["Is anyone there?", "Hello?"]
    assert gateway.chat(conversation_id)["messages_in"] == "2"


def test_media_and_shared_location_reach_profile_and_thread(running):
    gateway, slack, fake = running
    sender = "whatsapp:" + WA_CUSTOMER
    # Twilio's media URL (on api.twilio.com, which the config's api_url replaces), behind basic auth.
    path = f"2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM1/Media/ME1"
    fake.add_media(path, b"\xff\xd8jpeg-bytes", "image/jpeg")
    photo = f"https://api.twilio.com/{path}"
    conversation_id, card_ts = gateway.start_chat(inbound(
        "SMm1", sender, "The box was broken", ProfileName="Grace Hopper", NumMedia=1, MediaUrl0=photo,
        MediaContentType0="image/jpeg"))
    eventually(thread_has(slack, card_ts, "The box was broken"), what="the text in the thread")
    eventually(lambda: [f for f in slack.files if f["thread_ts"] == card_ts and f["data"] == b"\xff\xd8jpeg-bytes"],
               what="the photo uploaded into the thread")
    assert gateway.history(conversation_id)[0]["attachments"]

    gateway.twilio(inbound("SMm2", sender, "", ProfileName="Grace Hopper", Latitude="52.520008",
                           Longitude="13.404954", Address="Pariser Platz", Label="Brandenburg Gate"))
    eventually(thread_has(slack, card_ts, "Shared location: Brandenburg Gate"), what="the location")
    location = "Brandenburg Gate, Pariser Platz (52.52001, 13.40495)"
    assert gateway.chat(conversation_id)["location"] == location
    # The next plain message keeps the shared location (the number's region does not replace it).
    gateway.twilio(inbound("SMm3", sender, "Are you there?", ProfileName="Grace Hopper"))
    eventually(thread_has(slack, card_ts, "Are you there?"), what="the next message")
    assert gateway.chat(conversation_id)["location"] == location
    gateway.click("leave", conversation_id, "UAGENT1", card_ts)  # a card update shows the new profile
    eventually(lambda: "Brandenburg Gate" in json.dumps(slack.messages[card_ts]["blocks"]),
               what="the location on the card")


def test_stop_opts_out_refuses_replies_and_start_opts_back_in(running):
    gateway, slack, fake = running
    conversation_id, card_ts = gateway.start_chat(inbound("SMs1", SMS_CUSTOMER, "Question about my bill"))

    gateway.twilio(inbound("SMs2", SMS_CUSTOMER, "STOP"))
    eventually(thread_has(slack, card_ts, "STOP", "Opted out"), what="the opt-out in the thread")
    gateway.say("UAGENT1", "Please don't go!", card_ts)
    eventually(lambda: any("opted out" in t and "not sent" in t for t in slack.ephemerals()),
               what="the refusal to the agent")
    assert "Please don't go!" not in [m["text"] for m in gateway.history(conversation_id)]

    # Automatic messages are not sent either: the rating question fails and the agent sees why.
    gateway.click("resolve", conversation_id, "UAGENT1", card_ts)
    eventually(thread_has(slack, card_ts, "Not delivered", "rate our help", "opted out"),
               what="the unsent rating question in the thread")

    gateway.twilio(inbound("SMs3", SMS_CUSTOMER, "start"))
    eventually(thread_has(slack, card_ts, "start", "Opted back in"), what="the opt-in in the thread")
    gateway.wait_state(conversation_id, "active")  # START on a resolved chat reopens it
    gateway.say("UAGENT1", "Welcome back.", card_ts)
    eventually(lambda: fake.bodies(SMS_CUSTOMER), what="the reply after START")
    assert fake.bodies(SMS_CUSTOMER) == ["Welcome back."]


def test_malformed_form_body_is_refused_with_a_clear_error(running):
    gateway, slack, fake = running
    status, body = gateway.post("/webhooks/twilio", b"--x\r\nbroken", {
        "Content-Type": "multipart/form-data; boundary=zzz", "X-Twilio-Signature": "bm90"})
    assert 400 <= status < 500 and "error" in body
    status, body = gateway.post("/webhooks/twilio", b"From=%2B44207946&Body=\xff\xfe", {
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "bm90"})
    assert status == 400 and "malformed" in body
    assert gateway.store().keys(KEY("*")) == []


def test_signature_check_switched_off_says_so_loudly_and_accepts_unsigned_webhooks(deployment):
    started = deployment(telegram={"enabled": False}, slack={"enabled": False},
                         twilio={**TWILIO, "auth_token": AUTH_TOKEN, "validate_signatures": False})
    web = started.webs[0]
    assert "validate_signatures = false" in web.output() and "NOT authenticated" in web.output()
    request = urllib.request.Request(f"{started.gateway.base}/webhooks/twilio", method="POST",
                                     data=urllib.parse.urlencode(inbound("SMu1", SMS_CUSTOMER, "hi")).encode())
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    assert started.store().get(KEY("open", "sms", SMS_CUSTOMER)) is not None


def _sent_sid(gateway: Gateway, conversation_id: str, text: str) -> str:
    def sent():
        for entry in gateway.history(conversation_id):
            if entry["text"] == text and entry.get("status") == "sent":
                return entry["detail"]
        return None

    return eventually(sent, what=f"{text!r} recorded as sent")


def test_delivery_status_is_recorded_and_a_failure_reaches_the_agent(running):
    gateway, slack, fake = running
    sender = "whatsapp:" + WA_CUSTOMER
    conversation_id, card_ts = gateway.start_chat(inbound("SMd1", sender, "hello", ProfileName="Grace"))
    gateway.say("UAGENT1", "First answer", card_ts)
    first = _sent_sid(gateway, conversation_id, "First answer")
    status = "/webhooks/twilio/status"
    assert gateway.twilio(status_callback(first, "delivered", sender), path=status)[0] == 204
    assert gateway.twilio(status_callback(first, "sent", sender), path=status)[0] == 204  # late, out of order
    assert gateway.twilio(status_callback(first, "read", sender), path=status)[0] == 204
    assert gateway.history(conversation_id)[1]["status"] == "read"

    gateway.say("UAGENT1", "Second answer", card_ts)
    second = _sent_sid(gateway, conversation_id, "Second answer")
    gateway.twilio(status_callback(second, "undelivered", sender, error_code=63016), path=status)
    found = eventually(thread_has(slack, card_ts, "Not delivered", "Second answer", "63016", "24-hour window"),
                       what="the failure in the thread")
    assert len(found) == 1
    gateway.twilio(status_callback(second, "failed", sender, error_code=63016), path=status)  # reported once
    assert gateway.history(conversation_id)[2]["status"] == "failed"
    # An unknown SID is acknowledged and changes nothing.
    assert gateway.twilio(status_callback("SMunknown", "failed", sender, 30003), path=status)[0] == 204
    gateway.deployment.wait_idle()  # a wrongly queued second notice would have shown up by now
    assert len(thread_has(slack, card_ts, "Not delivered")()) == 1


def test_a_500_is_retried_and_the_message_arrives_once(running):
    gateway, slack, fake = running
    conversation_id, card_ts = gateway.start_chat(inbound("SMr1", SMS_CUSTOMER, "hello"))
    fake.failures.append((500, {"code": 20500, "message": "Internal Server Error", "status": 500}, {}))
    fake.failures.append((429, {"code": 20429, "message": "Too Many Requests", "status": 429}, {"Retry-After": "1"}))
    gateway.say("UAGENT1", "Here is your answer", card_ts)
    eventually(lambda: fake.bodies(SMS_CUSTOMER), what="the retried reply")
    _sent_sid(gateway, conversation_id, "Here is your answer")
    assert [c.params["status"] for c in fake.calls_to("failure")] == [500, 429]
    assert fake.bodies(SMS_CUSTOMER) == ["Here is your answer"]


def test_a_400_is_not_retried_and_the_agent_is_told(running):
    gateway, slack, fake = running
    conversation_id, card_ts = gateway.start_chat(inbound("SMe1", SMS_CUSTOMER, "hello"))
    fake.failures.append(error(21211, "The 'To' number +44... is not a valid phone number."))
    gateway.say("UAGENT1", "Can you hear me?", card_ts)
    eventually(thread_has(slack, card_ts, "Not delivered", "Can you hear me?", "21211", "not a valid phone number"),
               what="the failure in the thread")
    assert len(fake.calls_to("failure")) == 1 and fake.messages() == []
    assert gateway.history(conversation_id)[1]["status"] == "failed"
    # The next reply goes through: the failed one does not block the customer's outbox.
    gateway.say("UAGENT1", "Trying again", card_ts)
    eventually(lambda: fake.bodies(SMS_CUSTOMER), what="the next reply")
    gateway.deployment.wait_idle(scheduled=True)  # a wrong retry of the refused message would have been sent
    assert fake.bodies(SMS_CUSTOMER) == ["Trying again"] and len(fake.calls_to("failure")) == 1


def test_unsubscribed_error_marks_the_customer_opted_out(running):
    gateway, slack, fake = running
    conversation_id, card_ts = gateway.start_chat(inbound("SMu1", SMS_CUSTOMER, "hello"))
    fake.failures.append(error(21610, "Attempt to send to unsubscribed recipient"))
    gateway.say("UAGENT1", "First answer", card_ts)
    eventually(thread_has(slack, card_ts, "Not delivered", "First answer", "21610"), what="the failure")
    # Twilio knew they had opted out: chatgate now refuses the next reply at once.
    gateway.say("UAGENT1", "Second answer", card_ts)
    eventually(lambda: any("opted out" in t and "not sent" in t for t in slack.ephemerals()),
               what="the refusal to the agent")
    assert "Second answer" not in [m["text"] for m in gateway.history(conversation_id)]
    assert fake.messages() == []


def test_long_sms_reply_is_split_and_sent_in_order(running):
    gateway, slack, fake = running
    conversation_id, card_ts = gateway.start_chat(inbound("SMl1", SMS_CUSTOMER, "Tell me everything"))
    words = [f"step{i}" for i in range(500)]  # about 3,400 characters
    # The second part fails once: the retry must not send the first part again.
    fake.fail_request[2] = (503, {"code": 20503, "message": "Service Unavailable", "status": 503}, {})
    gateway.say("UAGENT1", " ".join(words), card_ts)
    eventually(lambda: len(fake.bodies(SMS_CUSTOMER)) >= 3, what="three parts")
    parts = fake.bodies(SMS_CUSTOMER)
    assert len(parts) == 3 and all(len(p) <= 1600 for p in parts)
    assert [c.params["status"] for c in fake.calls_to("failure")] == [503]
    assert " ".join(parts).split() == words
    sids = _sent_sid(gateway, conversation_id, " ".join(words)).split(",")
    assert len(sids) == 3
    # A failure callback for any part reaches the agent.
    gateway.twilio(status_callback(sids[2], "failed", SMS_CUSTOMER, 30007), path="/webhooks/twilio/status")
    eventually(thread_has(slack, card_ts, "Not delivered", "30007", "spam"), what="the failed part")
