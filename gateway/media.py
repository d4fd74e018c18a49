"""Files agents send, for the platforms: opened from where they live, served at short-lived signed URLs.

An attachment an agent shares (``{kind, ref, content_type, name, size, source}``) stays where it
is (Slack, say): ``source`` names the console or channel that can open it (with its own
credentials). Channels that upload files open them here; platforms that fetch media by URL
(Twilio) get ``{server.public_url}/media/<token>``, an HMAC-signed token holding the attachment
and its expiry, served by ``GET /media/<token>`` from the source. Nothing is written to disk; the
signing key is a random secret kept in Redis, shared by every process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from typing import TYPE_CHECKING, Iterable

from .message import File
from .ports import DeliveryError, Plugin
from .redis_text import as_text

if TYPE_CHECKING:
    from aiohttp.typedefs import Handler

    from .store import Store

__all__ = ["Media", "MEDIA_TTL", "LINK_TTL", "attach_sources"]

# A MediaUrl is fetched by the platform within seconds; an hour covers its retries.
MEDIA_TTL = 3600
# A link in a text message is opened by a person: a week.
LINK_TTL = 7 * 24 * 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Media:
    def __init__(self, store: "Store"):
        self.store = store
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
        return f"{public_url.rstrip('/')}/media/{await self.token(attachment, ttl)}"

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
                return web.json_response({"error": "this link is forged or has expired"}, status=403)
            try:
                got = await self.open(attachment)
            except DeliveryError as exc:
                return web.json_response({"error": f"the file cannot be fetched: {exc}"},
                                         status=404 if exc.permanent else 502)
            name = (got.name or "file").replace('"', "")
            response = web.StreamResponse(headers={
                "Content-Type": got.content_type or "application/octet-stream",
                "Content-Disposition": f"inline; filename*=UTF-8''{_quote(name)}",
                "Cache-Control": "private, no-store",
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
