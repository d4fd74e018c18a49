"""chatgate text rendered for each customer platform, in pieces within the platform's length limit.

Telegram gets Bot API HTML (``parse_mode="HTML"``), WhatsApp its own ``*bold*``
markers, SMS plain text. Each piece is rendered on its own, so its markup is
balanced, and no piece can exceed the platform's limit.
"""

from __future__ import annotations

import html
import re
from itertools import groupby
from typing import Iterable

from gateway import text as chatgate
from gateway.text import Span

__all__ = ["TELEGRAM_LIMIT", "TWILIO_LIMIT", "telegram_html", "telegram_visible_len", "whatsapp", "plain",
           "telegram_chunks", "whatsapp_chunks", "sms_chunks"]

# Telegram: 1-4096 characters after entity parsing, counted in UTF-16 code units.
TELEGRAM_LIMIT = 4096
# Twilio refuses a Body over 1,600 characters (SMS and WhatsApp).
TWILIO_LIMIT = 1600

_TAG = re.compile(r"<[^>]*>")


def _telegram_span(span: Span) -> str:
    body = html.escape(span.text, quote=False)
    # Telegram lets no other entity inside or around pre/code, and no code inside a link.
    if span.pre and not span.url:
        return f"<pre>{body}</pre>"
    if span.code and not span.url:
        return f"<code>{body}</code>"
    for flag, tag in (("strike", "s"), ("italic", "i"), ("bold", "b")):
        if getattr(span, flag):
            body = f"<{tag}>{body}</{tag}>"
    return body


def telegram_html(spans: Iterable[Span]) -> str:
    """Telegram Bot API HTML: ``<b> <i> <s> <code> <pre> <a href>``, with ``&<>`` (and ``"`` in href) escaped."""
    out = []
    for url, group in groupby((span for span in spans if span.text), key=lambda span: span.url):
        body = "".join(_telegram_span(span) for span in group)
        out.append(f'<a href="{html.escape(url, quote=True)}">{body}</a>' if url else body)
    return "".join(out)


def telegram_visible_len(rendered: str) -> int:
    """What Telegram counts against its limit: the text after entity parsing, in UTF-16 code units."""
    return chatgate.utf16_len(html.unescape(_TAG.sub("", rendered)))


def _whatsapp_link(body: str, url: str, label: str) -> str:
    address = url[7:] if url.lower().startswith("mailto:") else url
    # WhatsApp links bare URLs and addresses by itself.
    return address if label in (url, address) or not label.strip() else f"{body} ({url})"


def whatsapp(spans: Iterable[Span]) -> str:
    """WhatsApp formatting: ``*bold*``, ``_italic_``, ``~strike~``, monospace in triple backticks.

    WhatsApp has no escape character, so literal ``*`` or ``_`` in the text stay as they are.
    """
    return chatgate.render_with(
        spans, marks={"bold": ("*", "*"), "italic": ("_", "_"), "strike": ("~", "~")}, escape=lambda t: t,
        code=lambda t: f"```{t}```" if "```" not in t else None,
        pre=lambda t: f"```{t}```" if "```" not in t else None, link=_whatsapp_link)


def plain(spans: Iterable[Span]) -> str:
    """Plain text for SMS: no markup, links as ``label (url)``."""
    return chatgate.plain(spans)


def telegram_chunks(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """chatgate ``text`` as Telegram HTML messages (``parse_mode="HTML"``), in order, each within ``limit``."""
    return chatgate.split_spans(chatgate.parse(text), limit, telegram_html, measure=telegram_visible_len)


def _twilio_chunks(text: str, limit: int, render) -> list[str]:
    # UTF-16 units never undercount characters, whatever Twilio counts in.
    return chatgate.split_spans(chatgate.parse(text), limit, render, measure=chatgate.utf16_len)


def whatsapp_chunks(text: str, limit: int = TWILIO_LIMIT) -> list[str]:
    """chatgate ``text`` as WhatsApp message bodies, in order, each within ``limit``."""
    return _twilio_chunks(text, limit, whatsapp)


def sms_chunks(text: str, limit: int = TWILIO_LIMIT) -> list[str]:
    """chatgate ``text`` as plain SMS bodies, in order, each within ``limit``."""
    return _twilio_chunks(text, limit, plain)

