"""What every console response shares: secure headers, JSON errors, the session and CSRF checks."""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Awaitable, Callable, TypeVar

from aiohttp import web

from gateway.http import BadBody, read_json_object

from .sessions import Session, Sessions

__all__ = ["SECURE_HEADERS", "secure", "ApiError", "error", "Guard", "read_json", "MAX_BODY"]

SECURE_HEADERS = {
    # No inline script or style anywhere: everything comes from /console/static.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; media-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

# A reply or note is at most a few KiB; anything much larger is refused before it is read.
MAX_BODY = 64 * 1024

R = TypeVar("R", bound=web.StreamResponse)


def secure(response: R) -> R:
    """The response with the console's security headers (those it does not set itself)."""
    for name, value in SECURE_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


class ApiError(Exception):
    """An answer of the JSON API other than 200: ``{"error": code, "message": plain text}``."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error(status: int, code: str, message: str) -> web.Response:
    response = web.json_response({"error": code, "message": message}, status=status)
    response.headers["Cache-Control"] = "no-store"
    return secure(response)


async def read_json(request: web.Request) -> dict:
    """The request's JSON object body ({} when there is none), read by the core's reader
    (``gateway.http.read_json_object``): too large 413, not UTF-8, not JSON, nested too deep or not an
    object 400 ``bad_json``, text with a lone surrogate 400 ``invalid_character``."""
    try:
        return await read_json_object(request, MAX_BODY, allow_empty=True)
    except BadBody as bad:
        if bad.status == 413:
            raise ApiError(413, "too_large", f"The request is larger than {MAX_BODY // 1024} KiB.") from None
        code = "invalid_character" if bad.code == "invalid_character" else "bad_json"
        raise ApiError(bad.status, code, bad.reason) from None


Handler = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]


class Guard:
    """Checks who is signed in; wraps the API's and the pages' handlers."""

    def __init__(self, sessions: Sessions, team):
        self.sessions = sessions
        self.team = team
        self._checks: dict[str, tuple[float, asyncio.Future]] = {}  # session id -> (when, still valid?)

    async def session(self, request: web.Request) -> Session | None:
        """The signed-in agent's session; None if signed out or no longer an agent."""
        session = await self.sessions.parse(request)
        if session is None or not await self.still_valid(session):
            return None
        return session

    async def still_valid(self, session: Session) -> bool:
        """Whether ``session`` may still act: not expired or signed out (this session or all of the agent's),
        still an agent, and their ``password_hash`` in the running config is the one it was issued with.
        Long-lived handlers (the event stream) call it every few seconds."""
        agent = self.team.agent(session.agent_id)
        if agent is None and not await self.team.is_agent(session.agent_id):
            return False
        current = await self.sessions.fingerprint(agent.password_hash if agent is not None else "")
        if not hmac.compare_digest(current, session.fingerprint):
            return False
        return await self.sessions.alive(session)

    async def still_valid_lately(self, session: Session, within: float) -> bool:
        """``still_valid``, asked of Redis at most once per ``within`` seconds per session in this process:
        the streams of one agent's tabs share one check, and a team's streams cost a read per session."""
        now = time.monotonic()
        if len(self._checks) > 1024:
            self._checks = {sid: entry for sid, entry in self._checks.items() if now - entry[0] < within}
        entry = self._checks.get(session.sid)
        if entry is None or now - entry[0] >= within or (entry[1].done() and entry[1].exception() is not None):
            entry = (now, asyncio.ensure_future(self.still_valid(session)))
            self._checks[session.sid] = entry
        return await asyncio.shield(entry[1])

    def api(self, handler: Handler, post: bool = False) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """A JSON API handler: signed in (401), CSRF on POST (403), errors as JSON, secure headers."""

        async def handle(request: web.Request) -> web.StreamResponse:
            session = await self.session(request)
            if session is None:
                return error(401, "signed_out", "You are signed out. Sign in again.")
            if post and not self.sessions.csrf_ok(request, session):
                return error(403, "csrf", "This request lacks the console's security token; reload the page.")
            try:
                response = await handler(request, session)
            except ApiError as exc:
                return error(exc.status, exc.code, exc.message)
            if not response.prepared:
                response.headers.setdefault("Cache-Control", "no-store")
                secure(response)
            return response

        return handle

    @staticmethod
    def page(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        """A page handler: secure headers on every answer, redirects included."""

        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                secure(exc)
                raise
            return secure(response) if not response.prepared else response

        return handle
