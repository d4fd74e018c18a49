"""Signing in and out: the password form (rate-limited), one-time sign-in links, sign-out.

The limits are sliding windows (a Redis sorted set of attempt times per key, checked and
added to by one Lua call, so racing attempts on several web processes never overshoot):

- a user name from one client (``[server] trust_forwarded_for`` says what the client's
  address is) gets ``login_attempts`` failed sign-ins in any 60 s, then 429 with
  ``Retry-After`` until the oldest of them is a minute old;
- one client gets 4 × ``login_attempts`` failures a minute across all user names (and
  ``login_attempts`` tries of one-time links);
- a user name's failures from everywhere only slow it down: past 2 × ``login_attempts``
  in 15 minutes each attempt for it waits a little longer (at most ``MAX_DELAY``), so an
  attacker who knows an agent's name never locks them out: the right password from
  another client still signs in.

A successful sign-in takes its own attempt back out of the windows.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import math
import secrets
import time
from importlib import resources
from typing import Callable
from urllib.parse import urlsplit

from aiohttp import web

from gateway.clients import client_address

from .guard import ApiError, Guard, error, read_json, secure
from .passwords import DUMMY_HASH, verify_password
from .sessions import Sessions

__all__ = ["Login", "issue_login_token"]

_PAGE = resources.files(__package__).joinpath("static", "login.html").read_text()
MAX_FIELD = 200
WINDOW = 60.0
# A user name's failures from every client, for the backoff.
USER_WINDOW = 15 * 60.0
MAX_DELAY = 4.0
USER_KEEP = 1000

# KEYS: sorted sets of attempt times; ARGV: now, window, member, then each key's limit.
# All under their limits: the attempt is added to each and "0" comes back; else nothing is
# added and the answer is the seconds until the fullest key has room again.
_RESERVE = """
local now, window, member = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local wait = 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local limit = tonumber(ARGV[3 + i])
  local count = redis.call('ZCARD', key)
  if count >= limit then
    local entry = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    local left = tonumber(entry[2]) + window - now
    if left > wait then wait = left end
  end
end
if wait > 0 then return tostring(wait) end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, math.ceil(window * 1000) + 1000)
end
return '0'
"""


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


def _wants_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return request.content_type == "application/json" or ("application/json" in accept and "text/html" not in accept)


class TooMany(Exception):
    def __init__(self, retry_after: int):
        super().__init__(retry_after)
        self.retry_after = retry_after


class Login:
    def __init__(self, services, sessions: Sessions, guard: Guard, attempts_per_minute: int,
                 clock: Callable[[], float] = time.time):
        self.services = services
        self.sessions = sessions
        self.guard = guard
        self.attempts = attempts_per_minute
        self.clock = clock
        self._reserve = services.store.redis.register_script(_RESERVE)

    def _key(self, kind: str, *parts: str) -> str:
        digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
        return self.services.store.key("web", "login", kind, digest)

    def client(self, request: web.Request) -> str:
        return client_address(request, self.services.config.server.trust_forwarded_for)

    async def _take(self, limits: dict[str, int]) -> str:
        """One attempt against each key's sliding window: its member, or TooMany when any is full."""
        now = self.clock()
        member = f"{now:.6f}:{secrets.token_hex(4)}"
        wait = float(await self._reserve(keys=list(limits), args=[repr(now), WINDOW, member, *limits.values()]))
        if wait > 0:
            raise TooMany(max(1, math.ceil(wait)))
        return member

    async def _give_back(self, keys, member: str) -> None:
        """A successful attempt does not count against the limits."""
        async with self.services.store.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zrem(key, member)
            await pipe.execute()

    async def _failed(self, username: str) -> None:
        key = self._key("user", username)
        now = self.clock()
        async with self.services.store.redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, "-inf", now - USER_WINDOW)
            pipe.zadd(key, {f"{now:.6f}:{secrets.token_hex(4)}": now})
            pipe.zremrangebyrank(key, 0, -USER_KEEP - 1)  # a flood from many clients: the newest are enough
            pipe.expire(key, int(USER_WINDOW) + 1)
            await pipe.execute()

    async def delay(self, username: str) -> float:
        """The backoff for a user name everyone is failing on: grows with its recent failures, never a lock."""
        key = self._key("user", username)
        now = self.clock()
        failures = await self.services.store.redis.zcount(key, now - USER_WINDOW, "+inf")
        over = failures - 2 * self.attempts
        if over <= 0:
            return 0.0
        return min(MAX_DELAY, 0.05 * 2 ** min(over, 10))

    @staticmethod
    def _too_many(request: web.Request, retry_after: int, username: str = "") -> web.StreamResponse:
        message = f"Too many sign-in attempts. Wait {retry_after} seconds, then try again."
        if _wants_json(request):
            response: web.StreamResponse = error(429, "too_many_attempts", message)
        else:
            response = login_page(message, username, status=429)
        response.headers["Retry-After"] = str(retry_after)
        return response

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
        """The form (answered with the page or a redirect), or the same as JSON (answered in JSON)."""
        as_json = _wants_json(request)
        if not self._same_origin(request):
            if as_json:
                return error(403, "cross_site", "This sign-in was sent from another site.")
            return login_page("This sign-in form was sent from another site.", status=403)
        if request.content_type == "application/json":
            try:
                fields = await read_json(request)
            except ApiError as exc:
                return error(exc.status, exc.code, exc.message)
        elif request.content_type == "application/x-www-form-urlencoded":
            fields = dict(await request.post())
        elif as_json:
            return error(400, "bad_request", "Send the user name and password as JSON or as the form.")
        else:
            return login_page("Sign in with the form below.", status=400)
        username = str(fields.get("username", ""))[:MAX_FIELD].strip()
        password = str(fields.get("password", ""))[:MAX_FIELD]
        user = username.lower()
        client = self.client(request)
        limits = {self._key("pair", user, client): self.attempts, self._key("client", client): 4 * self.attempts}
        try:
            member = await self._take(limits)
        except TooMany as exc:
            return self._too_many(request, exc.retry_after, username)
        pause = await self.delay(user)
        if pause:
            await asyncio.sleep(pause)
        agent = self.services.team.agent(username) if username else None
        stored = agent.password_hash if agent is not None and agent.password_hash else DUMMY_HASH
        # scrypt takes ~50 ms of CPU: off the event loop.
        ok = await asyncio.to_thread(verify_password, password, stored)
        if agent is None or not agent.password_hash or not ok:
            await self._failed(user)
            if as_json:
                return error(401, "wrong_password", "Wrong user name or password.")
            return login_page("Wrong user name or password.", username, status=401)
        await self._give_back(limits, member)
        if as_json:
            answer = web.json_response({"ok": True})
            answer.headers["Cache-Control"] = "no-store"
            await self.sessions.issue(answer, agent.id, agent.password_hash)
            return answer
        redirect = web.HTTPSeeOther("/console")
        await self.sessions.issue(redirect, agent.id, agent.password_hash)
        raise redirect

    async def token(self, request: web.Request) -> web.StreamResponse:
        token = request.query.get("t", "")
        limits = {self._key("token", self.client(request)): self.attempts}
        try:
            member = await self._take(limits)
        except TooMany as exc:
            return self._too_many(request, exc.retry_after)
        agent_id = None
        if token and len(token) <= MAX_FIELD:
            raw = await self.services.store.redis.getdel(_token_key(self.services.store, token))
            agent_id = raw.decode() if raw else None
        if not agent_id:
            return login_page("This sign-in link is not valid: it was used already or has expired. "
                              "Sign in with your user name and password.", status=401)
        await self._give_back(limits, member)
        agent = self.services.team.agent(agent_id)
        response = web.HTTPSeeOther("/console")
        await self.sessions.issue(response, agent_id, agent.password_hash if agent is not None else "")
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
