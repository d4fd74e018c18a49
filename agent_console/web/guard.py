"""What every console response shares: secure headers, JSON errors, the session and CSRF checks."""

from __future__ import annotations

import json
from typing import Awaitable, Callable, TypeVar

from aiohttp import web

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
    """The request's JSON object body ({} when there is none)."""
    if request.content_length and request.content_length > MAX_BODY:
        raise ApiError(413, "too_large", f"The request is larger than {MAX_BODY // 1024} KiB.")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise ApiError(413, "too_large", f"The request is larger than {MAX_BODY // 1024} KiB.")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "bad_json", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "The request body must be a JSON object.")
    return body


Handler = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]


class Guard:
    """Checks who is signed in; wraps the API's and the pages' handlers."""

    def __init__(self, sessions: Sessions, team):
        self.sessions = sessions
        self.team = team

    async def session(self, request: web.Request) -> Session | None:
        """The signed-in agent's session; None if signed out or no longer an agent."""
        session = await self.sessions.read(request)
        if session is None:
            return None
        if self.team.agent(session.agent_id) is None and not await self.team.is_agent(session.agent_id):
            return None
        return session

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
