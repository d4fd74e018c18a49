"""The console's JSON API: lists, one chat, its controls, the admin panel.

Each control calls exactly one ``Conversations`` operation as the signed-in
agent; the core decides, and a refusal comes back as 409 (403 for rights) with
the console's own sentence. Nothing here changes a conversation by itself.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from aiohttp import web

from gateway.message import Refused

from .guard import ApiError, read_json
from .sessions import Session

__all__ = ["ConsoleApi", "MAX_TEXT"]

VIA = "web"  # the console name the core records with each action
MAX_TEXT = 4000  # characters in one reply or note; platforms split longer ones anyway
_CHANNEL = re.compile(r"^[a-z0-9_-]{0,40}$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_RIGHTS = {"not_agent", "not_admin"}
OPEN = ("active", "resolved")


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
            # issue 11 routing: escalated rows are highlighted (with a sound); team-only chats say so
            "escalations": c.escalations, "team_only": c.team_only,
        }

    async def room(self) -> list[dict[str, Any]]:
        """Issue 11 routing: each configured agent's active chats against their capacity (0: unlimited)."""
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
        offset = _int(query, "offset", 0, 0, 1_000_000)
        limit = _int(query, "limit", 20, 1, 100)
        agent = session.agent_id
        served = await self.services.conversations.routes.served_topics(agent)  # issue 11 routing
        inbox = await self.store.inbox_for(agent, channel=channel, topic=topic,
                                           offset=offset if tab == "inbox" else 0, limit=limit, served=served)
        assigned = await self.store.assigned_for(agent, channel=channel, topic=topic,
                                                 offset=offset if tab == "assigned" else 0, limit=limit)
        page = inbox if tab == "inbox" else assigned
        now = self._now()
        return web.json_response({
            "tab": tab, "rows": [self._row(c, now, labels) for c in page.conversations],
            "total": page.total, "offset": offset, "limit": limit, "has_more": page.has_more,
            "counts": {"inbox": inbox.total, "assigned": assigned.total},
            "figures": await self.figures(),
            "channels": [{"name": name, "label": label} for name, label in labels.items()],
            "topics": self._topics(),
            "room": await self.room(),  # issue 11 routing
        })

    async def chat_json(self, conversation_id: str, agent: str) -> dict[str, Any]:
        c = await self.store.get(conversation_id)
        if c is None:
            raise ApiError(404, "not_found", "This chat does not exist (any more).")
        history = await self.store.history(conversation_id)
        admin = await self.team.is_admin(agent)
        state = _state(c)
        mine = c.assignee == agent and state in OPEN
        head_start = getattr(c, "head_start_for", "") or ""
        waiting = state == "new" and agent not in c.declined_by and head_start in ("", agent)
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
            "controls": {
                "back": mine, "sound": mine, "leave": mine, "resolve": mine and state == "active",
                "accept": waiting, "reject": waiting,
                "reply": mine and state == "active", "note": mine, "retry": mine,
                "reassign": admin and state in OPEN,
                "transfer": mine and state == "active",  # issue 11 routing
            },
            "agents": [{"id": a.id, "name": a.display_name} for a in self.team.agents.values()]
            if admin or mine else [],
            # issue 11 routing: who held the chat when, and its first-response escalations
            "holders": [{"agent": h.get("agent", ""), "name": self.team.name(h.get("agent", "")),
                         "from": h.get("from"), "to": h.get("to") or None} for h in c.holders],
            "escalations": c.escalations, "team_only": c.team_only,
        }

    async def chat(self, request: web.Request, session: Session) -> web.Response:
        return web.json_response(await self.chat_json(request.match_info["id"], session.agent_id))

    # -- the controls ------------------------------------------------------------

    @staticmethod
    def _text(body: dict) -> str:
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "empty", "Write something first.")
        if len(text) > MAX_TEXT:
            raise ApiError(413, "too_long", f"That is longer than {MAX_TEXT} characters; split it into parts.")
        return text.strip()

    @staticmethod
    def _platform_id(body: dict) -> str:
        """The browser's id of a send, so a double submit is stored once."""
        client_id = body.get("client_id", "")
        if client_id == "":
            return ""
        if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
            raise ApiError(400, "bad_body", "client_id must be 8-64 letters, digits, - or _.")
        return f"web:{client_id}"

    async def action(self, request: web.Request, session: Session) -> web.Response:
        conversation_id, action = request.match_info["id"], request.match_info["action"]
        agent = session.agent_id
        body = await read_json(request)
        conversations = self.services.conversations
        try:
            if action in ("accept", "reject", "resolve", "leave"):
                await getattr(conversations, action)(conversation_id, agent, via=VIA)
            elif action == "sound":
                on = body.get("on")
                if not isinstance(on, bool):
                    raise ApiError(400, "bad_body", "Send {\"on\": true} or {\"on\": false}.")
                await conversations.set_sound(conversation_id, agent, on, via=VIA)
            elif action == "reply":
                await conversations.reply(conversation_id, agent, self._text(body),
                                          platform_id=self._platform_id(body), via=VIA)
            elif action == "note":
                await conversations.note(conversation_id, agent, self._text(body),
                                         platform_id=self._platform_id(body), via=VIA)
            elif action == "retry":
                seq = body.get("seq")
                if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
                    raise ApiError(400, "bad_body", "Send the message's seq, a whole number from 1.")
                await conversations.redeliver(conversation_id, seq, agent, via=VIA)
            elif action == "transfer":  # issue 11 routing
                to, note = body.get("to"), body.get("note", "")
                if not isinstance(to, str) or not to:
                    raise ApiError(400, "bad_body", "Choose the agent to hand this chat to.")
                if not isinstance(note, str) or len(note) > MAX_TEXT:
                    raise ApiError(400, "bad_body", f"The note must be text of at most {MAX_TEXT} characters.")
                await conversations.transfer(conversation_id, agent, to, note, via=VIA)
            elif action == "reassign":
                to = body.get("to")
                if not isinstance(to, str) or not to:
                    raise ApiError(400, "bad_body", "Choose the agent to give this chat to.")
                await conversations.reassign(conversation_id, agent, to, via=VIA)
            else:
                raise ApiError(404, "unknown_action", f"There is no control {action!r}.")
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
