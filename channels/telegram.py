"""Telegram: the Bot API webhook in, ``sendMessage`` out, through python-telegram-bot."""

from __future__ import annotations

import hmac
import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from telegram import Bot, Message, Update
from telegram.error import BadRequest, Forbidden, InvalidToken, RetryAfter, TelegramError

from gateway.config import ConfigReader, url_setting
from gateway.message import Attachment, InboundMessage, OutboundMessage
from gateway.ports import DeliveryError, Runtime

from gateway.http import accepting

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


def load_config(t: ConfigReader) -> TelegramConfig:
    """The ``[telegram]`` table."""
    t.env_required = t.boolean("enabled", TelegramConfig.enabled)
    telegram = TelegramConfig(
        enabled=t.env_required,
        token=t.string("token", ""),
        secret_token=t.string("secret_token", ""),
        api_url=url_setting(t, "api_url", TelegramConfig.api_url),
        greeting=t.string("greeting", TelegramConfig.greeting),
    )
    if telegram.enabled:
        if not telegram.token:
            t.problem("token", "the bot token from @BotFather (or \"env:TELEGRAM_TOKEN\")")
        if not re.match(r"^[A-Za-z0-9_-]{1,256}$", telegram.secret_token):
            t.problem("secret_token", "1-256 characters A-Z a-z 0-9 _ - (Telegram's rule for the webhook secret)")
    t.unknown_keys({"enabled", "token", "secret_token", "api_url", "greeting"})
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


def parse(data: dict) -> InboundMessage | Start | None:
    """Normalize a Telegram update; None for updates chatgate does not handle.

    Raises ValueError when ``data`` is not a Telegram update at all.
    """
    if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
        raise ValueError("not a Telegram update: an object with an integer update_id is expected")
    try:
        update = Update.de_json(data, None)
        return _normalize(update)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, OSError, RecursionError) as exc:
        # python-telegram-bot does not check field types: a date out of range, a
        # text that is a number or a location that is a string fail in here.
        raise ValueError(f"malformed Telegram update ({exc.__class__.__name__}: {str(exc)[:200]})") from None


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
        attachments.append(Attachment("photo", largest.file_id, "image/jpeg"))
    if message.document:
        doc = message.document
        attachments.append(Attachment("document", doc.file_id, doc.mime_type or "", doc.file_name or ""))
    # Voice notes, audio, video and stickers: agents at least see that one came (and its file id).
    for kind in ("voice", "audio", "video", "video_note", "sticker", "animation"):
        media = getattr(message, kind)
        if media is not None:
            attachments.append(Attachment(kind.replace("_", " "), media.file_id, getattr(media, "mime_type", "") or ""))
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


def webhook_handler(config: TelegramConfig, conversations) -> "web.Handler":
    """The aiohttp handler for ``POST /webhooks/telegram``."""

    async def handle(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), config.secret_token.encode()):
            return web.json_response({"error": "bad or missing secret token"}, status=401)
        try:
            data = json.loads(await request.read())
            parsed = parse(data)
        except (ValueError, UnicodeDecodeError) as exc:
            return web.json_response({"error": f"malformed body: {exc}"}, status=400)
        except RecursionError:
            return web.json_response({"error": "malformed body: JSON nested too deeply"}, status=400)
        if isinstance(parsed, Start):
            await conversations.notify_customer(CHANNEL, parsed.customer_id, config.greeting)
        elif parsed is not None:
            await conversations.receive(parsed)
        return web.json_response({"ok": True})

    return handle


def _bot(config: TelegramConfig) -> Bot:
    return Bot(config.token, base_url=config.api_url)


async def _send(config: TelegramConfig, message: OutboundMessage) -> str:
    """Send a text to the customer's chat; the Telegram message id."""
    bot = _bot(config)
    try:
        sent = await bot.send_message(chat_id=int(message.customer_id), text=message.text)
    except RetryAfter as exc:
        retry = exc.retry_after
        seconds = retry.total_seconds() if hasattr(retry, "total_seconds") else float(retry)
        raise DeliveryError(f"Telegram rate limit: {exc.message}", retry_after=seconds) from None
    except (BadRequest, Forbidden, InvalidToken) as exc:
        # The chat is gone, the bot was blocked or the token is wrong: retrying won't help.
        raise DeliveryError(f"Telegram refused the message: {exc.message}", permanent=True) from None
    except TelegramError as exc:
        raise DeliveryError(f"Telegram is unreachable or failing: {exc.message}") from None
    finally:
        await bot.shutdown()
    return str(sent.message_id)


async def set_webhook(config: TelegramConfig, public_url: str) -> str:
    """Register ``{public_url}/webhooks/telegram`` with the secret token; the URL set."""
    url = f"{public_url}/webhooks/telegram"
    bot = _bot(config)
    try:
        await bot.set_webhook(url=url, secret_token=config.secret_token, allowed_updates=["message"])
    finally:
        await bot.shutdown()
    return url


class Telegram:
    """The Telegram channel: ``POST /webhooks/telegram`` in, the Bot API out."""

    section = "telegram"
    labels = {CHANNEL: "Telegram"}
    load_config = staticmethod(load_config)
    set_webhook = staticmethod(set_webhook)  # `chatgate telegram set-webhook`

    def __init__(self, config: TelegramConfig, runtime: Runtime):
        self.config = config

    def mount(self, app: web.Application, services: "Services") -> None:
        app.router.add_post("/webhooks/telegram", accepting(
            "application/json", webhook_handler(self.config, services.conversations)))

    async def send(self, message: OutboundMessage) -> str:
        return await _send(self.config, message)
