"""The web console's Reports API, for admins: the figures of ``gateway/reports.py`` for a period, plus
per-day counts for a chart, and the same period as CSV.
"""

from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from gateway import reports
from gateway.config import parse_duration

from .guard import ApiError
from .sessions import Session

__all__ = ["ReportsApi", "mount"]

# Conversations listed on the Reports page (the CSV has them all).
MAX_ROWS = 200
MAX_SPAN_DAYS = 366


class ReportsApi:
    def __init__(self, services):
        self.services = services

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
        rows: list[dict] = []
        days: dict[str, dict[str, Any]] = {}
        async for row in reports.conversation_rows(self.services.store, since, until, now):
            report.count(row, self.services.team.name)
            totals = days.setdefault(row.created[:10], {"day": row.created[:10], "chats": 0, "first_responses": []})
            totals["chats"] += 1
            if row.first_response_seconds is not None:
                totals["first_responses"].append(row.first_response_seconds)
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


def mount(app: web.Application, guard, services) -> None:
    """The Reports routes under ``/console/api``."""
    api = ReportsApi(services)
    app.router.add_get("/console/api/reports", guard.api(api.report))
    app.router.add_get("/console/api/reports.csv", guard.api(api.report_csv))
