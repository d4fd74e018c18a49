"""The agents' web console: the Contact Center page, served by chatgate's own aiohttp app.

Agents sign in with the ``password_hash`` of their ``[[agents]]`` entry (or a
one-time link); the page lists Inbox and Assigned, opens a chat with the
controls the core offers (``views.py``) and the saved replies
(``saved_replies.py``), gives admins their panel and the Reports page
(``reports.py``), and follows every change live (``live.py``). Everything it
changes goes through ``services.conversations``; it keeps no state but its
sessions and its event stream.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.events import AgentEvent
from gateway.fanout import FanOut, Slots, process_slots
from gateway.message import Refused
from gateway.ports import Console, Runtime
from gateway.refusals import render

from .config import WebConfig, load_web_config
from .guard import Guard, secure
from .live import MAX_STREAMS_PER_SESSION, SESSION_CHECK_EVERY, EventLog, Figures, console_fanout, sse_handler
from .login import Login, issue_login_token
from .passwords import hash_password, verify_password
from .reports import mount as mount_reports
from .saved_replies import mount as mount_saved_replies
from .sessions import Sessions
from .views import ConsoleApi

if TYPE_CHECKING:
    from gateway.services import Services
    from gateway.store import Store

__all__ = ["WebConsole", "WebConfig", "hash_password", "verify_password", "issue_login_token"]

STATIC = resources.files(__package__).joinpath("static")
_TYPES = {".html": "text/html", ".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml",
          ".png": "image/png", ".ico": "image/x-icon"}
# The files the console serves, read once: nothing else under /console/static exists.
_ASSETS = {item.name: item.read_bytes() for item in STATIC.iterdir()
           if item.is_file() and "." + item.name.rsplit(".", 1)[-1] in _TYPES}
PING_EVERY = 15.0


def _events_key(store: "Store") -> str:
    return store.key("web", "events")


class WebConsole(Console[WebConfig]):
    """The Console port for the browser."""

    section = "web"
    name = "web"
    load_config = staticmethod(load_web_config)
    # For the CLI: `chatgate hash-password` and the one-time sign-in link at start-up.
    hash_password = staticmethod(hash_password)
    issue_login_token = staticmethod(issue_login_token)

    def __init__(self, config: WebConfig, runtime: Runtime):
        super().__init__(config, runtime)
        # How long an SSE connection waits for an event before a ping (tests shorten it).
        self.ping_every = PING_EVERY
        # The time the sign-in limits count in (tests pin it).
        self.clock = time.time
        self.fanout: FanOut | None = None  # this process's reader of the event stream, once mounted

    # -- the web side ----------------------------------------------------------

    def mount(self, app: web.Application, services: "Services") -> None:
        store = services.store
        public_url = services.config.server.public_url
        sessions = Sessions(store.redis, store.key, self.config.session_secret, self.config.session_max_age,
                            secure=self.config.cookie_secure or public_url.startswith("https://"))
        guard = Guard(sessions, services.team)
        api = ConsoleApi(services, lambda refused: self.refusal(refused, services))
        login = Login(services, sessions, guard, self.config.login_attempts, clock=lambda: self.clock())
        events = EventLog(store.redis, _events_key(store))
        # One reader of the event stream for this process; every console stream takes its events in memory.
        fanout = console_fanout(services.redis_url, _events_key(store))
        fanout.attach(app)
        self.fanout = fanout
        figures = Figures(api.figures)
        per_process = process_slots(app, services.config.server.max_streams)
        per_session = Slots(MAX_STREAMS_PER_SESSION, "too_many_streams",
                            "The console is open in too many tabs; close one and reload.")

        async def console_page(request: web.Request) -> web.StreamResponse:
            if await guard.session(request) is None:
                raise web.HTTPFound("/console/login")
            response = web.Response(body=_ASSETS["console.html"], content_type="text/html")
            response.headers["Cache-Control"] = "no-store"
            return response

        async def asset(request: web.Request) -> web.StreamResponse:
            name = request.match_info["name"]
            if name not in _ASSETS:
                raise web.HTTPNotFound()
            response = web.Response(body=_ASSETS[name], content_type=_TYPES["." + name.rsplit(".", 1)[-1]])
            response.headers["Cache-Control"] = "no-cache"
            return response

        async def live(request: web.Request, session) -> web.StreamResponse:
            async def signed_in() -> bool:
                return await guard.still_valid_lately(session, SESSION_CHECK_EVERY / 2)

            return await sse_handler(events, fanout, lambda: self.ping_every, figures, secure,
                                     [(per_session, session.sid), (per_process, None)], signed_in)(request)

        page = guard.page
        app.router.add_get("/console", page(console_page))
        app.router.add_get("/console/", page(lambda request: _redirect("/console")))
        # The product's front door: chatgate's own address opens the console.
        app.router.add_get("/", page(lambda request: _redirect("/console")))
        app.router.add_get("/console/static/{name}", page(asset))
        app.router.add_get("/console/login", page(login.form))
        app.router.add_post("/console/login", page(login.submit))
        app.router.add_get("/console/login/token", page(login.token))
        app.router.add_post("/console/logout", page(login.logout))
        app.router.add_get("/console/api/me", guard.api(api.me))
        app.router.add_get("/console/api/lists", guard.api(api.lists))
        app.router.add_get("/console/api/events", guard.api(live))
        app.router.add_get("/console/api/chats/{id}", guard.api(api.chat))
        app.router.add_post("/console/api/chats/{id}/{action}", guard.api(api.action, post=True))
        app.router.add_get("/console/api/admin", guard.api(api.admin))
        app.router.add_post("/console/api/admin", guard.api(api.admin_post, post=True))
        mount_saved_replies(app, guard, services, lambda refused: self.refusal(refused, services))
        mount_reports(app, guard, services)

    # -- the worker side ---------------------------------------------------------

    # No ``delivered`` of its own: the browsers re-read what they show, so a batch needs no summary.
    async def deliver(self, event: AgentEvent, services: "Services") -> None:
        """Tell every browser (through the stream) that this conversation changed."""
        await EventLog(services.store.redis, _events_key(services.store)).publish(
            event.conversation_id, event.kind.value, event.seq, event.by, event.to)

    def refusal(self, refused: Refused, services: "Services") -> str:
        """The catalogue's sentence with agents by their display names; one that names no one is the core's
        own (it may say more: which file the platform cannot take, and why)."""
        if not refused.detail and refused.reason:
            return refused.reason
        return render(refused.code, refused.detail, who=services.team.name)


async def _redirect(location: str) -> web.StreamResponse:
    raise web.HTTPFound(location)
