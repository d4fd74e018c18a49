"""Telegram: the Bot API webhook in, ``sendMessage`` out, through python-telegram-bot."""

from __future__ import annotations

import hmac
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from telegram import Bot, Message, Update
from telegram.error import BadRequest, Forbidden, InvalidToken, RetryAfter, TelegramError
from telegram.request import HTTPXRequest

from channels import render
from gateway.config import ConfigReader, url_setting
from gateway.message import Attachment, File, InboundMessage, OutboundMessage
from gateway.pacing import Pacer, rate_setting
from gateway.ports import Channel, DeliveryError, Runtime
from gateway.refs import Refs, by_message

from gateway.http import BadBody, accepting, read_json

if TYPE_CHECKING:
    from gateway.services import Services

__all__ = ["CHANNEL", "Telegram", "TelegramConfig", "Start", "parse", "webhook_handler", "set_webhook"]

log = logging.getLogger(__name__)

CHANNEL = "telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@dataclass(frozen=True)
class TelegramConfig:
    enabled: bool = False
    token: str = ""
    secret_token: str = ""
    api_url: str = "https://api.telegram.org/bot"
    greeting: str = "Hello! Write your question and one of our agents will answer shortly."
    # Sends paced in Redis, shared by every worker (0: no pacing). Telegram's Bots FAQ: no more than
    # about one message a second in one chat (short bursts allowed), about 30 a second in all.
    rate_per_chat: float = 1.0
    burst_per_chat: int = 3
    rate_per_bot: float = 30.0
    burst_per_bot: int = 30


def load_config(t: ConfigReader) -> TelegramConfig:
    """The ``[telegram]`` table."""
    t.env_required = t.boolean("enabled", TelegramConfig.enabled)
    telegram = TelegramConfig(
        enabled=t.env_required,
        token=t.string("token", ""),
        secret_token=t.string("secret_token", ""),
        api_url=url_setting(t, "api_url", TelegramConfig.api_url),
        greeting=t.string("greeting", TelegramConfig.greeting),
        rate_per_chat=rate_setting(t, "rate_per_chat", TelegramConfig.rate_per_chat),
        burst_per_chat=t.integer("burst_per_chat", TelegramConfig.burst_per_chat, minimum=1),
        rate_per_bot=rate_setting(t, "rate_per_bot", TelegramConfig.rate_per_bot),
        burst_per_bot=t.integer("burst_per_bot", TelegramConfig.burst_per_bot, minimum=1),
    )
    if telegram.enabled:
        if not telegram.token:
            t.problem("token", "the bot token from @BotFather (or \"env:TELEGRAM_TOKEN\")")
        if not re.match(r"^[A-Za-z0-9_-]{1,256}$", telegram.secret_token):
            t.problem("secret_token", "1-256 characters A-Z a-z 0-9 _ - (Telegram's rule for the webhook secret)")
    t.unknown_keys({"enabled", "token", "secret_token", "api_url", "greeting", "rate_per_chat", "burst_per_chat",
                    "rate_per_bot", "burst_per_bot"})
    return telegram


@dataclass(frozen=True)
class Start:
    """The customer pressed Start (``/start``): they get the greeting."""

    customer_id: str


def _name(message: Message) -> str:
    user = message.from_user
    if user is None:
        return message.chat.full_name or message.chat.title or ""
    return user.full_name or (user.username or "")


# Telegram's ids have at most 52 significant bits (they fit a double exactly).
MAX_ID = 2 ** 52


def _valid_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -MAX_ID < value < MAX_ID


def _check_ids(message) -> None:
    """A chat or user id that is not an integer Telegram could send (2**70, 1.5, "abc") is refused."""
    if not isinstance(message, dict):
        return
    for holder in ("chat", "from"):
        part = message.get(holder)
        if isinstance(part, dict) and "id" in part and not _valid_id(part["id"]):
            raise ValueError(f"message.{holder}.id must be an integer Telegram id, not {str(part['id'])[:40]!r}")
    if "message_id" in message and not _valid_id(message["message_id"]):
        raise ValueError("message.message_id must be an integer")


def parse(data: dict) -> InboundMessage | Start | None:
    """Normalize a Telegram update; None for updates chatgate does not handle.

    Raises ValueError when ``data`` is not a Telegram update at all.
    """
    if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
        raise ValueError("not a Telegram update: an object with an integer update_id is expected")
    _check_ids(data.get("message"))
    plain = _plain_text(data)
    if plain is not None:
        return plain
    try:
        update = Update.de_json(data, None)
        return _normalize(update)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, OSError, RecursionError) as exc:
        # python-telegram-bot does not check field types: a date out of range, a
        # text that is a number or a location that is a string fail in here.
        raise ValueError(f"malformed Telegram update ({exc.__class__.__name__}: {str(exc)[:200]})") from None


# A plain text message (most of the traffic) has only these fields; it is read without building
# python-telegram-bot's objects (which cost more than the rest of the webhook). Anything else, or
# anything unusual in these, goes through ``Update.de_json`` and ``_normalize``.
_PLAIN_FIELDS = frozenset({"message_id", "date", "chat", "from", "text", "entities"})
_NAME_FIELDS = ("first_name", "last_name", "username", "title")


def _plain_text(data: dict) -> InboundMessage | Start | None:
    if data.keys() != {"update_id", "message"}:
        return None
    message = data["message"]
    if not isinstance(message, dict) or not message.keys() <= _PLAIN_FIELDS:
        return None
    chat, user, text = message.get("chat"), message.get("from"), message.get("text")
    date = message.get("date")
    if (not isinstance(text, str) or not isinstance(chat, dict) or "id" not in chat
            or not isinstance(message.get("message_id"), int)
            or not (isinstance(date, int) and 0 <= date < 2 ** 33)
            or not all(isinstance(part.get(name, ""), str) for part in (chat, user or {}) for name in _NAME_FIELDS)
            or (user is not None and not isinstance(user, dict))):
        return None
    customer = str(chat["id"])
    if text.strip().split(" ")[0].split("@")[0] == "/start":
        return Start(customer)
    if not text:
        return None
    # As python-telegram-bot's full_name: nothing without a first name.
    source = user if user is not None else chat
    first, last = source.get("first_name") or "", source.get("last_name")
    full = f"{first} {last}" if first and last else first
    name = (full or source.get("username") or "") if user is not None else (full or chat.get("title") or "")
    return InboundMessage(channel=CHANNEL, customer_id=customer, platform_id=f"{customer}:{message['message_id']}",
                          text=text, name=name)


def _normalize(update: Update) -> InboundMessage | Start | None:
    message = update.message
    if message is None or message.chat is None:
        return None  # edits, channel posts, callbacks: nothing for the customer chat
    customer = str(message.chat.id)
    text = message.text or message.caption or ""
    if not isinstance(text, str):
        raise ValueError("message text or caption is not a string")
    if text.strip().split(" ")[0].split("@")[0] == "/start":
        return Start(customer)

    attachments: list[Attachment] = []
    phone = location = ""
    if message.photo:
        largest = max(message.photo, key=lambda p: (p.width or 0) * (p.height or 0))
        attachments.append(Attachment("photo", largest.file_id, "image/jpeg", "photo.jpg", largest.file_size or 0))
    if message.document:
        doc = message.document
        attachments.append(Attachment("document", doc.file_id, doc.mime_type or "", doc.file_name or "",
                                      doc.file_size or 0))
    # Voice notes, audio, video, stickers: uploaded into the agents' thread (a sticker named by its emoji).
    for kind in ("voice", "audio", "video", "video_note", "sticker", "animation"):
        media = getattr(message, kind)
        if media is not None:
            name = getattr(media, "file_name", "") or ""
            if kind == "sticker":
                name = f"{media.emoji or ''} sticker".strip()
            attachments.append(Attachment(kind.replace("_", " "), media.file_id,
                                          getattr(media, "mime_type", "") or "", name, media.file_size or 0))
    if message.location:
        lat, lon = message.location.latitude, message.location.longitude
        location = f"{lat:.5f}, {lon:.5f}"
        if message.venue:
            location = f"{message.venue.title}, {message.venue.address} ({location})"
        text = text or f"Shared location: {location}"
    if message.contact:
        phone = message.contact.phone_number or ""
        if phone and not phone.startswith("+"):
            phone = "+" + phone
        text = text or f"Shared contact: {phone}"
    if not text and not attachments:
        return None  # polls, dice, service messages: nothing for an agent to answer
    return InboundMessage(
        channel=CHANNEL,
        customer_id=customer,
        platform_id=f"{customer}:{message.message_id}",
        text=text,
        name=_name(message),
        phone=phone,
        location=location,
        attachments=tuple(attachments),
    )


def webhook_handler(config: TelegramConfig, conversations) -> Handler:
    """The aiohttp handler for ``POST /webhooks/telegram``."""

    async def handle(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        # aiohttp keeps a header's bytes that are not UTF-8 as surrogates: compared as the bytes they were.
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), config.secret_token.encode()):
            return web.json_response({"error": "bad or missing secret token"}, status=401)
        try:
            # The core's reader (size, UTF-8, depth, JSON); a lone surrogate in Telegram's text becomes
            # U+FFFD (refused, Telegram would only retry the update).
            data = await read_json(request, surrogates="replace")
            parsed = parse(data)
        except BadBody as bad:
            prefix = "" if bad.status == 413 else "malformed body: "
            return web.json_response({"error": prefix + bad.reason}, status=bad.status)
        except ValueError as exc:
            return web.json_response({"error": f"malformed body: {exc}"}, status=400)
        if isinstance(parsed, Start):
            await conversations.notify_customer(CHANNEL, parsed.customer_id, config.greeting)
        elif parsed is not None:
            await conversations.receive(parsed)
        return web.json_response({"ok": True})

    return handle


def _bot(config: TelegramConfig) -> Bot:
    # A worker sends to several chats at once (workers/ready.py): one connection each.
    return Bot(config.token, base_url=config.api_url, base_file_url=_file_base(config),
               request=HTTPXRequest(connection_pool_size=16))


def _error(exc: TelegramError) -> DeliveryError:
    if isinstance(exc, RetryAfter):
        retry = exc.retry_after
        seconds = retry.total_seconds() if hasattr(retry, "total_seconds") else float(retry)
        return DeliveryError(f"Telegram rate limit: {exc.message}", retry_after=seconds)
    if isinstance(exc, (BadRequest, Forbidden, InvalidToken)):
        # The chat is gone, the bot was blocked or the token is wrong: retrying won't help.
        return DeliveryError(f"Telegram refused the message: {exc.message}", permanent=True)
    return DeliveryError(f"Telegram is unreachable or failing: {exc.message}")


async def _pace(config: TelegramConfig, pacer: Pacer | None, chat_id: str) -> None:
    """Wait for a token of the customer's chat, then of the bot (keyed by the bot's public id, never its token)."""
    if pacer is None:
        return
    bot_id = config.token.partition(":")[0]
    await pacer.wait(f"telegram-chat:{bot_id}:{chat_id}", config.rate_per_chat, config.burst_per_chat)
    await pacer.wait(f"telegram-bot:{bot_id}", config.rate_per_bot, config.burst_per_bot)


async def _send(config: TelegramConfig, message: OutboundMessage, store=None, media=None,
                pacer: Pacer | None = None, bot: Bot | None = None) -> str:
    """Send chatgate text to the customer's chat as Telegram HTML; the Telegram message ids, comma-separated.

    A text over Telegram's 4,096 characters goes out as several messages, split at
    natural breaks, in order. The parts already sent are remembered (``telegram-sent``),
    so a retry after a failure in the middle never sends one twice (a single part needs no
    such note: the outbox acknowledges it). ``bot``: a long-lived one (the worker's), else
    one for this message. Files the agent sent
    follow the text: opened where they live (Slack, with its token) and uploaded with
    ``sendPhoto`` (images up to 10 MB) or ``sendDocument``. Each part waits for the ``pacer``
    (per chat and per bot) first.
    """
    entry = f"{message.conversation_id}:{message.seq}" if message.conversation_id and message.seq else ""
    parts: list = render.telegram_chunks(message.text) if message.text.strip() else []
    parts += list(message.attachments)
    remember = bool(entry) and store is not None and len(parts) > 1
    done = (await store.get_ref("telegram-sent", entry) or "") if remember else ""
    ids = [i for i in done.split(",") if i]
    own = bot is None
    bot = bot or _bot(config)
    try:
        for part in parts[len(ids):]:
            await _pace(config, pacer, message.customer_id)
            try:
                if isinstance(part, dict):
                    sent = await _send_file(bot, message.customer_id, part, media)
                else:
                    sent = await bot.send_message(chat_id=int(message.customer_id), text=part, parse_mode="HTML")
            except TelegramError as exc:
                raise _error(exc) from None
            ids.append(str(sent.message_id))
            if remember and len(ids) < len(parts):
                # Telegram has this part: remember it even through a Redis outage, or a retry resends it.
                await store.through_outage(lambda: store.set_ref("telegram-sent", entry, ",".join(ids)))
    finally:
        if own:
            await bot.shutdown()
    return ",".join(ids)


async def _send_file(bot: Bot, chat_id: str, attachment: dict, media) -> Message:
    if media is None:
        raise DeliveryError("chatgate cannot open files here (no media service)", permanent=True)
    got = await media.open(attachment)
    content_type = (got.content_type or str(attachment.get("content_type") or "")).split(";")[0].lower()
    if len(got.data) > MAX_UPLOAD:
        raise DeliveryError(f"{got.name} is {_megabytes(len(got.data))}; Telegram bots send files up to 50 MB",
                            permanent=True)
    if content_type in _PHOTO_TYPES and len(got.data) <= MAX_PHOTO:
        return await bot.send_photo(chat_id=int(chat_id), photo=got.data, filename=got.name)
    return await bot.send_document(chat_id=int(chat_id), document=got.data, filename=got.name)


async def set_webhook(config: TelegramConfig, public_url: str) -> str:
    """Register ``{public_url}/webhooks/telegram`` with the secret token; the URL set."""
    url = f"{public_url}/webhooks/telegram"
    bot = _bot(config)
    try:
        await bot.set_webhook(url=url, secret_token=config.secret_token, allowed_updates=["message"])
    finally:
        await bot.shutdown()
    return url


# The Bot API's getFile downloads at most this much; a bot uploads photos up to 10 MB, other files up to 50 MB.
MAX_DOWNLOAD = 20 * 1024 * 1024
MAX_PHOTO = 10 * 1024 * 1024
MAX_UPLOAD = 50 * 1024 * 1024
_PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")
_EXTENSIONS = {"photo": ".jpg", "voice": ".ogg", "video": ".mp4", "video note": ".mp4", "sticker": ".webp",
               "animation": ".mp4", "audio": ".mp3"}


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


async def fetch(config: TelegramConfig, attachment: dict, timeout: float = 30.0) -> File:
    """A customer's file from Telegram (``getFile``, then the file URL); permanent DeliveryError over 20 MB."""
    size = int(attachment.get("size") or 0)
    kind = str(attachment.get("kind") or "file")
    if size > MAX_DOWNLOAD:
        raise DeliveryError(f"the {kind} is {_megabytes(size)}, over the 20 MB a Telegram bot may download",
                            permanent=True)
    bot = _bot(config)
    try:
        try:
            info = await bot.get_file(str(attachment.get("ref", "")))
        except BadRequest as exc:
            if "too big" in exc.message.lower():
                raise DeliveryError(f"the {kind} is over the 20 MB a Telegram bot may download",
                                    permanent=True) from None
            raise _error(exc) from None
        except TelegramError as exc:
            raise _error(exc) from None
    finally:
        await bot.shutdown()
    if (info.file_size or 0) > MAX_DOWNLOAD:
        raise DeliveryError(f"the {kind} is {_megabytes(info.file_size or 0)}, over the 20 MB a Telegram bot may "
                            "download", permanent=True)
    path = info.file_path or ""  # python-telegram-bot makes it a URL under base_file_url
    url = path if path.startswith("http") else f"{_file_base(config)}{config.token}/{path}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.get(url) as response:
                if response.status >= 400:
                    raise DeliveryError(f"Telegram refused the file download ({response.status})",
                                        permanent=400 <= response.status < 500 and response.status != 429)
                data = await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryError(f"Telegram file download failed: {exc.__class__.__name__}") from None
    name = str(attachment.get("name") or "")
    if not name or "." not in name:
        suffix = path.rsplit("/", 1)[-1].rpartition(".")[2] if "." in path.rsplit("/", 1)[-1] else ""
        name = (name or kind.replace(" ", "_")) + (f".{suffix}" if suffix else _EXTENSIONS.get(kind, ""))
    return File(data, name, str(attachment.get("content_type") or ""))


def _file_base(config: TelegramConfig) -> str:
    """Where files are downloaded: ``…/file/bot`` next to the API's ``…/bot``."""
    base = config.api_url
    return base[:-3] + "file/bot" if base.endswith("/bot") else "https://api.telegram.org/file/bot"


class Telegram(Channel[TelegramConfig]):
    """The Telegram channel: ``POST /webhooks/telegram`` in, the Bot API out."""

    section = "telegram"
    labels = {CHANNEL: "Telegram"}
    fetches_files = True
    load_config = staticmethod(load_config)
    set_webhook = staticmethod(set_webhook)  # `chatgate telegram set-webhook`

    @staticmethod
    def refs(config: TelegramConfig) -> Refs:
        """What it keeps per conversation: the message ids of a long text's parts already sent."""
        return Refs(forget=by_message("telegram-sent"))

    def __init__(self, config: TelegramConfig, runtime: Runtime):
        super().__init__(config, runtime)
        self.pacer = Pacer.for_store(runtime.store)
        # One Bot (one HTTP connection pool) for the process's lifetime, made on the first send.
        self._bot: Bot | None = None

    def mount(self, app: web.Application, services: "Services") -> None:
        app.router.add_post("/webhooks/telegram", accepting(
            "application/json", webhook_handler(self.config, services.conversations)))

    async def send(self, message: OutboundMessage) -> str:
        if self._bot is None:
            self._bot = _bot(self.config)
        return await _send(self.config, message, self.runtime.store, self.runtime.media, self.pacer, bot=self._bot)

    async def aclose(self) -> None:
        """Close the Bot's connections (the process is stopping)."""
        if self._bot is not None:
            await self._bot.shutdown()
            self._bot = None

    async def fetch(self, attachment: dict) -> File:
        return await fetch(self.config, attachment, self.runtime.config.delivery.timeout)

    def check_attachment(self, channel: str, attachment: dict, customer_id: str = "") -> str:
        """Why the Bot API cannot send this file, or "" (photos up to 10 MB, other files up to 50 MB)."""
        size = int(attachment.get("size") or 0)
        if size > MAX_UPLOAD:
            return f"Telegram bots can send files up to 50 MB, and this one is {_megabytes(size)}"
        return ""
