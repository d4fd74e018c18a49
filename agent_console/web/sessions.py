"""Signed session cookies and their CSRF tokens (stdlib hmac-sha256), checked against Redis on every use.

The cookie holds the agent id, a random session id, a CSRF token, the time of
sign-in, the agent's *session generation* and a fingerprint of their
``password_hash`` (an HMAC of it under the console's secret, so the cookie says
nothing about the hash), signed with the console's secret. Redis keeps one
generation number per agent: signing out records the session id as revoked and
bumps the generation, which ends every session of that agent, on every device and
web process, copied cookies included. A changed or removed ``password_hash`` no
longer matches the fingerprint (``Guard.still_valid`` compares it with the
running config), so a restart with the new config ends the old sessions too.
Every POST must carry the CSRF token in ``X-CSRF-Token``.
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
# v2: with the generation and the password fingerprint (v1 cookies are signed out).
_VERSION = "v2"


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
    # The agent's session generation when it was issued, and its password fingerprint.
    generation: int = 0
    fingerprint: str = ""


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

    def _generation_key(self, agent_id: str) -> str:
        return self.key("web", "session_generation", agent_id)

    async def fingerprint(self, password_hash: str) -> str:
        """What a session keeps of the agent's ``password_hash``: changes whenever the hash does."""
        digest = hmac.new(await self.secret(), b"password_hash\0" + password_hash.encode(), hashlib.sha256)
        return _b64(digest.digest()[:12])

    async def issue(self, response: web.StreamResponse, agent_id: str, password_hash: str = "") -> Session:
        """Sign ``agent_id`` in: a fresh session (and CSRF token) in a cookie on ``response``, tied to the agent's
        current session generation and to ``password_hash`` (their hash in the config, "" for none)."""
        raw = await self.redis.get(self._generation_key(agent_id))
        session = Session(agent_id, secrets.token_urlsafe(16), secrets.token_urlsafe(24), self.clock(),
                          int(raw or 0), await self.fingerprint(password_hash))
        body = _b64(json.dumps({"a": session.agent_id, "s": session.sid, "c": session.csrf,
                                "t": session.issued, "g": session.generation, "f": session.fingerprint},
                               separators=(",", ":")).encode())
        value = f"{_VERSION}.{body}.{self._sign(await self.secret(), body)}"
        response.set_cookie(COOKIE, value, max_age=int(self.max_age), path="/console", httponly=True,
                            samesite="Lax", secure=self.secure)
        return session

    async def read(self, request: web.Request) -> Session | None:
        """The request's valid session, or None (no cookie, bad signature, expired, signed out)."""
        session = await self.parse(request)
        if session is None or not await self.alive(session):
            return None
        return session

    async def parse(self, request: web.Request) -> Session | None:
        """The request's cookie, if it is one of ours and well formed (not yet checked against Redis)."""
        value = request.cookies.get(COOKIE, "")
        parts = value.split(".")
        if len(parts) != 3 or parts[0] != _VERSION:
            return None
        _, body, signature = parts
        if not hmac.compare_digest(self._sign(await self.secret(), body), signature):
            return None
        try:
            data = json.loads(_unb64(body))
            session = Session(str(data["a"]), str(data["s"]), str(data["c"]), float(data["t"]), int(data["g"]),
                              str(data["f"]))
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if not session.agent_id:
            return None
        return session

    async def alive(self, session: Session) -> bool:
        """Not expired, not signed out, and of the agent's current generation (one Redis round trip)."""
        if not 0 <= self.clock() - session.issued < self.max_age:
            return False
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(self.key("web", "revoked", session.sid))
            pipe.get(self._generation_key(session.agent_id))
            revoked, generation = await pipe.execute()
        return not revoked and int(generation or 0) == session.generation

    async def revoke(self, session: Session, response: web.StreamResponse) -> None:
        """Sign out: this session id is refused from now on, the agent's generation moves on (which ends their
        other sessions too, open event streams included), and the cookie is cleared."""
        await self.end_all(session.agent_id)
        left = int(self.max_age - (self.clock() - session.issued)) + 1
        if left > 0:
            await self.redis.set(self.key("web", "revoked", session.sid), "1", ex=left)
        self.clear(response)

    async def end_all(self, agent_id: str) -> None:
        """End every session of ``agent_id``, on every web process."""
        await self.redis.incr(self._generation_key(agent_id))

    def clear(self, response: web.StreamResponse) -> None:
        response.del_cookie(COOKIE, path="/console")

    @staticmethod
    def csrf_ok(request: web.Request, session: Session) -> bool:
        sent = request.headers.get(CSRF_HEADER, "")
        return bool(sent) and hmac.compare_digest(sent.encode(), session.csrf.encode())
