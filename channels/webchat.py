"""Web chat: a customer page (``/chat``), an embeddable widget and the JSON + SSE API behind them.

The customer is known by a signed cookie holding a random customer id (HMAC-SHA256
with a secret from the config or made once and kept in Redis), so a reload keeps
the conversation and a returning customer is the same customer to the core.

In: ``POST /chat/api/messages`` becomes an ``InboundMessage`` for
``Conversations.receive``; the page's client message id makes a retry a duplicate.
Out: ``send`` appends the message to the customer's Redis stream (kept for
resuming) and, in the same script, to the live stream every web process's one
reader follows (``gateway.fanout``); ``GET /chat/api/events`` (server-sent
events) takes the customer's messages from that reader in memory, so any web
process can serve any customer and a stream holds no Redis connection. A
stream re-reads the conversation's state when the web console's event stream
says it changed (else every ``STATE_EVERY`` seconds). Agent text arrives as chatgate text (``**bold**``,
``_italic_``, ``[label](url)``); the browser renders it with DOM nodes, never HTML.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, ClassVar, Literal, overload
from urllib.parse import urlsplit

import redis.exceptions
from aiohttp import web

from gateway.clients import client_address
from gateway.http import BadBody, read_json_object
from gateway.fanout import (FanOut, Slots, StreamEnded, Subscription, TooManyStreams, hold, process_slots,
                            stream_id_key)
from gateway.message import Conversation, InboundMessage, OutboundMessage, Refused, State
from gateway.ports import Channel, DeliveryError, Runtime
from gateway.redis_text import as_text

if TYPE_CHECKING:
    from gateway.services import Services
    from gateway.store import HistoryEntry, Store

__all__ = ["CHANNEL", "WebChat", "WebChatConfig"]

log = logging.getLogger(__name__)

CHANNEL = "webchat"
# When the request's session cookie was issued (set by ``_customer``).
ISSUED = web.RequestKey("webchat_issued", int)
STATIC = Path(__file__).with_name("webchat_static")
COOKIE = "chatgate_chat"
COOKIE_PATH = "/chat"
# Live event streams one customer may hold open in one web process.
MAX_STREAMS = 5
# How often an open stream re-reads its conversation's state when no web console tells it of changes.
STATE_EVERY = 2.0
# Entries kept in the stream every web process's live reader follows (the customers' streams keep their own).
LIVE_MAXLEN = 10_000
# One message: into the customer's stream (kept for resuming) and, with that entry's id, into the stream the
# web processes' readers follow. ARGV: maxlen, ttl, live maxlen, customer id, then the fields.
SEND = """
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'customer', ARGV[4], 'id', id, unpack(fields))
return id
"""
# Messages kept per customer stream: enough for a page that was offline a while.
STREAM_MAXLEN = 500
NAME_MAX, PHONE_MAX, LOCATION_MAX = 100, 40, 200
CUSTOMER_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
ORIGIN = re.compile(r"^https?://[a-z0-9.-]+(:\d{1,5})?$")
PHONE = re.compile(r"^\+?[0-9 ().\-/]{3,40}$")
# Control characters other than tab and newline never reach an agent.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class WebChatConfig:
    """The ``[webchat]`` section."""

    enabled: bool = True
    # Sites that may embed the widget (scheme://host[:port]); the chat's own origin always may.
    allowed_origins: tuple[str, ...] = ()
    max_message_chars: int = 4000
    messages_per_minute: int = 20  # per customer session
    messages_per_minute_per_ip: int = 60
    session_max_age: float = 30 * 86400.0
    greeting: str = ""
    # Live event streams open at once from one address, in one web process ([server] trust_forwarded_for).
    max_streams_per_ip: int = 50
    # Signs the session cookie; empty: one is made on first use and kept in Redis.
    secret: str = ""


class ApiError(Exception):
    """A refused API request: ``{"error": code, "message": plain text}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def _clean(text: str) -> str:
    return CONTROL.sub("", text).strip()


class WebChat(Channel[WebChatConfig]):
    """The web-chat channel: the customer page, the widget, the API and ``send``."""

    section: ClassVar[str] = "webchat"
    labels: ClassVar[dict[str, str]] = {"webchat": "Web chat"}
    # How long an SSE connection waits on the stream before a keep-alive and a state check.
    events_wait: ClassVar[float] = 15.0

    def __init__(self, config: WebChatConfig, runtime: Runtime):
        super().__init__(config, runtime)
        self.store: "Store" = runtime.store
        public_url = runtime.config.server.public_url
        parts = urlsplit(public_url)
        self.https = parts.scheme == "https"
        self.own_origin = f"{parts.scheme}://{parts.netloc}".lower()
        self.allowed = frozenset(config.allowed_origins)
        self._secret: bytes | None = config.secret.encode() if config.secret else None
        self._page: bytes | None = None
        self._widget: bytes | None = None
        self.services: "Services | None" = None
        # The time the rate limits count in (one-minute windows); tests pin it.
        self.clock = time.time
        # Open live streams, counted per customer, per address and (once mounted) per process.
        self._per_customer = Slots(MAX_STREAMS, "too_many_streams",
                                   "This chat is open in too many tabs; close one and reload.")
        self._per_address = Slots(config.max_streams_per_ip, "too_many_streams_from_address",
                                  "Too many chats are open from your network; please try again shortly.")
        self._per_process = Slots(runtime.config.server.max_streams, "too_many_streams",
                                  "The chat is busy; it reconnects shortly.")
        self.fanout: FanOut | None = None  # this process's reader of the live stream, once mounted
        # [server] trust_forwarded_for: the per-IP limit counts X-Forwarded-For's last hop.
        self.trust_forwarded_for = runtime.config.server.trust_forwarded_for

    # -- config ----------------------------------------------------------------

    @staticmethod
    def load_config(reader: Any) -> WebChatConfig:
        enabled = reader.boolean("enabled", WebChatConfig.enabled)
        reader.env_required = enabled
        origins = []
        for raw in reader.strings("allowed_origins"):
            origin = raw.strip().lower().rstrip("/")
            if not ORIGIN.match(origin):
                reader.problem("allowed_origins", 'origins like "https://shop.example.com" '
                               "(scheme and host, optional port, no path, no wildcard)", raw)
                continue
            origins.append(origin)
        config = WebChatConfig(
            enabled=enabled,
            allowed_origins=tuple(origins),
            max_message_chars=reader.integer("max_message_chars", WebChatConfig.max_message_chars, minimum=1),
            messages_per_minute=reader.integer("messages_per_minute", WebChatConfig.messages_per_minute,
                                               minimum=1),
            messages_per_minute_per_ip=reader.integer("messages_per_minute_per_ip",
                                                      WebChatConfig.messages_per_minute_per_ip, minimum=1),
            session_max_age=reader.duration("session_max_age", WebChatConfig.session_max_age),
            greeting=reader.string("greeting", WebChatConfig.greeting),
            max_streams_per_ip=reader.integer("max_streams_per_ip", WebChatConfig.max_streams_per_ip, minimum=1),
            secret=reader.string("secret", WebChatConfig.secret),
        )
        if "trust_forwarded_for" in reader.data:
            # One setting for every per-IP limit now; a silently ignored key would count the proxy's address.
            reader.problem("trust_forwarded_for", "no such key here: it moved to [server] trust_forwarded_for, "
                           "which every per-IP limit (web chat and web console sign-in) uses")
        if config.session_max_age < 60:
            reader.problem("session_max_age", "a duration of at least 60 seconds", config.session_max_age)
        if config.secret and len(config.secret) < 16:
            reader.problem("secret", "at least 16 characters (or leave it out: one is made and kept in Redis)")
        reader.unknown_keys({"enabled", "allowed_origins", "max_message_chars", "messages_per_minute",
                             "messages_per_minute_per_ip", "session_max_age", "greeting", "max_streams_per_ip", "trust_forwarded_for",
                             "secret"})
        return config

    # -- keys ------------------------------------------------------------------

    def stream_key(self, customer_id: str) -> str:
        return self.store.key("webchat", "out", customer_id)

    def live_key(self) -> str:
        return self.store.key("webchat", "live")

    def profile_key(self, customer_id: str) -> str:
        return self.store.key("webchat", "customer", customer_id)

    # -- sending ---------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> str:
        """Append the message to the customer's stream; the stream entry id."""
        if message.channel != CHANNEL or not CUSTOMER_ID.match(message.customer_id):
            raise DeliveryError(f"not a web-chat customer: {message.channel} {message.customer_id!r}",
                                permanent=True)
        sender, at = "system", time.time()
        try:
            if message.conversation_id and message.seq:
                entry = await self.store.message(message.conversation_id, message.seq)
                if entry is not None:
                    at = entry.at
                    if entry.by not in ("system", "customer", ""):
                        sender = "agent"
            stream = self.stream_key(message.customer_id)
            ttl = int(self.config.session_max_age)
            fields = ["seq", str(message.seq), "conversation_id", message.conversation_id, "text", message.text,
                      "at", repr(at), "from", sender]
            async with self.store.redis.pipeline(transaction=True) as pipe:
                pipe.eval(SEND, 2, stream, self.live_key(), STREAM_MAXLEN, ttl, LIVE_MAXLEN, message.customer_id,
                          *fields)
                if message.conversation_id:
                    pipe.hset(self.profile_key(message.customer_id), "conversation", message.conversation_id)
                    pipe.expire(self.profile_key(message.customer_id), ttl)
                stream_id = (await pipe.execute())[0]
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise DeliveryError(f"Redis unreachable while queueing a web-chat message: {exc}") from None
        return stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)

    # -- web -------------------------------------------------------------------

    def mount(self, app: web.Application, services: "Services") -> None:
        if not self.config.enabled:
            return
        self.services = services
        self._per_process = process_slots(app, services.config.server.max_streams)
        # One reader of the live stream for this process; every customer's streams take their messages in memory.
        self.fanout = FanOut(services.redis_url, self.live_key(), _route, name="chatgate-live-webchat")
        self.fanout.attach(app)
        app.router.add_get("/chat", self._page_handler)
        app.router.add_get("/chat/widget.js", self._widget_handler)
        app.router.add_static("/chat/static", STATIC, append_version=False)
        api = self._api
        app.router.add_post("/chat/api/start", api(self._start))
        app.router.add_get("/chat/api/messages", api(self._history))
        app.router.add_post("/chat/api/messages", api(self._message))
        app.router.add_post("/chat/api/rating", api(self._rating))
        app.router.add_get("/chat/api/events", api(self._events))
        app.router.add_route("OPTIONS", "/chat/api/{name}", self._preflight)

    # Pages.

    def _frame_ancestors(self) -> str:
        return " ".join(("'self'", *sorted(self.allowed)))

    def _page_headers(self) -> dict[str, str]:
        return {
            "Content-Security-Policy": (
                "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
                f"frame-ancestors {self._frame_ancestors()}"),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-cache",
        }

    async def _page_handler(self, request: web.Request) -> web.Response:
        if self._page is None:
            self._page = (STATIC / "chat.html").read_bytes()
        return web.Response(body=self._page, content_type="text/html", charset="utf-8",
                            headers=self._page_headers())

    async def _widget_handler(self, request: web.Request) -> web.Response:
        if self._widget is None:
            self._widget = (STATIC / "widget.js").read_bytes()
        return web.Response(body=self._widget, content_type="application/javascript", charset="utf-8",
                            headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"})

    # The API: every refusal is {"error", "message"} and stores nothing.

    def _origin(self, request: web.Request) -> str | None:
        """The request's Origin if it is another allowed site (CORS applies); raises 403 for others."""
        origin = request.headers.get("Origin")
        if origin is None:
            return None  # not a browser's cross-site request: nothing to forge with
        origin = origin.strip().lower().rstrip("/")
        if origin == self.own_origin or urlsplit(origin).netloc == request.host.lower():
            return None
        if origin in self.allowed:
            return origin
        raise ApiError(403, "origin_refused", "This site may not use this chat.")

    @staticmethod
    def _cors(origin: str | None) -> dict[str, str]:
        if origin is None:
            return {}
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true",
                "Vary": "Origin"}

    def _api(self, handler: Callable[[web.Request, str | None], Awaitable[web.StreamResponse]]):
        async def handle(request: web.Request) -> web.StreamResponse:
            origin = None
            try:
                origin = self._origin(request)
                response = await handler(request, origin)
            except ApiError as exc:
                response = web.json_response({"error": exc.code, "message": exc.message}, status=exc.status,
                                             headers=exc.headers)
            except Refused as exc:
                response = web.json_response({"error": exc.code, "message": exc.reason}, status=409)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                log.error("Redis unavailable on %s: %s", request.path, exc)
                response = web.json_response(
                    {"error": "unavailable", "message": "The chat is unavailable for a moment; please try again."},
                    status=503, headers={"Retry-After": "5"})
            if not response.prepared:
                response.headers.update(self._cors(origin))
                response.headers.setdefault("Cache-Control", "no-store")
            return response

        return handle

    async def _preflight(self, request: web.Request) -> web.Response:
        origin = request.headers.get("Origin", "").strip().lower().rstrip("/")
        if origin not in self.allowed:
            return web.json_response({"error": "origin_refused", "message": "This site may not use this chat."},
                                     status=403)
        return web.Response(status=204, headers={
            **self._cors(origin),
            "Access-Control-Allow-Methods": "GET, POST",
            "Access-Control-Allow-Headers": "Content-Type, Last-Event-ID",
            "Access-Control-Max-Age": "600",
        })

    # Session cookie: "<customer id>.<issued at>.<hmac>".

    async def secret(self) -> bytes:
        if self._secret is None:
            key = self.store.key("webchat", "secret")
            await self.store.redis.set(key, secrets.token_hex(32), nx=True)
            self._secret = as_text(await self.store.redis.get(key)).encode()
        return self._secret

    async def cookie_value(self, customer_id: str, issued: int | None = None) -> str:
        payload = f"{customer_id}.{int(time.time()) if issued is None else issued}"
        signature = hmac.new(await self.secret(), payload.encode(), hashlib.sha256).hexdigest()
        return f"{payload}.{signature}"

    @overload
    async def _customer(self, request: web.Request) -> str: ...

    @overload
    async def _customer(self, request: web.Request, required: Literal[False]) -> str | None: ...

    async def _customer(self, request: web.Request, required: bool = True) -> str | None:
        """The customer of the request's session cookie; without a valid one, ApiError 401 (or None when
        not ``required``)."""
        raw = request.cookies.get(COOKIE)
        if not raw:
            if required:
                raise ApiError(401, "no_session", "Start the chat first: tell us your name.")
            return None
        parts = raw.split(".")
        # ASCII only: compare_digest refuses other text (a forged cookie would be a 500), and Unicode digits.
        ok = (len(parts) == 3 and CUSTOMER_ID.match(parts[0]) and parts[1].isascii() and parts[1].isdigit()
              and parts[2].isascii())
        if ok:
            expected = hmac.new(await self.secret(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).hexdigest()
            ok = hmac.compare_digest(expected, parts[2])
        if not ok:
            if required:
                raise ApiError(401, "bad_session", "Your chat session is not valid; please start the chat again.")
            return None
        if int(parts[1]) + self.config.session_max_age < time.time():
            if required:
                raise ApiError(401, "session_expired", "Your chat session has expired; please start the chat again.")
            return None
        request[ISSUED] = int(parts[1])
        return parts[0]

    async def _set_cookie(self, response: web.StreamResponse, request: web.Request, customer_id: str,
                          embedded: bool) -> None:
        secure = self.https or request.secure
        # In the widget's iframe the cookie is a third-party one: only SameSite=None (with
        # Secure, partitioned per embedding site) reaches it; the page itself keeps Lax.
        cross_site = embedded and secure
        response.set_cookie(COOKIE, await self.cookie_value(customer_id), max_age=int(self.config.session_max_age),
                            path=COOKIE_PATH, httponly=True, samesite="None" if cross_site else "Lax",
                            secure=True if secure else None, partitioned=True if cross_site else None)

    # Limits.

    def _address(self, request: web.Request) -> str:
        return client_address(request, self.trust_forwarded_for)

    async def _limit(self, request: web.Request, customer_id: str | None) -> None:
        now = self.clock()
        window = str(int(now // 60))
        retry = int(60 - now % 60) + 1
        checks = [("ip", self._address(request), self.config.messages_per_minute_per_ip,
                   "from your network")]
        if customer_id:
            checks.insert(0, ("session", customer_id, self.config.messages_per_minute, "in this chat"))
        async with self.store.redis.pipeline(transaction=False) as pipe:
            for kind, who, _, _ in checks:
                key = self.store.key("webchat", "rate", kind, who, window)
                pipe.incr(key)
                pipe.expire(key, 120)
            counts = (await pipe.execute())[::2]
        for (_, _, limit, where), count in zip(checks, counts):
            if count > limit:
                raise ApiError(429, "rate_limited",
                               f"Too many messages {where}: at most {limit} a minute. "
                               f"Please wait {retry} seconds and try again.",
                               headers={"Retry-After": str(retry)})

    async def _body(self, request: web.Request, limit: int) -> dict:
        if request.content_type != "application/json":
            raise ApiError(415, "unsupported_media_type", "Send the request as JSON (Content-Type: application/json).")
        # The core's reader: too large 413; not UTF-8, not JSON, nested too deep or not an object 400
        # "malformed"; a lone surrogate (it could not be stored) 400 "invalid_character".
        try:
            return await read_json_object(request, limit)
        except BadBody as bad:
            if bad.status == 413:
                raise ApiError(413, "too_large", "That request is too large.") from None
            if bad.code == "invalid_character":
                raise ApiError(400, "invalid_character", bad.reason) from None
            raise ApiError(400, "malformed", f"The request is not a valid JSON object: {bad.reason}") from None

    def _body_limit(self) -> int:
        # JSON may spell a character as "\\uXXXX\\uXXXX" (12 bytes): a full-length message always fits.
        return self.config.max_message_chars * 12 + 4096

    @staticmethod
    def _text_field(data: dict, name: str, maximum: int, label: str) -> str:
        value = data.get(name)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ApiError(400, f"bad_{name}", f"{label} must be text.")
        value = _clean(value)
        if len(value) > maximum:
            raise ApiError(413, "too_long", f"{label} is too long: at most {maximum} characters.")
        return value

    # Views.

    async def _profile(self, customer_id: str) -> dict[str, str]:
        raw = await self.store.redis.hgetall(self.profile_key(customer_id))
        return {as_text(k): as_text(v) for k, v in raw.items()}

    async def _conversation(self, customer_id: str, profile: dict[str, str] | None = None) -> Conversation | None:
        """The open conversation, else the last one this customer had (to show it closed)."""
        conversation = await self.store.open_conversation(CHANNEL, customer_id)
        if conversation is not None:
            return conversation
        if profile is None:
            profile = await self._profile(customer_id)
        last = profile.get("conversation")
        if last:
            conversation = await self.store.get(last)
            if conversation is not None and conversation.customer_id == customer_id:
                return conversation
        return None

    @staticmethod
    def conversation_view(conversation: Conversation | None) -> dict | None:
        if conversation is None:
            return None
        state = conversation.state.value if isinstance(conversation.state, State) else str(conversation.state)
        return {
            "id": conversation.id,
            "state": state,
            "rating": conversation.rating,
            "rating_pending": state == State.RESOLVED.value and conversation.rating is None,
            "closed": state == State.CLOSED.value,
        }

    @staticmethod
    def _entry_view(entry: "HistoryEntry") -> dict:
        if entry.direction == "in":
            sender = "you"
        else:
            sender = "system" if entry.by in ("system", "customer", "") else "agent"
        return {"seq": entry.seq, "direction": entry.direction, "from": sender, "text": entry.text, "at": entry.at}

    async def _last_event_id(self, customer_id: str) -> str:
        last = await self.store.redis.xrevrange(self.stream_key(customer_id), count=1)
        if not last:
            return "0-0"
        stream_id = last[0][0]
        return stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)

    def _customer_view(self, profile: dict[str, str]) -> dict | None:
        if not profile.get("name"):
            return None
        return {"name": profile.get("name", ""), "phone": profile.get("phone", ""),
                "location": profile.get("location", "")}

    # Handlers.

    async def _start(self, request: web.Request, origin: str | None) -> web.Response:
        customer_id = await self._customer(request, required=False)
        await self._limit(request, customer_id)
        data = await self._body(request, 4096)
        name = self._text_field(data, "name", NAME_MAX, "Your name")
        if not name:
            raise ApiError(400, "name_required", "Please tell us your name.")
        phone = self._text_field(data, "phone", PHONE_MAX, "The phone number")
        if phone:
            if not PHONE.match(phone) or sum(c.isdigit() for c in phone) < 3:
                raise ApiError(400, "bad_phone", "The phone number may hold only digits, spaces, + ( ) - . /")
            phone = ("+" if phone.startswith("+") else "") + re.sub(r"\D", "", phone)
        location = self._text_field(data, "location", LOCATION_MAX, "The location")
        embedded = data.get("embed") is True
        returning = customer_id is not None
        if customer_id is None:
            customer_id = secrets.token_urlsafe(18)
        key = self.profile_key(customer_id)
        async with self.store.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"name": name, "phone": phone, "location": location,
                                    "embed": "1" if embedded else ""})
            pipe.expire(key, int(self.config.session_max_age))
            await pipe.execute()
        response = web.json_response({
            "ok": True,
            "returning": returning,
            "customer": {"name": name, "phone": phone, "location": location},
            "greeting": self.config.greeting,
        })
        await self._set_cookie(response, request, customer_id, embedded)
        return response

    async def _history(self, request: web.Request, origin: str | None) -> web.Response:
        customer_id = await self._customer(request)
        last_event_id = await self._last_event_id(customer_id)  # before the history: nothing falls between
        profile = await self._profile(customer_id)
        conversation = await self._conversation(customer_id, profile)
        messages = []
        if conversation is not None:
            messages = [self._entry_view(e) for e in await self.store.history(conversation.id)
                        if e.direction in ("in", "out")]
        response = web.json_response({
            "customer": self._customer_view(profile),
            "conversation": self.conversation_view(conversation),
            "messages": messages,
            "last_event_id": last_event_id,
            "greeting": self.config.greeting,
            "max_message_chars": self.config.max_message_chars,
        })
        if request[ISSUED] + self.config.session_max_age / 2 < time.time():
            # A customer who keeps coming back keeps their session: the cookie is renewed at half its life.
            await self._set_cookie(response, request, customer_id, profile.get("embed") == "1")
            if profile:
                await self.store.redis.expire(self.profile_key(customer_id), int(self.config.session_max_age))
        return response

    async def _receive(self, customer_id: str, text: str, platform_id: str) -> web.Response:
        profile = await self._profile(customer_id)
        message = InboundMessage(channel=CHANNEL, customer_id=customer_id, platform_id=platform_id, text=text,
                                 name=profile.get("name", ""), phone=profile.get("phone", ""),
                                 location=profile.get("location", ""))
        if self.services is None:
            raise RuntimeError("the web chat's API answers only once mounted")
        received = await self.services.conversations.receive(message)
        conversation_id = received.conversation_id
        if conversation_id:
            key = self.profile_key(customer_id)
            async with self.store.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, "conversation", conversation_id)
                pipe.expire(key, int(self.config.session_max_age))
                await pipe.execute()
        conversation = await self.store.get(conversation_id) if conversation_id else None
        entry = None
        if conversation is not None and received.seq:
            entry = await self.store.message(conversation_id, received.seq)
        return web.json_response({
            "ok": True,
            "event": received.event,
            "duplicate": received.event == "duplicate",
            "conversation": self.conversation_view(conversation),
            "message": self._entry_view(entry) if entry is not None else None,
        })

    async def _message(self, request: web.Request, origin: str | None) -> web.Response:
        customer_id = await self._customer(request)
        await self._limit(request, customer_id)
        data = await self._body(request, self._body_limit())
        text = data.get("text")
        if not isinstance(text, str):
            raise ApiError(400, "bad_text", "The message must be text.")
        if len(text) > self.config.max_message_chars:
            raise ApiError(413, "too_long", f"Your message is too long: at most {self.config.max_message_chars} "
                           f"characters (it has {len(text)}).")
        text = _clean(text)
        if not text:
            raise ApiError(400, "empty", "empty message")
        client_id = data.get("client_id")
        if not isinstance(client_id, str) or not CLIENT_ID.match(client_id):
            raise ApiError(400, "bad_client_id", "client_id must be 1-64 letters, digits, _ or -.")
        return await self._receive(customer_id, text, f"{customer_id}:{client_id}")

    async def _rating(self, request: web.Request, origin: str | None) -> web.Response:
        customer_id = await self._customer(request)
        await self._limit(request, customer_id)
        data = await self._body(request, 1024)
        rating = data.get("rating")
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            raise ApiError(400, "bad_rating", "The rating must be a whole number from 1 to 5.")
        conversation = await self.store.open_conversation(CHANNEL, customer_id)
        view = self.conversation_view(conversation)
        if conversation is None or view is None or not view["rating_pending"]:
            raise ApiError(409, "no_rating_pending", "There is no rating question to answer in this chat.")
        return await self._receive(customer_id, str(rating), f"{customer_id}:rating:{conversation.id}")

    async def _events(self, request: web.Request, origin: str | None) -> web.StreamResponse:
        customer_id = await self._customer(request)
        start = request.headers.get("Last-Event-ID") or request.query.get("after") or ""
        claims = [(self._per_customer, customer_id), (self._per_address, self._address(request)),
                  (self._per_process, None)]
        try:
            with hold(*claims):
                return await self._stream(request, origin, customer_id, start if STREAM_ID.match(start) else None)
        except TooManyStreams as refused:
            raise ApiError(429, refused.code, refused.message,
                           headers={"Retry-After": str(refused.retry_after)}) from None

    async def _missed(self, customer_id: str, after: str) -> list[tuple[str, dict]]:
        """The customer's messages after ``after``, read once (no BLOCK)."""
        entries: Any = await self.store.redis.xrange(self.stream_key(customer_id), min=f"({after}", max="+",
                                                     count=STREAM_MAXLEN * 2)
        return [(as_text(raw_id), _message_view({as_text(k): as_text(v) for k, v in fields.items()}))
                for raw_id, fields in entries or ()]

    def _follow(self, view: dict | None, subscription: Subscription) -> Subscription | None:
        """Nudge ``subscription`` on every web-console event of the viewed conversation (None: no web console
        in this process, or no conversation yet)."""
        console = self.services.consoles.get("web") if self.services is not None else None
        fanout = getattr(console, "fanout", None)
        if view is None or not isinstance(fanout, FanOut):
            return None
        return fanout.follow(view["id"], subscription)

    async def _stream(self, request: web.Request, origin: str | None, customer_id: str,
                      start: str | None) -> web.StreamResponse:
        if self.fanout is None:
            raise RuntimeError("the web chat's events stream only once mounted")
        with self.fanout.subscribe(customer_id) as subscription:
            # Subscribed first, then the starting point: whatever is newer reaches this stream once.
            after = start or await self._last_event_id(customer_id)
            missed = await self._missed(customer_id, after) if start else []
            shown = self.conversation_view(await self._conversation(customer_id))
            response = web.StreamResponse(headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache, no-transform",
                "X-Accel-Buffering": "no",
                **self._cors(origin),
            })
            await response.prepare(request)
            try:
                await response.write(b"retry: 3000\n\n" + _event("state", shown)
                                     + b"".join(_event("message", view, event_id) for event_id, view in missed))
                position = stream_id_key(missed[-1][0] if missed else after)
                # The first ping (and state check) comes a random while early: streams opened together (a
                # page reload wave) do not read their states in one burst on the shared pool.
                pinged = checked = time.monotonic() - random.uniform(0, self.events_wait / 2)
                followed = self._follow(shown, subscription)
                try:
                    while True:
                        wait = self.events_wait
                        # The state is re-read when the web console's stream says the conversation changed
                        # (accepted, resolved...); without that stream, or before there is a conversation, every
                        # STATE_EVERY seconds.
                        every = wait if followed is not None else min(wait, STATE_EVERY)
                        now = time.monotonic()
                        batch = await subscription.next(max(0.01, min(wait - (now - pinged), every - (now - checked))))
                        fresh = [(key, message) for key, message in batch if key > position]
                        if fresh:
                            position = fresh[-1][0]
                            await response.write(b"".join(message for _key, message in fresh))
                        nudged, subscription.nudged = subscription.nudged, False
                        due = time.monotonic() - pinged >= wait
                        if fresh or nudged or due or time.monotonic() - checked >= every:
                            # The conversation's state (resolved, closed) changes with the messages, or meanwhile.
                            view = self.conversation_view(await self._conversation(customer_id))
                            checked = time.monotonic()
                            if view != shown:
                                await response.write(_event("state", view))
                                if (view or {}).get("id") != (shown or {}).get("id"):
                                    if followed is not None:
                                        followed.close()
                                    followed = self._follow(view, subscription)
                                shown = view
                        if due:
                            await response.write(b": ping\n\n")
                            pinged = time.monotonic()
                finally:
                    if followed is not None:
                        followed.close()
            except StreamEnded as ended:
                log.debug("web-chat event stream ended: %s", ended)  # the page reconnects with Last-Event-ID
            except ConnectionResetError:
                pass  # the page went away
            except (redis.exceptions.RedisError, OSError) as exc:
                log.warning("web-chat event stream ended, Redis unavailable: %s", exc)  # the page reconnects
            return response


def _message_view(item: dict[str, str]) -> dict[str, Any]:
    return {
        "conversation_id": item.get("conversation_id", ""),
        "seq": int(item.get("seq") or 0),
        "text": item.get("text", ""),
        "at": float(item.get("at") or 0),
        "from": item.get("from", "agent"),
        "direction": "out",
    }


def _route(_live_id: str, fields: dict) -> tuple[str, tuple[tuple[int, int], bytes]] | None:
    """A live-stream entry for the streams of its customer: (customer, (its position in the customer's
    stream, the SSE message)), encoded once whatever the number of the customer's streams."""
    item = {as_text(k): as_text(v) for k, v in fields.items()}
    customer, event_id = item.get("customer"), item.get("id")
    if not customer or not event_id or not STREAM_ID.match(event_id):
        return None
    return customer, (stream_id_key(event_id), _event("message", _message_view(item), event_id))


def _event(kind: str, data: Any, event_id: str = "") -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    # json.dumps escapes newlines, so the data is one line.
    return f"{head}event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()
