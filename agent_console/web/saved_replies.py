"""The web console's saved replies API: search, fill in, and admin management.

Every change goes through the core (``Conversations.save_reply`` / ``delete_reply``, admins only);
a saved reply is sent by the reply box like any reply (``Conversations.reply``).
"""

from __future__ import annotations

from typing import Callable

from aiohttp import web

from gateway.message import Refused

from .guard import ApiError, read_json
from .sessions import Session

__all__ = ["SavedRepliesApi", "mount"]

_RIGHTS = {"not_agent", "not_admin"}


class SavedRepliesApi:
    def __init__(self, services, refusal: Callable[[Refused], str]):
        self.services = services
        self.refusal = refusal

    def _refused(self, refused: Refused) -> ApiError:
        return ApiError(403 if refused.code in _RIGHTS else 409, refused.code, self.refusal(refused))

    async def saved_replies(self, request: web.Request, session: Session) -> web.Response:
        """``?q=`` searches; ``?chat=<id>`` adds each reply as it would be sent in that chat (``filled``)."""
        conversations = self.services.conversations
        if not await self.services.team.is_agent(session.agent_id):
            raise ApiError(403, "not_agent", "You are not on the support team.")
        query = request.query.get("q", "")[:200]
        chat = request.query.get("chat", "")[:100]
        found = await conversations.saved_replies(query)
        rows = []
        for reply in found[:50]:
            row = {"name": reply.name, "text": reply.text, "source": reply.source}
            if chat:
                row["filled"] = await conversations.fill_saved_reply(chat, session.agent_id, reply.name)
            rows.append(row)
        return web.json_response({"replies": rows, "admin": await self.services.team.is_admin(session.agent_id)})

    async def save_reply(self, request: web.Request, session: Session) -> web.Response:
        body = await read_json(request)
        name, text, previous = body.get("name"), body.get("text"), body.get("previous", "")
        if not isinstance(name, str) or not isinstance(text, str) or not isinstance(previous, str):
            raise ApiError(400, "bad_body", "Send the reply's name and text.")
        conversations = self.services.conversations
        try:
            await conversations.save_reply(name, text, by=session.agent_id)
            if previous and previous.strip().lower() != name.strip().lower():
                await conversations.delete_reply(previous, by=session.agent_id)  # a rename
        except Refused as refused:
            raise self._refused(refused) from None
        return web.json_response({"ok": True})

    async def delete_reply(self, request: web.Request, session: Session) -> web.Response:
        body = await read_json(request)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "bad_body", "Send the name of the reply to delete.")
        try:
            await self.services.conversations.delete_reply(name, by=session.agent_id)
        except Refused as refused:
            raise self._refused(refused) from None
        return web.json_response({"ok": True})


def mount(app: web.Application, guard, services, refusal: Callable[[Refused], str]) -> None:
    """The saved replies routes under ``/console/api``."""
    api = SavedRepliesApi(services, refusal)
    app.router.add_get("/console/api/saved-replies", guard.api(api.saved_replies))
    app.router.add_post("/console/api/saved-replies", guard.api(api.save_reply, post=True))
    app.router.add_post("/console/api/saved-replies/delete", guard.api(api.delete_reply, post=True))
