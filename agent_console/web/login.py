"""Signing in and out: the password form (rate-limited), one-time sign-in links, sign-out."""

from __future__ import annotations

import asyncio
import hashlib
import html
import secrets
import time
from importlib import resources
from urllib.parse import urlsplit

from aiohttp import web

from .guard import Guard, secure
from .passwords import DUMMY_HASH, verify_password
from .sessions import Sessions

__all__ = ["Login", "issue_login_token"]

_PAGE = resources.files(__package__).joinpath("static", "login.html").read_text()
MAX_FIELD = 200


def _token_key(store, token: str) -> str:
    return store.key("web", "login_token", hashlib.sha256(token.encode()).hexdigest())


async def issue_login_token(store, agent_id: str, ttl: float = 24 * 3600.0) -> str:
    """A one-time sign-in link's token for ``agent_id`` (``/console/login/token?t=...``), valid ``ttl`` seconds."""
    token = secrets.token_urlsafe(32)
    await store.redis.set(_token_key(store, token), agent_id, ex=max(1, int(ttl)))
    return token


def login_page(message: str = "", username: str = "", status: int = 200) -> web.Response:
    body = (_PAGE.replace("{{message}}", html.escape(message))
            .replace("{{message_class}}", "message" if message else "message hidden")
            .replace("{{username}}", html.escape(username, quote=True)))
    response = web.Response(text=body, content_type="text/html", status=status)
    response.headers["Cache-Control"] = "no-store"
    return secure(response)


class Login:
    def __init__(self, services, sessions: Sessions, guard: Guard, attempts_per_minute: int):
        self.services = services
        self.sessions = sessions
        self.guard = guard
        self.attempts = attempts_per_minute

    async def _too_many(self, *names: str) -> bool:
        """Count one attempt against each name; True if any is over the limit this minute."""
        store = self.services.store
        minute = int(time.time() // 60)
        async with store.redis.pipeline(transaction=False) as pipe:
            for name in names:
                key = store.key("web", "login_rate", str(minute), hashlib.sha256(name.encode()).hexdigest()[:32])
                pipe.incr(key)
                pipe.expire(key, 120)
            counts = (await pipe.execute())[::2]
        return any(count > self.attempts for count in counts)

    @staticmethod
    def _same_origin(request: web.Request) -> bool:
        """A form post from another site (login CSRF) carries its Origin; browsers always send one on POST."""
        origin = request.headers.get("Origin")
        if origin is None or origin == "null":
            return origin is None
        return urlsplit(origin).netloc == request.host

    async def form(self, request: web.Request) -> web.StreamResponse:
        if await self.guard.session(request) is not None:
            raise web.HTTPFound("/console")
        return login_page()

    async def submit(self, request: web.Request) -> web.StreamResponse:
        if not self._same_origin(request):
            return login_page("This sign-in form was sent from another site.", status=403)
        if request.content_type != "application/x-www-form-urlencoded":
            return login_page("Sign in with the form below.", status=400)
        form = await request.post()
        username = str(form.get("username", ""))[:MAX_FIELD].strip()
        password = str(form.get("password", ""))[:MAX_FIELD]
        if await self._too_many(f"ip:{request.remote}", f"user:{username.lower()}"):
            return login_page("Too many sign-in attempts. Wait a minute, then try again.", username, status=429)
        agent = self.services.team.agent(username) if username else None
        stored = agent.password_hash if agent is not None and agent.password_hash else DUMMY_HASH
        # scrypt takes ~50 ms of CPU: off the event loop.
        ok = await asyncio.to_thread(verify_password, password, stored)
        if agent is None or not agent.password_hash or not ok:
            return login_page("Wrong user name or password.", username, status=401)
        response = web.HTTPSeeOther("/console")
        await self.sessions.issue(response, agent.id)
        raise response

    async def token(self, request: web.Request) -> web.StreamResponse:
        token = request.query.get("t", "")
        if await self._too_many(f"ip:{request.remote}"):
            return login_page("Too many sign-in attempts. Wait a minute, then try again.", status=429)
        agent_id = None
        if token and len(token) <= MAX_FIELD:
            raw = await self.services.store.redis.getdel(_token_key(self.services.store, token))
            agent_id = raw.decode() if raw else None
        if not agent_id:
            return login_page("This sign-in link is not valid: it was used already or has expired. "
                              "Sign in with your user name and password.", status=401)
        response = web.HTTPSeeOther("/console")
        await self.sessions.issue(response, agent_id)
        raise response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        session = await self.sessions.read(request)
        if session is not None and not self.sessions.csrf_ok(request, session):
            return web.json_response({"error": "csrf", "message": "This request lacks the console's security "
                                      "token; reload the page."}, status=403)
        response = web.json_response({"ok": True})
        if session is not None:
            await self.sessions.revoke(session, response)
        else:
            self.sessions.clear(response)
        return response
