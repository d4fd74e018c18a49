"""Signed session cookies and their CSRF tokens (stdlib hmac-sha256, no server-side session store).

The cookie holds the agent id, a random session id, a CSRF token and the time
of sign-in, signed with the console's secret. Signing out records the session id
as revoked (in Redis, until the cookie would expire anyway), so a copied cookie
dies with its session. Every POST must carry the CSRF token in ``X-CSRF-Token``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Callable

from aiohttp import web

__all__ = ["Session", "Sessions", "COOKIE", "CSRF_HEADER"]

COOKIE = "chatgate_console"
CSRF_HEADER = "X-CSRF-Token"
_VERSION = "v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    agent_id: str
    sid: str
    csrf: str
    issued: float


class Sessions:
    """Issues, reads and revokes the console's session cookies."""

    def __init__(self, redis, key: Callable[..., str], configured_secret: str, max_age: float, secure: bool,
                 clock: Callable[[], float] = time.time):
        self.redis = redis
        self.key = key
        self.configured_secret = configured_secret
        self.max_age = max_age
        self.secure = secure
        self.clock = clock
        self._secret: bytes | None = None

    async def secret(self) -> bytes:
        """The signing key: the configured one, else one generated once and shared through Redis."""
        if self._secret is None:
            if self.configured_secret:
                raw = self.configured_secret.encode()
            else:
                name = self.key("web", "secret")
                await self.redis.set(name, secrets.token_hex(32), nx=True)
                raw = await self.redis.get(name)
            self._secret = hmac.new(raw, b"chatgate web console session", hashlib.sha256).digest()
        return self._secret

    def _sign(self, secret: bytes, body: str) -> str:
        return _b64(hmac.new(secret, f"{_VERSION}.{body}".encode(), hashlib.sha256).digest())

    async def issue(self, response: web.StreamResponse, agent_id: str) -> Session:
        """Sign ``agent_id`` in: a fresh session (and CSRF token) in a cookie on ``response``."""
        session = Session(agent_id, secrets.token_urlsafe(16), secrets.token_urlsafe(24), self.clock())
        body = _b64(json.dumps({"a": session.agent_id, "s": session.sid, "c": session.csrf,
                                "t": session.issued}, separators=(",", ":")).encode())
        value = f"{_VERSION}.{body}.{self._sign(await self.secret(), body)}"
        response.set_cookie(COOKIE, value, max_age=int(self.max_age), path="/console", httponly=True,
                            samesite="Lax", secure=self.secure)
        return session

    async def read(self, request: web.Request) -> Session | None:
        """The request's valid session, or None (no cookie, bad signature, expired, signed out)."""
        value = request.cookies.get(COOKIE, "")
        parts = value.split(".")
        if len(parts) != 3 or parts[0] != _VERSION:
            return None
        _, body, signature = parts
        if not hmac.compare_digest(self._sign(await self.secret(), body), signature):
            return None
        try:
            data = json.loads(_unb64(body))
            session = Session(str(data["a"]), str(data["s"]), str(data["c"]), float(data["t"]))
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if not session.agent_id or not 0 <= self.clock() - session.issued < self.max_age:
            return None
        if await self.redis.exists(self.key("web", "revoked", session.sid)):
            return None
        return session

    async def revoke(self, session: Session, response: web.StreamResponse) -> None:
        """Sign out: the session id is refused from now on, and the cookie is cleared."""
        left = int(self.max_age - (self.clock() - session.issued)) + 1
        if left > 0:
            await self.redis.set(self.key("web", "revoked", session.sid), "1", ex=left)
        self.clear(response)

    def clear(self, response: web.StreamResponse) -> None:
        response.del_cookie(COOKIE, path="/console")

    @staticmethod
    def csrf_ok(request: web.Request, session: Session) -> bool:
        sent = request.headers.get(CSRF_HEADER, "")
        return bool(sent) and hmac.compare_digest(sent.encode(), session.csrf.encode())
