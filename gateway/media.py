"""Files agents send, for the platforms: opened from where they live, served at short-lived signed URLs.

An attachment an agent shares (``{kind, ref, content_type, name, size, source}``) stays where it
is (Slack, say): ``source`` names the console or channel that can open it (with its own
credentials). Channels that upload files open them here; platforms that fetch media by URL
(Twilio) get ``{server.public_url}/media/<token>``, an HMAC-signed token holding the attachment
and its expiry, served by ``GET /media/<token>`` from the source. Nothing is written to disk; the
signing key is a random secret kept in Redis, shared by every process.

A file an agent shares may be anything, so it is served as something a browser cannot run on our
origin: only passive types (images other than SVG, audio, video, PDF) inline, everything else as a
download (``Content-Disposition: attachment``), and always with ``X-Content-Type-Options: nosniff``
and ``Content-Security-Policy: sandbox``. ``server.media_url`` puts the links on another origin
altogether (a host of their own, away from the web console's cookies).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
from typing import TYPE_CHECKING, Iterable

from .message import File
from .ports import DeliveryError, Plugin
from .redis_text import as_text

if TYPE_CHECKING:
    from aiohttp.typedefs import Handler

    from .store import Store

__all__ = ["Media", "MEDIA_TTL", "LINK_TTL", "SAFE_HEADERS", "attach_sources", "served_as"]

# A MediaUrl is fetched by the platform within seconds; an hour covers its retries.
MEDIA_TTL = 3600
# A link in a text message is opened by a person: a week.
LINK_TTL = 7 * 24 * 3600

# What a browser shows inline without running anything: images (not SVG, which is a document with
# scripts), audio, video and PDF. Anything else is a download.
_PASSIVE = re.compile(r"^(image/(?!svg)[a-z0-9.+-]+|audio/[a-z0-9.+-]+|video/[a-z0-9.+-]+|application/pdf)$")
_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
_CHARSET = re.compile(r"^charset=\"?([A-Za-z0-9_.:-]{1,40})\"?$", re.IGNORECASE)
# Headers on every file served: no sniffing a type the file does not claim, and no script, form,
# plugin or same-origin access even if a browser renders it.
SAFE_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox",
                "Cache-Control": "private, no-store"}


def served_as(content_type: str | None) -> tuple[str, bool]:
    """The Content-Type a file is served with (a well-formed type, else application/octet-stream; its
    charset kept) and whether it may be shown inline (a passive type: ``_PASSIVE``)."""
    essence, _, params = (content_type or "").partition(";")
    essence = essence.strip().lower()
    if not _MIME.match(essence):
        return "application/octet-stream", False
    charset = next((m.group(1) for m in map(_CHARSET.match, (p.strip() for p in params.split(";"))) if m), "")
    return (f"{essence}; charset={charset}" if charset else essence), bool(_PASSIVE.match(essence))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Media:
    def __init__(self, store: "Store", base_url: str = ""):
        self.store = store
        # ``server.media_url``: where the links point, when not ``server.public_url`` (another origin).
        self.base_url = base_url.rstrip("/")
        # Console or channel name -> the plugin that opens the files shared there (``Plugin.open_file``).
        self.sources: dict[str, Plugin] = {}
        self._secret: bytes | None = None

    async def secret(self) -> bytes:
        if self._secret is None:
            key = self.store.key("media-secret")
            await self.store.redis.set(key, os.urandom(32).hex(), nx=True)
            self._secret = bytes.fromhex(as_text(await self.store.redis.get(key)))
        return self._secret

    async def open(self, attachment: dict) -> File:
        source = self.sources.get(str(attachment.get("source", "")))
        if source is None:
            raise DeliveryError(f"no enabled console or channel can open files from "
                                f"{attachment.get('source')!r}", permanent=True)
        return await source.open_file(attachment)

    async def token(self, attachment: dict, ttl: float = MEDIA_TTL, now: float | None = None) -> str:
        payload = {k: attachment.get(k, "") for k in ("source", "ref", "name", "content_type", "kind")}
        payload["exp"] = int((time.time() if now is None else now) + ttl)
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        signature = _b64(hmac.new(await self.secret(), body.encode(), hashlib.sha256).digest()[:20])
        return f"{body}.{signature}"

    async def url(self, public_url: str, attachment: dict, ttl: float = MEDIA_TTL) -> str:
        """The file's signed link: under ``server.media_url`` when set, else under ``public_url``."""
        return f"{(self.base_url or public_url).rstrip('/')}/media/{await self.token(attachment, ttl)}"

    async def verify(self, token: str, now: float | None = None) -> dict | None:
        """The attachment a token names, or None when it is forged, malformed or expired."""
        body, _, signature = token.partition(".")
        expected = _b64(hmac.new(await self.secret(), body.encode(), hashlib.sha256).digest()[:20])
        if not signature or not hmac.compare_digest(signature, expected):
            return None
        try:
            payload = json.loads(_unb64(body))
        except ValueError:
            return None
        if not isinstance(payload, dict) or (time.time() if now is None else now) > payload.get("exp", 0):
            return None
        return payload

    def handler(self) -> "Handler":
        from aiohttp import web

        async def serve(request: web.Request) -> web.StreamResponse:
            attachment = await self.verify(request.match_info["token"])
            if attachment is None:
                return web.json_response({"error": "this link is forged or has expired"}, status=403,
                                         headers=SAFE_HEADERS)
            try:
                got = await self.open(attachment)
            except DeliveryError as exc:
                return web.json_response({"error": f"the file cannot be fetched: {exc}"},
                                         status=404 if exc.permanent else 502, headers=SAFE_HEADERS)
            name = (got.name or "file").replace('"', "")
            content_type, inline = served_as(got.content_type)
            response = web.StreamResponse(headers={
                **SAFE_HEADERS,
                "Content-Type": content_type,
                "Content-Disposition": f"{'inline' if inline else 'attachment'}; filename*=UTF-8''{_quote(name)}",
            })
            response.content_length = len(got.data)
            await response.prepare(request)
            for start in range(0, len(got.data), 64 * 1024):
                await response.write(got.data[start:start + 64 * 1024])
            await response.write_eof()
            return response

        return serve


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def attach_sources(media: Media, plugins: Iterable[tuple[str, Plugin]]) -> None:
    """Every enabled console and channel is the source of the files shared there, by name (one that
    holds no files refuses to open any: ``Plugin.open_file``)."""
    for name, plugin in plugins:
        media.sources[name] = plugin
