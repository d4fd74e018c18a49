"""The console's JSON API: lists, one chat, its controls, the admin panel.

A chat's controls are the core's (``gateway.operations.available``): the page
renders those and nothing else. Each control is ``POST .../chats/{id}/{control}``
with the arguments its declaration names, read from the JSON body by their kinds
and run by ``Conversations.perform`` as the signed-in agent; the core decides,
and a refusal comes back as 409 (403 for rights) with the catalogue's sentence.
Nothing here changes a conversation by itself.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from aiohttp import web

from gateway.conversations import BadArguments
from gateway.message import Refused
from gateway.operations import OPERATIONS, Argument, Operation, available, controls
from gateway.store import MAX_LIMIT, MAX_OFFSET
from gateway.team import Role

from .guard import ApiError, read_json
from .sessions import Session

__all__ = ["ConsoleApi", "MAX_TEXT"]

VIA = "web"  # the console name the core records with each action
MAX_TEXT = 4000  # characters in one reply or note; platforms split longer ones anyway
_CHANNEL = re.compile(r"^[a-z0-9_-]{0,40}$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_RIGHTS = {"not_agent", "not_admin"}
OPEN = ("active", "resolved")
_KINDS = {str: "text", bool: "bool", int: "int", list: "list"}  # an argument's kind, as the page reads it


def _state(conversation) -> str:
    state = conversation.state
    return getattr(state, "value", state)


def _int(query, name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad_query", f"{name} must be a whole number.") from None
    if not low <= value <= high:
        raise ApiError(400, "bad_query", f"{name} must be between {low} and {high}.")
    return value


class ConsoleApi:
    """Handlers of ``/console/api/...`` for one web process."""

    def __init__(self, services, refusal: Callable[[Refused], str]):
        self.services = services
        self.refusal = refusal

    @property
    def store(self):
        return self.services.store

    @property
    def team(self):
        return self.services.team

    def _now(self) -> float:
        return self.services.conversations.clock()

    def _labels(self) -> dict[str, str]:
        return dict(getattr(self.services, "channel_labels", {}) or {})

    def _topics(self) -> list[str]:
        names = [rule.name for rule in self.services.config.topics]
        return names + ([] if "general" in names else ["general"])

    async def figures(self) -> dict[str, Any]:
        figures = await self.store.figures(self._now())
        return {"waiting": figures.waiting, "median_first_response": figures.median_first_response,
                "average_rating": figures.average_rating, "ratings": figures.ratings}

    # -- reads -----------------------------------------------------------------

    async def me(self, request: web.Request, session: Session) -> web.Response:
        agent = session.agent_id
        return web.json_response({"agent": {"id": agent, "name": self.team.name(agent),
                                            "admin": await self.team.is_admin(agent)},
                                  "csrf": session.csrf})

    def _row(self, conversation, now: float, labels: dict[str, str]) -> dict[str, Any]:
        c = conversation
        return {
            "id": c.id, "customer": c.name or c.phone or "Customer", "state": _state(c),
            "first_response": c.first_response, "duration": c.duration(now), "messages": c.message_count,
            "rating": c.rating, "channel": c.channel, "channel_label": labels.get(c.channel, c.channel),
            "topic": c.topic or "general", "undelivered": c.undelivered, "updated_at": c.updated_at,
            "assignee": c.assignee, "assignee_name": self.team.name(c.assignee) if c.assignee else "",
            # Escalated rows are highlighted (with a sound); team-only chats say so.
            "escalations": c.escalations, "team_only": c.team_only,
        }

    async def room(self) -> list[dict[str, Any]]:
        """Each configured agent's active chats against their capacity (0: unlimited)."""
        routes = self.services.conversations.routes
        agents = list(self.team.agents)
        if not any(routes.capacity(a) for a in agents):
            return []
        counts = await self.store.active_counts(agents)
        return [{"id": a, "name": self.team.name(a), "active": counts.get(a, 0), "capacity": routes.capacity(a)}
                for a in agents]

    async def lists(self, request: web.Request, session: Session) -> web.Response:
        query = request.query
        tab = query.get("tab", "inbox")
        if tab not in ("inbox", "assigned"):
            raise ApiError(400, "bad_query", "tab must be inbox or assigned.")
        channel, topic = query.get("channel", ""), query.get("topic", "")
        labels = self._labels()
        # Not only the enabled channels: chats of a channel switched off since are still listed.
        if not _CHANNEL.match(channel):
            raise ApiError(400, "bad_query", "channel must be a channel name like sms or telegram.")
        if len(topic) > 100:
            raise ApiError(400, "bad_query", "That topic name is too long.")
        # Pages go at most MAX_OFFSET deep: a page's cost in Redis grows with its offset (gateway/store.py).
        if query.get("offset", "").isdigit() and int(query["offset"]) > MAX_OFFSET:
            raise ApiError(400, "bad_query", f"Pages go back at most {MAX_OFFSET:,} chats (offset 0 to "
                           f"{MAX_OFFSET}); filter by channel or topic to find older ones.")
        offset = _int(query, "offset", 0, 0, MAX_OFFSET)
        limit = _int(query, "limit", 20, 1, MAX_LIMIT)
        agent = session.agent_id
        served = await self.services.conversations.routes.served_topics(agent)
        inbox = await self.store.inbox_for(agent, channel=channel, topic=topic,
                                           offset=offset if tab == "inbox" else 0, limit=limit, served=served)
        assigned = await self.store.assigned_for(agent, channel=channel, topic=topic,
                                                 offset=offset if tab == "assigned" else 0, limit=limit)
        page = inbox if tab == "inbox" else assigned
        now = self._now()
        return web.json_response({
            "tab": tab, "rows": [self._row(c, now, labels) for c in page.conversations],
            "total": page.total, "offset": offset, "limit": limit,
            # No Next past the deepest page the API serves.
            "has_more": page.has_more and offset + limit <= MAX_OFFSET, "max_offset": MAX_OFFSET,
            "counts": {"inbox": inbox.total, "assigned": assigned.total},
            "figures": await self.figures(),
            "channels": [{"name": name, "label": label} for name, label in labels.items()],
            "topics": self._topics(),
            "room": await self.room(),
        })

    async def chat_json(self, conversation_id: str, agent: str) -> dict[str, Any]:
        c = await self.store.get(conversation_id)
        if c is None:
            raise ApiError(404, "not_found", "This chat does not exist (any more).")
        history = await self.store.history(conversation_id)
        role = await self.team.role(agent)
        admin = role >= Role.ADMIN
        state = _state(c)
        mine = c.assignee == agent and state in OPEN
        # What the core says this agent may use on this chat now; the page shows these and nothing else.
        usable = available(c, agent, role)
        names = {op.name for op in usable}
        labels = self._labels()
        customer = c.name or c.phone or "Customer"

        def by_name(by: str) -> str:
            if by == "customer":
                return customer
            if by in ("system", ""):
                return "chatgate"
            return self.team.name(by)

        return {
            "id": c.id, "state": state, "channel": c.channel, "channel_label": labels.get(c.channel, c.channel),
            "topic": c.topic or "general", "created_at": c.created_at, "updated_at": c.updated_at,
            "first_response": c.first_response, "duration": c.duration(self._now()), "messages": c.message_count,
            "rating": c.rating, "undelivered": c.undelivered,
            "assignee": c.assignee, "assignee_name": self.team.name(c.assignee) if c.assignee else "",
            "previous_agent": c.previous_agent,
            "profile": {"name": c.name, "query": c.query, "phone": c.phone, "location": c.location},
            "history": [{
                "seq": e.seq, "direction": e.direction, "text": e.text, "by": e.by, "by_name": by_name(e.by),
                "at": e.at, "status": e.status, "detail": e.detail,
                # Kinds and names only: refs can be platform file ids, which the browser has no use for.
                "attachments": [{"kind": str(a.get("kind", "file")), "name": str(a.get("name", ""))}
                                for a in e.attachments if isinstance(a, dict)],
            } for e in history],
            "sound": await self.store.sound(c.id, agent) if mine else False,
            "mine": mine,
            # Every declared control: whether this agent may use it now. "back" (A) is the page's own
            # navigation to the agent's chat: there while the chat is theirs to leave.
            "controls": {"back": "leave" in names, **{op.name: op.name in names for op in controls()}},
            # The usable ones as declared, so the page can show one it has no UI of its own for.
            "available": [_declared(op) for op in usable],
            "agents": [{"id": a.id, "name": a.display_name} for a in self.team.agents.values()]
            if admin or mine else [],
            # Who held the chat when, and its first-response escalations.
            "holders": [{"agent": h.get("agent", ""), "name": self.team.name(h.get("agent", "")),
                         "from": h.get("from"), "to": h.get("to") or None} for h in c.holders],
            "escalations": c.escalations, "team_only": c.team_only,
        }

    async def chat(self, request: web.Request, session: Session) -> web.Response:
        return web.json_response(await self.chat_json(request.match_info["id"], session.agent_id))

    # -- the controls ------------------------------------------------------------

    async def action(self, request: web.Request, session: Session) -> web.Response:
        conversation_id, name = request.match_info["id"], request.match_info["action"]
        agent = session.agent_id
        operation = OPERATIONS.get(name)
        if operation is None or not operation.is_control:
            raise ApiError(404, "unknown_action", f"There is no control {name!r}.")
        arguments = _arguments(operation, await read_json(request))
        try:
            await self.services.conversations.perform(name, conversation_id, agent, via=VIA, **arguments)
        except BadArguments as bad:
            raise ApiError(400, "bad_body", str(bad)) from None
        except Refused as refused:
            status = 403 if refused.code in _RIGHTS else 409
            raise ApiError(status, refused.code, self.refusal(refused)) from None
        return web.json_response({"ok": True, "chat": await self.chat_json(conversation_id, agent)})

    # -- admins ------------------------------------------------------------------

    async def _admin_json(self) -> dict[str, Any]:
        setting = await self.services.conversations.auto_close_setting()
        return {
            "auto_close": {"enabled": setting.enabled, "after": setting.after},
            "agents": [{"id": a.id, "name": a.display_name, "admin": a.admin,
                        "slack": a.identities.get("slack", ""), "web_sign_in": bool(a.password_hash)}
                       for a in self.team.agents.values()],
        }

    async def admin(self, request: web.Request, session: Session) -> web.Response:
        if not await self.team.is_admin(session.agent_id):
            raise ApiError(403, "not_admin", "Only a chatgate admin can see the admin panel.")
        return web.json_response(await self._admin_json())

    async def admin_post(self, request: web.Request, session: Session) -> web.Response:
        body = await read_json(request)
        enabled, after = body.get("auto_close"), body.get("after")
        if not isinstance(enabled, bool):
            raise ApiError(400, "bad_body", "auto_close must be true or false.")
        if isinstance(after, bool) or not isinstance(after, (int, float)):
            raise ApiError(400, "bad_body", "after must be a number of seconds.")
        try:
            affected = await self.services.conversations.set_auto_close(enabled, float(after), by=session.agent_id)
        except Refused as refused:
            status = 403 if refused.code in _RIGHTS else 409
            raise ApiError(status, refused.code, self.refusal(refused)) from None
        return web.json_response({"ok": True, "affected": affected, **await self._admin_json()})


# -- a control's arguments from the JSON body -------------------------------------------


def _declared(op: Operation) -> dict[str, Any]:
    """A control as the page sees it: its name, label and arguments (with the body's names)."""
    return {"name": op.name, "label": op.label,
            "arguments": [{"name": _BODY_NAMES.get(a.name, a.name), "kind": _KINDS.get(a.kind, "text"),
                           "label": a.label, "required": a.required}
                          for a in op.arguments if a.name not in _NOT_FROM_THE_PAGE]}


def _text(value: Any, argument: Argument) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "empty", "Write something first.")
    if len(value) > MAX_TEXT:
        raise ApiError(413, "too_long", f"That is longer than {MAX_TEXT} characters; split it into parts.")
    return value.strip()


def _client_id(value: Any, argument: Argument) -> str:
    """The browser's id of a send, so a double submit is stored once."""
    if value == "":
        return ""
    if not isinstance(value, str) or not _CLIENT_ID.match(value):
        raise ApiError(400, "bad_body", "client_id must be 8-64 letters, digits, - or _.")
    return f"web:{value}"


def _agent(value: Any, argument: Argument) -> str:
    if not isinstance(value, str) or not value:
        raise ApiError(400, "bad_body", "Choose the agent to give this chat to.")
    return value


def _seq(value: Any, argument: Argument) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ApiError(400, "bad_body", "Send the message's seq, a whole number from 1.")
    return value


def _of_kind(value: Any, argument: Argument) -> Any:
    """Any other argument: of its declaration's kind (a count is never true or false), text within MAX_TEXT."""
    name = _BODY_NAMES.get(argument.name, argument.name)
    if not argument.accepts(value):
        raise ApiError(400, "bad_body", f"{name} must be {argument.kind_words}.")
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise ApiError(400, "bad_body", f"{name} must be text of at most {MAX_TEXT} characters.")
    return value


# The body's name of an argument, where the page calls it otherwise.
_BODY_NAMES = {"platform_id": "client_id"}
# Arguments the page never sends (files come from other consoles).
_NOT_FROM_THE_PAGE = {"attachments"}
# The web's own checks of some arguments, by (control, argument) or by argument; any other by its kind.
_READERS: dict[tuple[str, str] | str, Callable[[Any, Argument], Any]] = {
    ("reply", "text"): _text, ("note", "text"): _text, "platform_id": _client_id, "to": _agent,
    ("redeliver", "seq"): _seq,
}


def _arguments(operation: Operation, body: dict) -> dict[str, Any]:
    """The control's declared arguments from ``body``, each checked (a missing required one is refused by
    its check); a missing optional one is left out."""
    arguments: dict[str, Any] = {}
    for argument in operation.arguments:
        key = _BODY_NAMES.get(argument.name, argument.name)
        if argument.name in _NOT_FROM_THE_PAGE or (key not in body and not argument.required):
            continue
        read = _READERS.get((operation.name, argument.name)) or _READERS.get(argument.name) or _of_kind
        arguments[argument.name] = read(body.get(key), argument)
    return arguments
