"""A fake Slack Web API (``/api/<method>``) and helpers to sign requests as Slack does."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from urllib.parse import urlencode

from aiohttp import WSMsgType, web

from .server import FakeServer

BOT_USER = "UBOT00001"
# Slack's documented limits for a message.
MAX_TEXT = 40_000
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_BUTTON_TEXT = 75
MAX_HEADER_TEXT = 150


def block_errors(blocks: list, max_blocks: int = MAX_BLOCKS) -> list[str]:
    """Slack's complaints about a message's (or a view's: 100) blocks, worded as its ``errors`` list;
    empty when they are fine."""
    errors = []
    if len(blocks) > max_blocks:
        errors.append(f"no more than {max_blocks} items allowed [json-pointer:/blocks]")

    def text_of(obj) -> str:
        return obj.get("text", "") if isinstance(obj, dict) else ""

    def check(text: str, limit: int, pointer: str) -> None:
        if len(text) > limit:
            errors.append(f"must be less than {limit + 1} characters [json-pointer:{pointer}]")

    def check_element(element: dict, pointer: str) -> None:
        if isinstance(element, dict) and element.get("type") == "button":
            check(text_of(element.get("text")), MAX_BUTTON_TEXT, pointer + "/text/text")

    for n, block in enumerate(blocks if isinstance(blocks, list) else []):
        at = f"/blocks/{n}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "section":
            check(text_of(block.get("text")), MAX_SECTION_TEXT, at + "/text/text")
            for k, field in enumerate(block.get("fields", [])):
                check(text_of(field), MAX_FIELD_TEXT, f"{at}/fields/{k}/text")
            check_element(block.get("accessory"), at + "/accessory")
        elif kind == "context":
            for k, element in enumerate(block.get("elements", [])):
                check(text_of(element), MAX_SECTION_TEXT, f"{at}/elements/{k}/text")
        elif kind == "header":
            check(text_of(block.get("text")), MAX_HEADER_TEXT, at + "/text/text")
        elif kind == "actions":
            for k, element in enumerate(block.get("elements", [])):
                check_element(element, f"{at}/elements/{k}")
    return errors


class FakeSlack(FakeServer):
    def __init__(self):
        super().__init__()
        self._ts = itertools.count(1)
        self.messages: dict[str, dict] = {}  # ts -> latest message (posted or updated)
        self.responses: list[dict] = []  # bodies posted to response_url
        self.home_views: dict[str, dict] = {}  # user id -> their App Home as last published
        self.usergroups: dict[str, list[str]] = {}  # user group id -> member ids (usergroups.users.list)
        self._sockets: list[web.WebSocketResponse] = []  # Socket Mode connections (apps.connections.open)
        self.users: dict[str, str] = {}  # user id -> name, answered by users.info
        self.uploads: dict[str, dict] = {}  # file id -> {"filename", "length", "data"} (external upload flow)
        self.files: list[dict] = []  # files shared by files.completeUploadExternal
        self.private_files: dict[str, tuple[bytes, str]] = {}  # file id -> (data, mimetype): agents' shared files
        self.views: dict[str, dict] = {}  # view id -> modal opened by views.open
        # chat.postMessage's limit per channel (Slack: about one a second, short bursts allowed) as
        # (rate per second, burst); None: off. Over it: HTTP 429, Retry-After and "ratelimited".
        self.post_limit: tuple[float, int] | None = None
        # Failures of one method only, answered (status, body, headers) before the method's work.
        self.method_failures: dict[str, list[tuple[int, dict, dict]]] = {}

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    @property
    def response_url(self) -> str:
        return f"{self.url}/respond"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=100 * 1024 * 1024)  # file uploads
        app.router.add_post("/api/{method}", self._handle)
        app.router.add_get("/api/{method}", self._handle)  # slack_sdk GETs a few methods (getPermalink)
        app.router.add_get("/socket", self._socket)
        app.router.add_post("/respond", self._respond)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/files-pri/{file_id}/{name}", self._private_file)
        return app

    def add_private_file(self, name: str, data: bytes, mimetype: str, size: int | None = None) -> dict:
        """A file an agent shared: the file object of a ``file_share`` event; its ``url_private`` serves
        ``data`` to the bot token only (``size`` may claim more, as for a file too big to send)."""
        file_id = f"F{next(self._ts):08d}"
        self.private_files[file_id] = (data, mimetype)
        url = f"{self.url}/files-pri/{file_id}/{name}"
        return {"id": file_id, "name": name, "title": name, "mimetype": mimetype, "filetype": name.rpartition(".")[2],
                "size": len(data) if size is None else size, "mode": "hosted", "url_private": url,
                "url_private_download": url + "?download=1"}

    async def _private_file(self, request: web.Request) -> web.Response:
        if not request.headers.get("Authorization", "").startswith("Bearer xoxb-"):
            # Slack answers a login page, not the file, without a token that may read it.
            return web.Response(text="<html>Sign in to Slack</html>", content_type="text/html")
        found = self.private_files.get(request.match_info["file_id"])
        if found is None:
            return web.Response(status=404, text="not found")
        self.record("file_download", {"file_id": request.match_info["file_id"]})
        return web.Response(body=found[0], content_type=found[1])

    def _take_method_failure(self, method: str) -> tuple[int, dict, dict] | None:
        with self._lock:
            waiting = self.method_failures.get(method)
            return waiting.pop(0) if waiting else None

    async def _upload(self, request: web.Request) -> web.Response:
        """The upload URL files.getUploadURLExternal hands out: stores the bytes posted to it."""
        upload = self.uploads.get(request.match_info["file_id"])
        if upload is None:
            return web.Response(status=404, text="not found")
        upload["data"] = await request.read()
        self.record("upload", {"file_id": request.match_info["file_id"], "size": len(upload["data"])})
        return web.Response(text=f"OK - {len(upload['data'])}")

    async def _respond(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.record("response_url", body)
        return web.Response(text="ok")

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        token_prefix = "Bearer xapp-" if method == "apps.connections.open" else "Bearer xoxb-"
        if not request.headers.get("Authorization", "").startswith(token_prefix):
            return web.json_response({"ok": False, "error": "not_authed"})
        # slack_sdk sends some arguments in the query string (GET methods, reactions.add).
        if request.method == "GET":
            params = dict(request.query)
        elif request.content_type == "application/json":
            params = {**request.query, **await request.json()}
        else:
            params = {**request.query, **await request.post()}
        for key in ("blocks", "attachments", "metadata"):
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        failure = self.take_failure() or self._take_method_failure(method)
        if failure:
            status, body, headers = failure
            return web.json_response(body, status=status, headers=headers)
        if method == "chat.postMessage":
            wait = self.over_limit("post", self.post_limit, str(params.get("channel", "")), method, params)
            if wait is not None:
                return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                         headers={"Retry-After": str(wait)})
        if method in ("chat.postMessage", "chat.update"):
            if len(params.get("text") or "") > MAX_TEXT:
                return web.json_response({"ok": False, "error": "msg_too_long"})
            errors = block_errors(params.get("blocks") or [])
            if errors:
                return web.json_response({"ok": False, "error": "invalid_blocks", "errors": errors,
                                          "response_metadata": {"messages": [f"[ERROR] {e}" for e in errors]}})
        self.record(method, params)
        if method == "users.info":
            name = self.users.get(params.get("user", ""))
            if name is None:
                return web.json_response({"ok": False, "error": "user_not_found"})
            return web.json_response({"ok": True, "user": {
                "id": params["user"], "team_id": "T0001", "name": name.lower().replace(" ", "."), "real_name": name,
                "deleted": False, "is_bot": False, "profile": {"real_name": name, "display_name": name}}})
        if method == "files.getUploadURLExternal":
            if not params.get("filename") or not str(params.get("length", "")).isdigit():
                return web.json_response({"ok": False, "error": "invalid_arguments"})
            file_id = f"F{next(self._ts):08d}"
            self.uploads[file_id] = {"filename": params["filename"], "length": int(params["length"]), "data": None}
            return web.json_response({"ok": True, "file_id": file_id, "upload_url": f"{self.url}/upload/{file_id}"})
        if method == "files.completeUploadExternal":
            return self._complete_upload(params)
        if method == "auth.test":
            return web.json_response({"ok": True, "url": "https://example.slack.com/", "team": "Team",
                                      "user": "support", "team_id": "T0001", "user_id": BOT_USER,
                                      "bot_id": "B0001", "is_enterprise_install": False})
        if method == "chat.postMessage":
            ts = f"{int(time.time())}.{next(self._ts):06d}"
            self.messages[ts] = dict(params, ts=ts)
            return web.json_response({"ok": True, "channel": params.get("channel"), "ts": ts,
                                      "message": {"text": params.get("text", ""), "ts": ts, "bot_id": "B0001"}})
        if method == "chat.update":
            ts = params.get("ts")
            if ts not in self.messages:
                return web.json_response({"ok": False, "error": "message_not_found"})
            self.messages[ts] = dict(self.messages[ts], **params)
            return web.json_response({"ok": True, "channel": params.get("channel"), "ts": ts})
        if method in ("conversations.replies", "conversations.history"):
            return self._read(method, params)
        if method == "chat.postEphemeral":
            return web.json_response({"ok": True, "message_ts": f"{int(time.time())}.{next(self._ts):06d}"})
        if method == "apps.connections.open":
            return web.json_response({"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"})
        if method == "chat.getPermalink":
            channel, ts = params.get("channel", ""), params.get("message_ts", "")
            if ts not in self.messages:
                return web.json_response({"ok": False, "error": "message_not_found"})
            return web.json_response({"ok": True, "channel": channel,
                                      "permalink": f"https://example.slack.com/archives/{channel}/p{ts.replace('.', '')}"})
        if method == "usergroups.users.list":
            if params.get("usergroup") not in self.usergroups:
                return web.json_response({"ok": False, "error": "no_such_subteam"})
            return web.json_response({"ok": True, "users": self.usergroups[params["usergroup"]]})
        if method == "reactions.add":
            return web.json_response({"ok": True})
        if method == "views.publish":
            view = params.get("view")
            view = json.loads(view) if isinstance(view, str) else view
            if not params.get("user_id") or not isinstance(view, dict) or view.get("type") != "home":
                return web.json_response({"ok": False, "error": "invalid_arguments"})
            errors = block_errors(view.get("blocks", []), max_blocks=100)
            if errors:
                return web.json_response({"ok": False, "error": "invalid_blocks", "errors": errors})
            self.home_views[params["user_id"]] = view
        if method == "views.open":
            view = params.get("view")
            view = json.loads(view) if isinstance(view, str) else view
            if not params.get("trigger_id"):
                return web.json_response({"ok": False, "error": "invalid_trigger_id"})
            if not isinstance(view, dict) or view.get("type") != "modal" or \
                    len((view.get("title") or {}).get("text", "")) > 24 or len(view.get("blocks", [])) > 100:
                return web.json_response({"ok": False, "error": "invalid_arguments"})
            for block in view.get("blocks", []):
                element = block.get("element") or {}
                if element.get("type") == "static_select" and not 0 < len(element.get("options", [])) <= 100:
                    return web.json_response({"ok": False, "error": "invalid_blocks"})
            view_id = f"V{next(self._ts):08d}"
            self.views[view_id] = dict(view, id=view_id)
            return web.json_response({"ok": True, "view": dict(view, id=view_id)})
        if method in ("views.publish", "conversations.open"):
            return web.json_response({"ok": True, "channel": {"id": "D0001"}, "view": {"id": "V1"}})
        return web.json_response({"ok": False, "error": "unknown_method"})

    def _read(self, method: str, params: dict) -> web.Response:
        """conversations.replies (a thread: its parent, then the replies) and conversations.history (a
        channel's top-level messages, newest first, from ``oldest``), paginated with ``limit`` and
        ``cursor``; each message's ``metadata`` only with ``include_all_metadata``, as Slack answers."""
        channel = params.get("channel", "")
        posted = [m for m in self.messages.values() if m.get("channel") == channel]
        if method == "conversations.replies":
            ts = params.get("ts", "")
            parent = self.messages.get(ts)
            if parent is None or parent.get("channel") != channel:
                return web.json_response({"ok": False, "error": "thread_not_found"})
            root = parent.get("thread_ts") or ts
            found = [m for m in posted if m["ts"] == root] + [m for m in posted if m.get("thread_ts") == root]
        else:
            oldest = float(params.get("oldest") or 0)
            found = [m for m in reversed(posted) if not m.get("thread_ts") and float(m["ts"]) > oldest]
        start = int(params.get("cursor") or 0)
        limit = int(params.get("limit") or 1000)
        page = found[start:start + limit]
        metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        messages = []
        for message in page:
            shown = {"type": "message", "ts": message["ts"], "text": message.get("text", ""), "bot_id": "B0001",
                     "app_id": "A0001", "user": BOT_USER}
            if message.get("thread_ts"):
                shown.update(thread_ts=message["thread_ts"], parent_user_id=BOT_USER)
            if metadata and message.get("metadata"):
                shown["metadata"] = message["metadata"]
            messages.append(shown)
        more = start + limit < len(found)
        return web.json_response({"ok": True, "messages": messages, "has_more": more,
                                  "response_metadata": {"next_cursor": str(start + limit) if more else ""}})

    def _complete_upload(self, params: dict) -> web.Response:
        files = params.get("files")
        files = json.loads(files) if isinstance(files, str) else files
        if not files or any(f.get("id") not in self.uploads or self.uploads[f["id"]]["data"] is None
                            for f in files):
            return web.json_response({"ok": False, "error": "file_not_found"})
        shared = []
        for f in files:
            upload = self.uploads[f["id"]]
            info = {"id": f["id"], "name": upload["filename"], "title": f.get("title") or upload["filename"],
                    "size": len(upload["data"]), "channel_id": params.get("channel_id"),
                    "thread_ts": params.get("thread_ts"), "initial_comment": params.get("initial_comment"),
                    "data": upload["data"]}
            self.files.append(info)
            shared.append({k: v for k, v in info.items() if k in ("id", "name", "title", "size")})
        return web.json_response({"ok": True, "files": shared})

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        """Socket Mode: say hello, then record every envelope ack the app sends back."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        self.record("socket_connect", {})
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0001"},
                            "debug_info": {"host": "fake", "approximate_connection_time": 3600}})
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                self.record("socket_ack", json.loads(message.data))
        return ws

    def socket_send(self, envelope: dict) -> None:
        """Push a Socket Mode envelope to the connected app (call from the test's thread)."""

        async def send() -> None:
            for ws in list(self._sockets):
                if not ws.closed:
                    await ws.send_json(envelope)

        asyncio.run_coroutine_threadsafe(send(), self._loop).result(5)

    def thread_texts(self, thread_ts: str) -> list[str]:
        return [c.params.get("text", "") for c in self.calls_to("chat.postMessage")
                if c.params.get("thread_ts") == thread_ts]

    def ephemerals(self) -> list[str]:
        texts = [c.params.get("text", "") for c in self.calls_to("chat.postEphemeral")]
        texts += [c.params.get("text", "") for c in self.calls_to("response_url")]
        return texts


def home_opened(user: str) -> str:
    """The JSON body of an Events API ``app_home_opened`` event (the Home tab)."""
    event = {"type": "app_home_opened", "user": user, "channel": "D0001", "tab": "home",
             "event_ts": f"{time.time():.6f}"}
    return json.dumps({
        "token": "legacy", "team_id": "T0001", "api_app_id": "A0001", "type": "event_callback",
        "event_id": f"EvHome{user}{time.time_ns()}", "event_time": int(time.time()), "event": event,
        "authorizations": [{"team_id": "T0001", "user_id": BOT_USER, "is_bot": True}],
    })


def home_action(action_id: str, user: str, value: str = "", selected: str = "") -> str:
    """The form body of a ``block_actions`` request from a button or static select in the App Home."""
    action = {"action_id": action_id, "block_id": "home-block", "action_ts": str(time.time())}
    if selected:
        action.update(type="static_select", selected_option={"text": {"type": "plain_text", "text": selected},
                                                             "value": selected})
    else:
        action.update(type="button", value=value, text={"type": "plain_text", "text": action_id})
    payload = {
        "type": "block_actions",
        "team": {"id": "T0001", "domain": "team"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "legacy",
        "container": {"type": "view", "view_id": "V1"},
        "trigger_id": "1.2.3",
        "view": {"id": "V1", "type": "home", "blocks": [], "state": {"values": {}}},
        "actions": [action],
    }
    return urlencode({"payload": json.dumps(payload)})


def _block_actions(action: dict, user: str, channel: str, message_ts: str, response_url: str) -> str:
    """The form body of a ``block_actions`` request for ``action``, clicked in a channel message."""
    payload = {
        "type": "block_actions",
        "team": {"id": "T0001", "domain": "team"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "legacy",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": "1.2.3",
        "channel": {"id": channel, "name": "support"},
        "message": {"type": "message", "ts": message_ts, "text": "card"},
        "response_url": response_url,
        "actions": [dict(action, action_ts=str(time.time()))],
    }
    return urlencode({"payload": json.dumps(payload)})


def select_user_action(action_id: str, block_id: str, selected_user: str, user: str, channel: str,
                       message_ts: str, response_url: str) -> str:
    """The form body of a ``block_actions`` request from a ``users_select`` in a message."""
    action = {"action_id": action_id, "block_id": block_id, "type": "users_select", "selected_user": selected_user}
    return _block_actions(action, user, channel, message_ts, response_url)


def view_submission(view: dict, user: str, values: dict) -> str:
    """The form body of a ``view_submission`` (a modal's submit): ``values`` block id -> action id -> value."""
    state = {block: {action: {"type": "plain_text_input", "value": value} for action, value in actions.items()}
             for block, actions in values.items()}
    return select_submission(user, dict(view, id=view.get("id", "V1")), state)


def sign(secret: str, body: str, timestamp: int | None = None) -> dict:
    """Headers of a request signed with the app's signing secret, as Slack signs them."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    base = f"v0:{timestamp}:{body}".encode()
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": signature}


def block_action(action_id: str, value: str, user: str, channel: str, message_ts: str, response_url: str) -> str:
    """The form body of a ``block_actions`` interactivity request (a button with ``value``)."""
    action = {"action_id": action_id, "block_id": f"chat-{value}", "value": value, "type": "button",
              "text": {"type": "plain_text", "text": action_id}}
    return _block_actions(action, user, channel, message_ts, response_url)


def message_event(user: str, channel: str, text: str, ts: str, thread_ts: str | None = None,
                  files: list[dict] | None = None) -> str:
    """The JSON body of an Events API ``message`` event callback (a ``file_share`` one with ``files``)."""
    event = {"type": "message", "user": user, "text": text, "ts": ts, "channel": channel,
             "channel_type": "channel", "event_ts": ts}
    if files:
        event.update(subtype="file_share", files=files, upload=False, display_as_bot=False)
    if thread_ts:
        event["thread_ts"] = thread_ts
    return json.dumps({
        "token": "legacy", "team_id": "T0001", "api_app_id": "A0001", "type": "event_callback",
        "event_id": f"Ev{ts.replace('.', '')}", "event_time": int(time.time()), "event": event,
        "authorizations": [{"team_id": "T0001", "user_id": BOT_USER, "is_bot": True}],
    })


def select_submission(user: str, view: dict, values: dict) -> str:
    """The form body of a ``view_submission`` of ``view`` (as views.open stored it) with ``values``
    as Slack puts them in ``view.state.values`` (block id -> action id -> element state: selects too)."""
    payload = {
        "type": "view_submission",
        "team": {"id": "T0001", "domain": "team"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "legacy",
        "trigger_id": "4.5.6",
        "view": dict(view, state={"values": values}, hash="1", app_id="A0001", team_id="T0001"),
    }
    return urlencode({"payload": json.dumps(payload)})


def reaction_added(user: str, reaction: str, channel: str, ts: str) -> str:
    """The JSON body of an Events API ``reaction_added`` event on the message ``ts``."""
    event = {"type": "reaction_added", "user": user, "reaction": reaction, "item_user": BOT_USER,
             "item": {"type": "message", "channel": channel, "ts": ts}, "event_ts": f"{time.time():.6f}"}
    return json.dumps({
        "token": "legacy", "team_id": "T0001", "api_app_id": "A0001", "type": "event_callback",
        "event_id": f"EvReact{user}{reaction}{time.time_ns()}", "event_time": int(time.time()), "event": event,
        "authorizations": [{"team_id": "T0001", "user_id": BOT_USER, "is_bot": True}],
    })
