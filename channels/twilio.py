"""Twilio: SMS and WhatsApp webhooks in, the Messages API out, delivery status back.

Twilio posts form-encoded webhooks signed with ``X-Twilio-Signature``; the
signature covers the URL Twilio called, which behind proxies is the configured
``server.public_url`` plus the path and query, never the URL the web server sees.
Twilio's client is synchronous, so it runs in a thread.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import mimetypes
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import phonenumbers
import requests
from aiohttp import web
from aiohttp.typedefs import Handler
from phonenumbers import geocoder
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import SIGNATURE_HEADER, SIGNATURE_SETTINGS_HEADER, RequestValidator, \
    get_signature_algorithm
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse

from channels import render
from gateway.config import ConfigReader, url_setting
from gateway.hosts import check_host, hosts_setting
from gateway.http import accepting
from gateway.message import Attachment, File, InboundMessage, OutboundMessage, ReplyWindow
from gateway.media import LINK_TTL
from gateway.pacing import Pacer, rate_setting
from gateway.ports import Channel, DeliveryError, Runtime
from gateway.refs import CONVERSATION, SEQ, Forget, Refs, by_message, ref

if TYPE_CHECKING:
    from gateway.services import Services

__all__ = [
    "Twilio", "TwilioConfig", "CHANNELS", "SMS", "WHATSAPP", "MAX_BODY", "Parsed", "parse", "explain",
    "webhook_handlers", "delivery_error", "check_attachment", "RewritingHttpClient",
]

log = logging.getLogger(__name__)

SMS, WHATSAPP = "sms", "whatsapp"
CHANNELS = (SMS, WHATSAPP)
TWILIO_API = "https://api.twilio.com"
# Where Twilio serves a message's media (MediaUrl): api.twilio.com, which redirects to its media CDN
# (fetched without credentials). Only these hosts, and api_url's, get the account's credentials.
MEDIA_HOSTS = ("api.twilio.com", "*.twilio.com", "*.twiliocdn.com")
# Twilio refuses a Body longer than this; longer replies go out as several messages.
MAX_BODY = 1600
# Twilio sends at most 10 media items per message.
MAX_MEDIA = 10

# Twilio's default opt-out and opt-in keywords (the whole message, any case).
OPT_OUT_WORDS = {"STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
OPT_IN_WORDS = {"START", "YES", "UNSTOP"}

OPTED_OUT_NOTE = ("[Opted out: the customer texted {word}. chatgate will not send them any message "
                  "on this channel until they text START.]")
OPTED_IN_NOTE = "[Opted back in: the customer texted {word}. Replies are sent again.]"

# Twilio's error codes an agent is most likely to meet, in plain words.
ERRORS = {
    20003: "Twilio refused chatgate's credentials (check twilio.account_sid and twilio.auth_token)",
    21211: "the number is not a valid phone number",
    21408: "sending to this country or region is not enabled on the Twilio account",
    21606: "the sender is not a Twilio number that can send messages (check twilio.sms_from)",
    21610: "the customer has unsubscribed (texted STOP); they must text START before they can be messaged",
    21612: "Twilio cannot send from this sender to this number",
    21614: "the number is not a mobile number that can receive SMS",
    30003: "the customer's phone is unreachable (switched off or out of coverage)",
    30004: "the message was blocked (the customer may have blocked this sender)",
    30005: "unknown number: it does not exist or is no longer in service",
    30006: "landline or unreachable carrier: the number cannot receive SMS",
    30007: "the carrier filtered the message as spam",
    30008: "the carrier reported an unknown error",
    63003: "this number cannot be reached on WhatsApp",
    63016: "outside WhatsApp's 24-hour window: the customer has not written in the last 24 hours, so only "
           "an approved template can reach them; ask them to write again",
}

_EMPTY_TWIML = str(MessagingResponse())


@dataclass(frozen=True)
class TwilioConfig:
    enabled: bool = False
    account_sid: str = ""
    auth_token: str = ""
    api_url: str = "https://api.twilio.com"
    # Hosts a MediaUrl may be on to be fetched with the account's credentials (see gateway/hosts.py).
    media_hosts: tuple[str, ...] = MEDIA_HOSTS
    # Senders: an SMS number, a WhatsApp sender (E.164) and/or a Messaging Service.
    sms_from: str = ""
    whatsapp_from: str = ""
    messaging_service_sid: str = ""
    # Off only for local development: then anyone can post as Twilio.
    validate_signatures: bool = True
    # WhatsApp's customer-service window: free-form replies only this long after the customer's last
    # message. Outside it, the approved template (Content API SID "HX…") with its variables goes instead;
    # without one, replies are refused at once.
    whatsapp_window: float = 24 * 3600
    whatsapp_template_sid: str = ""
    whatsapp_template_variables: tuple[tuple[str, str], ...] = ()
    # Sends paced per sender in Redis, shared by every worker (0: no pacing). Twilio queues what a sender
    # cannot send yet rather than refusing it, but a message queued for hours fails (21611, 30001), so
    # chatgate keeps to the sender's documented throughput: a US long code sends
    # 1 segment a second (also Twilio's per-number MMS cap), the safe default for SMS senders and
    # Messaging Services; a WhatsApp sender 10 text messages a second by default (up to 50 on request).
    rate_per_sender: float = 1.0
    burst_per_sender: int = 3
    whatsapp_rate_per_sender: float = 10.0
    whatsapp_burst_per_sender: int = 10


_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def load_config(tw: ConfigReader) -> TwilioConfig:
    """The ``[twilio]`` table."""
    tw.env_required = tw.boolean("enabled", TwilioConfig.enabled)
    whatsapp_from = tw.string("whatsapp_from", "")
    twilio = TwilioConfig(
        enabled=tw.env_required,
        account_sid=tw.string("account_sid", ""),
        auth_token=tw.string("auth_token", ""),
        api_url=url_setting(tw, "api_url", TwilioConfig.api_url).rstrip("/"),
        media_hosts=hosts_setting(tw, "media_hosts", MEDIA_HOSTS),
        sms_from=tw.string("sms_from", ""),
        # Written with or without Twilio's "whatsapp:" prefix; kept without it.
        whatsapp_from=whatsapp_from.removeprefix("whatsapp:"),
        messaging_service_sid=tw.string("messaging_service_sid", ""),
        validate_signatures=tw.boolean("validate_signatures", TwilioConfig.validate_signatures),
        whatsapp_window=tw.duration("whatsapp_window", TwilioConfig.whatsapp_window),
        whatsapp_template_sid=tw.string("whatsapp_template_sid", ""),
        whatsapp_template_variables=_variables(tw),
        rate_per_sender=rate_setting(tw, "rate_per_sender", TwilioConfig.rate_per_sender),
        burst_per_sender=tw.integer("burst_per_sender", TwilioConfig.burst_per_sender, minimum=1),
        whatsapp_rate_per_sender=rate_setting(tw, "whatsapp_rate_per_sender", TwilioConfig.whatsapp_rate_per_sender),
        whatsapp_burst_per_sender=tw.integer("whatsapp_burst_per_sender", TwilioConfig.whatsapp_burst_per_sender,
                                             minimum=1),
    )
    if twilio.whatsapp_template_sid and not re.match(r"^HX[0-9a-fA-F]{32}$", twilio.whatsapp_template_sid):
        tw.problem("whatsapp_template_sid", "a Content template SID: HX followed by 32 hex digits",
                   twilio.whatsapp_template_sid)
    if twilio.whatsapp_window <= 0:
        tw.problem("whatsapp_window", "a duration over zero (WhatsApp's is 24 hours)")
    for name in ("sms_from", "whatsapp_from"):
        value = getattr(twilio, name)
        if value and not _E164.match(value):
            tw.problem(name, "a phone number in E.164 form like \"+14155550123\"", value)
    if twilio.messaging_service_sid and not re.match(r"^MG[0-9a-fA-F]{32}$", twilio.messaging_service_sid):
        tw.problem("messaging_service_sid", "a Messaging Service SID: MG followed by 32 hex digits",
                   twilio.messaging_service_sid)
    if twilio.enabled:
        if not re.match(r"^AC[0-9a-fA-F]{32}$", twilio.account_sid):
            tw.problem("account_sid", "the Account SID from the Twilio console: AC followed by 32 hex digits")
        if not twilio.auth_token:
            tw.problem("auth_token", "the account's Auth Token (or \"env:TWILIO_AUTH_TOKEN\")")
        if not (twilio.sms_from or twilio.whatsapp_from or twilio.messaging_service_sid):
            tw.problem("sms_from", "at least one sender: sms_from, whatsapp_from or messaging_service_sid")
    tw.unknown_keys({"enabled", "account_sid", "auth_token", "api_url", "media_hosts", "sms_from", "whatsapp_from",
                     "messaging_service_sid", "validate_signatures", "whatsapp_window", "whatsapp_template_sid",
                     "whatsapp_template_variables", "rate_per_sender", "burst_per_sender", "whatsapp_rate_per_sender",
                     "whatsapp_burst_per_sender"})
    return twilio


def _variables(tw: ConfigReader) -> tuple[tuple[str, str], ...]:
    """``whatsapp_template_variables = { "1" = "…" }``: the template's placeholders and their text."""
    table = tw.table("whatsapp_template_variables")
    found = []
    for name in table.data:
        value = table.string(name, "")
        if not isinstance(table.data[name], str):
            continue
        found.append((str(name), value))
    return tuple(found)


def explain(code: int | str | None) -> str:
    """``"Twilio error 63016: <plain explanation>"`` (or just the code when unknown)."""
    try:
        number = int(code)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "Twilio gave no error code"
    reason = ERRORS.get(number)
    return f"Twilio error {number}: {reason}" if reason else f"Twilio error {number} (see twilio.com/docs/errors/{number})"


@dataclass(frozen=True)
class Parsed:
    """A normalized inbound webhook; ``opt`` is "out" or "in" for an SMS opt-out/opt-in keyword."""

    message: InboundMessage
    opt: str = ""
    opt_word: str = ""


@functools.lru_cache(maxsize=8192)  # pure, and the phonenumbers parser is slow: customers write again
def _address(value: str) -> tuple[str, str]:
    """(channel, E.164 number) of a Twilio ``From``/``To`` like ``whatsapp:+447…`` or ``+1415…``."""
    channel = SMS
    if value.startswith("whatsapp:"):
        channel, value = WHATSAPP, value[len("whatsapp:"):]
    try:
        number = phonenumbers.parse(value, None)
        return channel, phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        return channel, value.strip()  # short codes and the like stay as Twilio wrote them


@functools.lru_cache(maxsize=8192)
def _region(number: str) -> str:
    """Where a number is from, by the phonenumbers geocoder: "London, United Kingdom" or ""."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return ""
    place = geocoder.description_for_number(parsed, "en")
    country = geocoder.country_name_for_number(parsed, "en")
    if place and country and place != country:
        return f"{place}, {country}"
    return place or country or (phonenumbers.region_code_for_number(parsed) or "")


def _shared_location(form) -> str:
    latitude, longitude = form.get("Latitude", ""), form.get("Longitude", "")
    try:
        point = f"{float(latitude):.5f}, {float(longitude):.5f}"
    except ValueError:
        return ""
    label = ", ".join(part for part in (form.get("Label", ""), form.get("Address", "")) if part)
    return f"{label} ({point})" if label else point


def _sender_location(form, number: str) -> str:
    parts = [form.get(name, "") for name in ("FromCity", "FromState", "FromCountry")]
    return ", ".join(part for part in parts if part) or _region(number)


def _kind(content_type: str) -> str:
    major = content_type.split("/", 1)[0]
    return major if major in ("image", "audio", "video") else "file"


def _opt_keyword(text: str) -> str:
    return " ".join(text.strip().strip(".!").upper().split())


def parse(form, known_location: str = "") -> Parsed | None:
    """Normalize Twilio's messaging webhook (a mapping of its form fields).

    ``known_location`` is what the customer's profile holds: a number's region
    never overwrites it, a location the customer shares does. None for a
    message with nothing to relay. ValueError when required fields are missing.
    """
    sender, sid = form.get("From", ""), form.get("MessageSid", "") or form.get("SmsSid", "")
    if not sender or not sid:
        raise ValueError("a Twilio message webhook needs From and MessageSid")
    channel, number = _address(sender)
    text = form.get("Body", "")

    attachments = []
    try:
        count = int(form.get("NumMedia", "0") or 0)
    except ValueError:
        raise ValueError("NumMedia is not a number") from None
    for index in range(min(count, MAX_MEDIA)):
        url = form.get(f"MediaUrl{index}", "")
        if url:
            content_type = form.get(f"MediaContentType{index}", "")
            attachments.append(Attachment(_kind(content_type), url, content_type))

    location = _shared_location(form)
    if location:
        text = text or f"Shared location: {location}"
    elif not known_location:
        location = _sender_location(form, number)
    if not text and not attachments:
        return None

    opt = word = ""
    if channel == SMS:
        word = _opt_keyword(text)
        opt = "out" if word in OPT_OUT_WORDS else "in" if word in OPT_IN_WORDS else ""
    message = InboundMessage(
        channel=channel,
        customer_id=number,
        platform_id=sid,
        text=text,
        name=form.get("ProfileName", "") or number,
        phone=number,
        location=location,
        attachments=tuple(attachments),
    )
    return Parsed(message, opt, word if opt else "")


def _signed(config: TwilioConfig, public_url: str, request: web.Request, form) -> bool:
    if not config.validate_signatures:
        return True
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not signature:
        return False
    algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER, ""))
    # The URL Twilio called: our public address, whatever proxies rewrote on the way.
    url = public_url + request.path_qs
    return RequestValidator(config.auth_token).validate(url, form, signature, algorithm)


async def _form(request: web.Request):
    """The posted form; HTTP 400 when the body cannot be read as one."""
    try:
        return await request.post()
    except web.HTTPException:
        raise  # 413 for bodies over server.max_body_bytes
    except Exception as exc:  # noqa: BLE001 - aiohttp raises many kinds for a broken body
        raise web.HTTPBadRequest(text=f'{{"error": "malformed form body ({exc.__class__.__name__})"}}',
                                 content_type="application/json") from None


def _twiml() -> web.Response:
    return web.Response(text=_EMPTY_TWIML, content_type="text/xml")


def webhook_handlers(config: TwilioConfig, public_url: str, conversations) -> tuple[Handler, Handler]:
    """The aiohttp handlers for ``POST /webhooks/twilio`` and ``POST /webhooks/twilio/status``."""
    if not config.validate_signatures:
        log.warning("!!! twilio.validate_signatures = false: Twilio webhooks are NOT authenticated, anyone "
                    "can post messages as any customer. Use this for local development only !!!")
    if urlsplit(public_url).hostname in ("127.0.0.1", "localhost", "::1"):
        log.warning("server.public_url is %s: Twilio cannot reach that, and its signatures are computed for "
                    "the public address it calls; set server.public_url to that address", public_url)
    store = conversations.store

    async def message(request: web.Request) -> web.Response:
        form = await _form(request)
        if not _signed(config, public_url, request, form):
            return web.json_response({"error": "missing or wrong X-Twilio-Signature"}, status=403)
        sender = form.get("From", "")
        channel, number = _address(sender) if sender else ("", "")
        try:
            known = await store.customer_location(channel, number) if number else ""
            parsed = parse(form, known)
        except ValueError as exc:
            return web.json_response({"error": f"malformed Twilio webhook: {exc}"}, status=400)
        if parsed is None:
            return _twiml()
        inbound = parsed.message
        if parsed.opt:
            was_out = await conversations.set_opt_out(inbound.channel, inbound.customer_id, parsed.opt == "out")
            note = ""
            if parsed.opt == "out":
                note = OPTED_OUT_NOTE.format(word=parsed.opt_word)
            elif was_out:
                note = OPTED_IN_NOTE.format(word=parsed.opt_word)
            if note:
                inbound = replace(inbound, text=f"{inbound.text}\n{note}")
        await conversations.receive(inbound)
        return _twiml()

    async def status(request: web.Request) -> web.Response:
        form = await _form(request)
        if not _signed(config, public_url, request, form):
            return web.json_response({"error": "missing or wrong X-Twilio-Signature"}, status=403)
        sid, state = form.get("MessageSid", "") or form.get("SmsSid", ""), form.get("MessageStatus", "")
        if not sid or not state:
            return web.json_response({"error": "malformed status callback: MessageSid and MessageStatus "
                                      "are required"}, status=400)
        where = await store.get_ref("twilio-sid", sid)
        if where is None:
            log.info("status %s for a Twilio message chatgate does not know (%s)", state, sid)
            return web.Response(status=204)
        conversation_id, seq = where.rsplit(":", 1)
        if state in ("failed", "undelivered"):
            detail = f"{state}: {explain(form.get('ErrorCode'))}"
            await conversations.record_delivery(conversation_id, int(seq), "failed", detail)
        elif state in ("queued", "sent", "delivered", "read"):
            await conversations.record_delivery(conversation_id, int(seq), state)
        return web.Response(status=204)

    return message, status


# -- sending ----------------------------------------------------------------------


class RewritingHttpClient(TwilioHttpClient):
    """Twilio's HTTP client, sending what it addresses to api.twilio.com to ``api_url`` instead.

    Twilio's ``Client`` has no base-URL setting; this is how tests and staging
    point it at a local fake.
    """

    def __init__(self, api_url: str, timeout: float | None = None):
        super().__init__(timeout=timeout)
        self.api_url = api_url.rstrip("/")
        # The last answer's Retry-After, in seconds (twilio's exceptions do not carry headers).
        self.retry_after: float | None = None

    def request(self, method, url, *args, **kwargs):
        if url.startswith(TWILIO_API):
            url = self.api_url + url[len(TWILIO_API):]
        response = super().request(method, url, *args, **kwargs)
        try:
            self.retry_after = float(response.headers.get("Retry-After", ""))
        except (TypeError, ValueError):
            self.retry_after = None
        return response


def client(config: TwilioConfig, timeout: float | None = None) -> Client:
    """A Twilio REST client for the configured account and API base URL."""
    return Client(config.account_sid, config.auth_token,
                  http_client=RewritingHttpClient(config.api_url, timeout=timeout))


def _sender(config: TwilioConfig, channel: str) -> dict:
    if channel == WHATSAPP and config.whatsapp_from:
        return {"from_": f"whatsapp:{config.whatsapp_from}"}
    if channel == SMS and config.sms_from:
        return {"from_": config.sms_from}
    if config.messaging_service_sid:
        return {"messaging_service_sid": config.messaging_service_sid}
    raise DeliveryError(f"no Twilio sender for {channel}: set twilio.{channel}_from or "
                        "twilio.messaging_service_sid", permanent=True)


async def _pace(config: TwilioConfig, pacer: Pacer | None, sender: dict) -> None:
    """Wait for a token of the sender (its number, WhatsApp address or Messaging Service)."""
    if pacer is None:
        return
    name = sender.get("from_") or sender.get("messaging_service_sid") or ""
    whatsapp = name.startswith("whatsapp:")
    await pacer.wait(f"twilio-sender:{name}",
                     config.whatsapp_rate_per_sender if whatsapp else config.rate_per_sender,
                     config.whatsapp_burst_per_sender if whatsapp else config.burst_per_sender)


def delivery_error(exc: Exception, retry_after: float | None = None) -> DeliveryError:
    """What a failed Messages API call means for delivery: 4xx permanent; 429, 5xx and network retried."""
    status = getattr(exc, "status", 0) or 0
    if isinstance(exc, TwilioException) and status and status != 429 and 400 <= status < 500:
        code = getattr(exc, "code", None)
        # 21610: the number texted STOP to this sender before chatgate saw it (or elsewhere).
        return DeliveryError(f"Twilio refused the message: {explain(code)}", permanent=True,
                             opted_out=str(code) == "21610")
    if status == 429:
        return DeliveryError("Twilio rate limit (429); retrying", retry_after=retry_after)
    return DeliveryError(f"Twilio is unreachable or failing ({status or exc.__class__.__name__}); retrying")


async def _send(config: TwilioConfig, public_url: str, message: OutboundMessage, store,
                timeout: float | None = None, media=None, pacer: Pacer | None = None) -> str:
    """Send a text to the customer by SMS or WhatsApp; the Twilio message SIDs, comma-separated.

    A text over 1,600 characters goes out as several messages, in order. The
    parts already sent are remembered, so a retry after a failure in the
    middle does not send them twice. Every SID is mapped to the history entry
    so ``/webhooks/twilio/status`` can record its delivery. Each part waits for the sender's ``pacer``.
    """
    if await store.opted_out(message.channel, message.customer_id):
        raise DeliveryError("customer opted out by texting STOP; not sent (they can text START to opt back in)",
                            permanent=True)
    prefix = "whatsapp:" if message.channel == WHATSAPP else ""
    sender = _sender(config, message.channel)
    if message.template and message.channel == WHATSAPP and config.whatsapp_template_sid:
        # Outside WhatsApp's 24-hour window: the approved template (Content API) instead of the text.
        return await _send_template(config, public_url, message, store, sender, timeout, pacer)
    entry = f"{message.conversation_id}:{message.seq}" if message.conversation_id and message.seq else ""
    # chatgate text as the platform shows it: WhatsApp's own *bold*/_italic_, plain text for SMS;
    # split at natural breaks within Twilio's 1,600 characters.
    chunks = render.whatsapp_chunks if message.channel == WHATSAPP else render.sms_chunks
    text, files = message.text, []
    for attachment in message.attachments:
        if media is None:
            raise DeliveryError("chatgate cannot serve files here (no media service)", permanent=True)
        if _takes_media(message.channel, message.customer_id):
            # Twilio fetches MediaUrl itself: a short-lived signed link under server.public_url.
            files.append(await media.url(public_url, attachment))
        else:
            # SMS without MMS: the customer gets a link to open.
            link = await media.url(public_url, attachment, ttl=LINK_TTL)
            text = f"{text}\n{attachment.get('name') or 'File'}: {link}".strip()
    parts: list[tuple[str, str]] = [(part, "") for part in (chunks(text) if text.strip() else [])]
    parts += [("", url) for url in files]
    parts = parts or [(message.text, "")]
    done = (await store.get_ref("twilio-sent", entry) or "") if entry else ""
    sids = [sid for sid in done.split(",") if sid]
    twilio = client(config, timeout)
    # Looked up before pacing: the first lookup in a process imports Twilio's API modules, a delay that must
    # not sit between taking a token and the request.
    create = twilio.messages.create
    for part, media_url in parts[len(sids):]:
        content: dict[str, str | list[str]] = {"body": part} if part else {}
        if media_url:
            content["media_url"] = [media_url]
        await _pace(config, pacer, sender)
        try:
            created = await asyncio.to_thread(
                create, to=prefix + message.customer_id,
                status_callback=f"{public_url}/webhooks/twilio/status", **content, **sender,
            )
        except (TwilioException, requests.RequestException) as exc:
            raise delivery_error(exc, twilio.http_client.retry_after) from None
        sids.append(created.sid)
        if entry:
            # Twilio has this part: remember it even through a Redis outage, or a retry resends it.
            await store.through_outage(lambda: store.set_ref("twilio-sid", created.sid, entry))
            await store.through_outage(lambda: store.set_ref("twilio-sent", entry, ",".join(sids)))
    return ",".join(sids)


async def _send_template(config: TwilioConfig, public_url: str, message: OutboundMessage, store, sender: dict,
                         timeout: float | None, pacer: Pacer | None = None) -> str:
    entry = f"{message.conversation_id}:{message.seq}" if message.conversation_id and message.seq else ""
    done = (await store.get_ref("twilio-sent", entry) or "") if entry else ""
    if done:
        return done
    twilio = client(config, timeout)
    create = twilio.messages.create  # before pacing, as in _send
    await _pace(config, pacer, sender)
    try:
        created = await asyncio.to_thread(
            create, to="whatsapp:" + message.customer_id,
            content_sid=config.whatsapp_template_sid,
            content_variables=json.dumps(dict(config.whatsapp_template_variables), ensure_ascii=False),
            status_callback=f"{public_url}/webhooks/twilio/status", **sender,
        )
    except (TwilioException, requests.RequestException) as exc:
        raise delivery_error(exc, twilio.http_client.retry_after) from None
    if entry:
        await store.through_outage(lambda: store.set_ref("twilio-sid", created.sid, entry))
        await store.through_outage(lambda: store.set_ref("twilio-sent", entry, created.sid))
    return created.sid


# Twilio sends media up to 5 MB per file (MMS and WhatsApp).
MAX_MEDIA_SEND = 5 * 1024 * 1024
_WHATSAPP_TYPES = re.compile(r"^(image/(jpeg|png)|audio/.+|video/(mp4|3gpp)|application/.+|text/plain)$")


def _takes_media(channel: str, number: str) -> bool:
    """WhatsApp takes media; SMS only as MMS, which Twilio offers in the US and Canada."""
    return channel == WHATSAPP or number.startswith("+1")


def check_attachment(channel: str, customer_id: str, attachment: dict) -> str:
    """Why Twilio cannot send this file to the customer, or ""."""
    if not _takes_media(channel, customer_id):
        return ""  # sent as a link
    size = int(attachment.get("size") or 0)
    if size > MAX_MEDIA_SEND:
        return (f"Twilio sends files up to 5 MB to {'WhatsApp' if channel == WHATSAPP else 'MMS'} customers, "
                f"and this one is {size / (1024 * 1024):.1f} MB")
    content_type = str(attachment.get("content_type") or "").split(";")[0].strip().lower()
    if channel == WHATSAPP and content_type and not _WHATSAPP_TYPES.match(content_type):
        return f"WhatsApp does not take {content_type} files (images must be JPEG or PNG, videos MP4 or 3GPP)"
    return ""


# Chatgate fetches a customer's media up to this size (Twilio's own limit for a message's media is 5 MB;
# WhatsApp documents can be larger).
MAX_FETCH = 100 * 1024 * 1024


def _media_url(config: TwilioConfig, url: str) -> str:
    return config.api_url + url[len(TWILIO_API):] if url.startswith(TWILIO_API) else url


def _fetch(config: TwilioConfig, attachment: dict, timeout: float) -> File:
    """A customer's MMS or WhatsApp media, with the account's credentials (Twilio can require them)."""
    url = _media_url(config, str(attachment.get("ref", "")))
    kind = str(attachment.get("kind") or "file")
    # A MediaUrl elsewhere than Twilio's own hosts gets no credentials: it is not fetched at all.
    check_host(url, config.media_hosts, config.api_url, f"the {kind}'s MediaUrl", "twilio.media_hosts")
    try:
        with requests.get(url, auth=(config.account_sid, config.auth_token), timeout=timeout, stream=True) as got:
            if got.status_code >= 400:
                raise DeliveryError(f"Twilio refused the media download ({got.status_code})",
                                    permanent=400 <= got.status_code < 500 and got.status_code != 429)
            data = bytearray()
            for chunk in got.iter_content(64 * 1024):
                data += chunk
                if len(data) > MAX_FETCH:
                    raise DeliveryError(f"the {kind} is over {MAX_FETCH // (1024 * 1024)} MB", permanent=True)
            content_type = got.headers.get("Content-Type", "") or str(attachment.get("content_type") or "")
    except requests.RequestException as exc:
        raise DeliveryError(f"Twilio media download failed: {exc.__class__.__name__}") from None
    name = str(attachment.get("name") or "")
    if not name:
        extension = mimetypes.guess_extension(content_type.split(";")[0].strip()) or ""
        name = f"{kind}{extension}"
    return File(bytes(data), name, content_type)


class Twilio(Channel[TwilioConfig]):
    """SMS and WhatsApp through Twilio: ``POST /webhooks/twilio`` (and its status callback) in, Messages API out."""

    section = "twilio"
    labels = {SMS: "SMS", WHATSAPP: "WhatsApp"}
    fetches_files = True
    load_config = staticmethod(load_config)

    @staticmethod
    def refs(config: TwilioConfig) -> Refs:
        """What it keeps per conversation: the sids of a message's parts already sent (``twilio-sent``)
        and, for the status callback, each sid's message (``twilio-sid``: sid -> ``<id>:<seq>``)."""
        return Refs(forget=(*by_message("twilio-sent"),
                            Forget("twilio-sid", (ref("twilio-sent", CONVERSATION, SEQ, split=","),),
                                   only_if=(CONVERSATION, SEQ))))

    def __init__(self, config: TwilioConfig, runtime: Runtime):
        super().__init__(config, runtime)
        self.pacer = Pacer.for_store(runtime.store)

    def mount(self, app: web.Application, services: "Services") -> None:
        message, status = webhook_handlers(self.config, services.config.server.public_url, services.conversations)
        form = "application/x-www-form-urlencoded"
        app.router.add_post("/webhooks/twilio", accepting(form, message))
        app.router.add_post("/webhooks/twilio/status", accepting(form, status))

    async def fetch(self, attachment: dict) -> File:
        return await asyncio.to_thread(_fetch, self.config, attachment, self.runtime.config.delivery.timeout)

    def check_attachment(self, channel: str, attachment: dict, customer_id: str = "") -> str:
        return check_attachment(channel, customer_id, attachment)

    def reply_window(self, channel: str) -> ReplyWindow | None:
        """WhatsApp's customer-service window (SMS has none)."""
        if channel != WHATSAPP:
            return None
        return ReplyWindow(self.config.whatsapp_window,
                           "the approved WhatsApp template" if self.config.whatsapp_template_sid else "")

    async def send(self, message: OutboundMessage) -> str:
        config = self.runtime.config
        return await _send(self.config, config.server.public_url, message, self.runtime.store,
                           timeout=config.delivery.timeout, media=self.runtime.media, pacer=self.pacer)
