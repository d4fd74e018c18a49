"""A fake Telegram Bot API: ``/bot<token>/<method>`` answering like the real one."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

from aiohttp import web

from .server import FakeServer


class FakeTelegram(FakeServer):
    def __init__(self, token: str = "123456:TEST-token"):
        super().__init__()
        self.token = token
        self._ids = itertools.count(1000)
        # Seconds sendMessage takes to answer; a caller that hangs up meanwhile
        # (a killed worker) gets nothing sent, as with a request that never completed.
        self.delay = 0.0
        self.in_flight = 0

    @property
    def api_url(self) -> str:
        """What chatgate's telegram.api_url is set to (the token is appended)."""
        return f"{self.url}/bot"

    def sent_texts(self, chat_id: int | str) -> list[str]:
        return [c.params["text"] for c in self.calls_to("sendMessage") if str(c.params.get("chat_id")) == str(chat_id)]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        if request.content_type == "application/json":
            params = await request.json()
        else:
            params = dict(await request.post())
        # Form-encoded requests carry these as JSON strings.
        params = {k: (json.loads(v) if k in ("reply_markup", "entities", "allowed_updates") and isinstance(v, str)
                      else v) for k, v in params.items()}
        failure = self.take_failure()
        if failure:
            status, body, headers = failure
            return web.json_response(body, status=status, headers=headers)
        if self.delay and method == "sendMessage":
            self.in_flight += 1
            try:
                await asyncio.sleep(self.delay)
            finally:
                self.in_flight -= 1
            if request.transport is None or request.transport.is_closing():
                return web.Response(status=499)
        self.record(method, params)
        if method == "getMe":
            return web.json_response({"ok": True, "result": {"id": 123456, "is_bot": True, "first_name": "Support",
                                                             "username": "support_bot"}})
        if method == "sendMessage":
            chat_id = int(params["chat_id"])
            return web.json_response({"ok": True, "result": {
                "message_id": next(self._ids), "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "from": {"id": 123456, "is_bot": True, "first_name": "Support"},
                "text": params["text"],
            }})
        if method in ("setWebhook", "deleteWebhook"):
            return web.json_response({"ok": True, "result": True, "description": "Webhook was set"})
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found: method not found"},
                                 status=404)


def text_update(update_id: int, chat_id: int, text: str, message_id: int | None = None,
                first_name: str = "Ada", last_name: str = "Lovelace", **extra) -> dict:
    """A Telegram ``Update`` with a private text message, as the Bot API sends it."""
    message = {
        "message_id": message_id if message_id is not None else update_id,
        "date": int(time.time()),
        "chat": {"id": chat_id, "type": "private", "first_name": first_name, "last_name": last_name},
        "from": {"id": chat_id, "is_bot": False, "first_name": first_name, "last_name": last_name,
                 "language_code": "en"},
    }
    if text is not None:
        message["text"] = text
    message.update(extra)
    return {"update_id": update_id, "message": message}
