"""A fake Telegram Bot API: ``/bot<token>/<method>`` answering like the real one."""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import time

from aiohttp import web

from .server import FakeServer


# The Bot API's documented limits.
MAX_TEXT = 4096  # sendMessage text, after entity parsing, in UTF-16 code units
MAX_CAPTION = 1024
MAX_DOWNLOAD = 20 * 1024 * 1024  # getFile
MAX_PHOTO = 10 * 1024 * 1024
MAX_UPLOAD = 50 * 1024 * 1024
# Tags Telegram's HTML parse mode accepts.
HTML_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code", "pre",
             "blockquote", "tg-emoji"}
# The methods that send a message (and count against the flood limits).
SEND_METHODS = ("sendMessage", "sendPhoto", "sendDocument")
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^<>]*)?)>")


def bad_request(description: str) -> web.Response:
    return web.json_response({"ok": False, "error_code": 400, "description": f"Bad Request: {description}"},
                             status=400)


def html_text(text: str) -> str:
    """The text Telegram shows for a parse_mode=HTML message; ValueError with its complaint when it can't parse it."""
    stack, out, i = [], [], 0
    while i < len(text):
        if text[i] != "<":
            j = text.find("<", i)
            j = len(text) if j == -1 else j
            out.append(text[i:j])
            i = j
            continue
        tag = _TAG.match(text, i)
        offset = len(text[:i].encode())
        if not tag:
            raise ValueError(f"Unexpected end of name token at byte offset {offset}")
        closing, name = tag.group(1), tag.group(2).lower()
        if name not in HTML_TAGS:
            raise ValueError(f'Unsupported start tag "{name}" at byte offset {offset}')
        if closing:
            if not stack or stack[-1] != name:
                raise ValueError(f'Unmatched end tag at byte offset {offset}, expected "</{stack[-1]}>", found '
                                 f'"</{name}>"' if stack else f"Unexpected end tag at byte offset {offset}")
            stack.pop()
        else:
            stack.append(name)
        i = tag.end()
    if stack:
        raise ValueError(f"Can't find end tag corresponding to start tag \"{stack[-1]}\"")
    return html.unescape("".join(out))


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class FakeTelegram(FakeServer):
    def __init__(self, token: str = "123456:TEST-token"):
        super().__init__()
        self.token = token
        self._ids = itertools.count(1000)
        # Seconds sendMessage takes to answer; a caller that hangs up meanwhile
        # (a killed worker) gets nothing sent, as with a request that never completed.
        self.delay = 0.0
        self.in_flight = 0
        self.files: dict[str, tuple[bytes, str]] = {}  # file_id -> (data, file_path), see add_file
        # Failures answered to the n-th sendMessage (1-based), e.g. to fail a long reply's second part.
        self.fail_send: dict[int, tuple[int, dict, dict]] = {}
        self._sends = 0
        # The Bot API's flood limits as (rate per second, burst), None: off. Per chat (the Bots FAQ: about
        # one message a second) and per bot (about 30 a second). Over them: 429 with parameters.retry_after.
        self.chat_limit: tuple[float, int] | None = None
        self.bot_limit: tuple[float, int] | None = None

    def add_file(self, file_id: str, data: bytes, file_path: str) -> None:
        """A file ``getFile`` knows and ``/file/bot<token>/<file_path>`` serves."""
        self.files[file_id] = (data, file_path)

    @property
    def api_url(self) -> str:
        """What chatgate's telegram.api_url is set to (the token is appended)."""
        return f"{self.url}/bot"

    def sent_texts(self, chat_id: int | str) -> list[str]:
        return [c.params["text"] for c in self.calls_to("sendMessage") if str(c.params.get("chat_id")) == str(chat_id)]

    def app(self) -> web.Application:
        # Uploads (sendPhoto, sendDocument) may be as large as the Bot API takes.
        app = web.Application(client_max_size=MAX_UPLOAD + 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._download)
        return app

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        for data, file_path in self.files.values():
            if file_path == request.match_info["file_path"]:
                self.record("download", {"file_path": file_path})
                return web.Response(body=data, content_type="application/octet-stream")
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)

    def _message(self, chat_id, **content) -> web.Response:
        return web.json_response({"ok": True, "result": {
            "message_id": next(self._ids), "date": int(time.time()),
            "chat": {"id": int(chat_id), "type": "private"},
            "from": {"id": 123456, "is_bot": True, "first_name": "Support"}, **content,
        }})

    async def _media(self, method: str, params: dict) -> web.Response:
        """sendPhoto / sendDocument: a file_id, a URL or a multipart upload (recorded by name and size)."""
        field = "photo" if method == "sendPhoto" else "document"
        media = params.get(field)
        if media is None or media == "":
            return bad_request(f"there is no {field} in the request")
        if hasattr(media, "file"):  # a multipart upload
            data = media.file.read()
            params[field] = {"filename": media.filename, "size": len(data)}
            if len(data) > (MAX_PHOTO if field == "photo" else MAX_UPLOAD):
                return web.json_response({"ok": False, "error_code": 413,
                                          "description": "Request Entity Too Large"}, status=413)
        if utf16_len(str(params.get("caption", ""))) > MAX_CAPTION:
            return bad_request("message caption is too long")
        self.record(method, params)
        file_id = f"fake-{field}-{next(self._ids)}"
        if field == "photo":
            content = {"photo": [{"file_id": file_id, "file_unique_id": file_id, "width": 90, "height": 90}]}
        else:
            name = params[field]["filename"] if isinstance(params[field], dict) else "file"
            content = {"document": {"file_id": file_id, "file_unique_id": file_id, "file_name": name}}
        if params.get("caption"):
            content["caption"] = params["caption"]
        return self._message(params.get("chat_id", 0), **content)

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
        if method in SEND_METHODS:
            refused = self._flood_control(method, params)
            if refused is not None:
                return refused
        if self.delay and method == "sendMessage":
            self.in_flight += 1
            try:
                await asyncio.sleep(self.delay)
            finally:
                self.in_flight -= 1
            if request.transport is None or request.transport.is_closing():
                return web.Response(status=499)
        if method == "sendMessage":
            with self._lock:
                self._sends += 1
                failure = self.fail_send.pop(self._sends, None)
            if failure:
                status, body, headers = failure
                self.record("failure", dict(params, status=status))
                return web.json_response(body, status=status, headers=headers)
            refusal = self._check_text(params)
            if refusal:
                return refusal
        if method in ("sendPhoto", "sendDocument"):
            return await self._media(method, params)
        self.record(method, params)
        if method == "getMe":
            return web.json_response({"ok": True, "result": {"id": 123456, "is_bot": True, "first_name": "Support",
                                                             "username": "support_bot"}})
        if method == "sendMessage":
            return self._message(params["chat_id"], text=params["text"])
        if method == "sendChatAction":
            return web.json_response({"ok": True, "result": True})
        if method == "getFile":
            if params.get("file_id") not in self.files:
                return bad_request("invalid file_id")
            data, file_path = self.files[params["file_id"]]
            if len(data) > MAX_DOWNLOAD:
                return bad_request("file is too big")
            return web.json_response({"ok": True, "result": {"file_id": params["file_id"], "file_unique_id":
                                      params["file_id"], "file_size": len(data), "file_path": file_path}})
        if method in ("setWebhook", "deleteWebhook"):
            return web.json_response({"ok": True, "result": True, "description": "Webhook was set"})
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found: method not found"},
                                 status=404)

    def _flood_control(self, method: str, params: dict) -> web.Response | None:
        """The Bot API's 429 when a send exceeds the chat's or the bot's limit, else None."""
        recorded = {k: v for k, v in params.items() if not hasattr(v, "file")}  # not the uploads' streams
        wait = self.over_limit("chat", self.chat_limit, str(params.get("chat_id", "")), method, recorded)
        if wait is None:
            wait = self.over_limit("bot", self.bot_limit, self.token, method, recorded)
        if wait is None:
            return None
        return web.json_response({"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after "
                                  f"{wait}", "parameters": {"retry_after": wait}}, status=429)

    def _check_text(self, params: dict) -> web.Response | None:
        """sendMessage's refusals: empty text, HTML Telegram cannot parse, text over 4096 after parsing."""
        text = str(params.get("text", ""))
        if str(params.get("parse_mode", "")).upper() == "HTML":
            try:
                text = html_text(text)
            except ValueError as exc:
                return bad_request(f"can't parse entities: {exc}")
        if not text.strip():
            return bad_request("message text is empty")
        if utf16_len(text) > MAX_TEXT:
            return bad_request("message is too long")
        return None


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
