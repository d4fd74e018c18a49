"""The web console's desk API (issue 11): saved replies (search, fill in, admin management) and reports.

Every change goes through the core (``Conversations.save_reply`` / ``delete_reply``, admins only);
a saved reply is sent by the reply box like any reply (``Conversations.reply``).
Reports are for admins: the figures of ``gateway/reports.py`` plus per-day counts for a chart.
"""

from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import Callable

from aiohttp import web

from gateway import reports
from gateway.config import parse_duration
from gateway.message import Refused

from .guard import ApiError, read_json
from .sessions import Session

__all__ = ["DeskApi"]

_RIGHTS = {"not_agent", "not_admin"}
# Conversations listed on the Reports page (the CSV has them all).
MAX_ROWS = 200
MAX_SPAN_DAYS = 366


class DeskApi:
    def __init__(self, services, refusal: Callable[[Refused], str]):
        self.services = services
        self.refusal = refusal

    def _refused(self, refused: Refused) -> ApiError:
        return ApiError(403 if refused.code in _RIGHTS else 409, refused.code, self.refusal(refused))

    # -- saved replies -------------------------------------------------------------

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

    # -- reports -----------------------------------------------------------------

    def _period(self, request: web.Request) -> tuple[float, float, float]:
        now = self.services.conversations.clock()
        since_text = request.query.get("since", "7d")
        until_text = request.query.get("until", "")

        def moment(text: str) -> float:
            ago = parse_duration(text)
            if ago is not None and not text.strip().isdigit():
                return now - ago
            try:
                value = datetime.fromisoformat(text)
            except ValueError:
                raise ApiError(400, "bad_query", f"{text!r}: a span back from now (7d, 24h) or a date "
                                                 "(2026-01-31).") from None
            return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()

        since = moment(since_text)
        until = moment(until_text) if until_text else now
        if until <= since or until - since > MAX_SPAN_DAYS * 86400:
            raise ApiError(400, "bad_query", f"The period must end after it starts and span at most "
                                             f"{MAX_SPAN_DAYS} days.")
        return since, until, now

    async def _admin(self, session: Session) -> None:
        if not await self.services.team.is_admin(session.agent_id):
            raise ApiError(403, "not_admin", "Only a chatgate admin can see the reports.")

    async def report(self, request: web.Request, session: Session) -> web.Response:
        await self._admin(session)
        since, until, now = self._period(request)
        report = reports.Report(since, until)
        rows, days = [], {}
        async for row in reports.conversation_rows(self.services.store, since, until, now):
            report.count(row, self.services.team.name)
            day = days.setdefault(row.created[:10], {"day": row.created[:10], "chats": 0, "first_responses": []})
            day["chats"] += 1
            if row.first_response_seconds is not None:
                day["first_responses"].append(row.first_response_seconds)
            rows.append(row.public())
        per_day = []
        for day in sorted(days):
            values = sorted(days[day]["first_responses"])
            median = None
            if values:
                middle = len(values) // 2
                median = values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
            per_day.append({"day": day, "chats": days[day]["chats"], "median_first_response": median})
        return web.json_response({
            "since": reports.iso(since), "until": reports.iso(until), "conversations": report.conversations,
            "rows": rows[-MAX_ROWS:][::-1], "agents": report.agent_rows(), "days": per_day,
        })

    async def report_csv(self, request: web.Request, session: Session) -> web.Response:
        """The same period as ``chatgate report --format csv`` (both tables)."""
        await self._admin(session)
        since, until, now = self._period(request)
        out = io.StringIO()
        await reports.write_csv(out, reports.conversation_rows(self.services.store, since, until, now),
                                reports.Report(since, until), self.services.team.name)
        return web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8", headers={
            "Content-Disposition": 'attachment; filename="chatgate-report.csv"'})


def mount(app: web.Application, guard, services, refusal: Callable[[Refused], str]) -> None:
    """The desk routes under ``/console/api``."""
    api = DeskApi(services, refusal)
    app.router.add_get("/console/api/saved-replies", guard.api(api.saved_replies))
    app.router.add_post("/console/api/saved-replies", guard.api(api.save_reply, post=True))
    app.router.add_post("/console/api/saved-replies/delete", guard.api(api.delete_reply, post=True))
    app.router.add_get("/console/api/reports", guard.api(api.report))
    app.router.add_get("/console/api/reports.csv", guard.api(api.report_csv))
