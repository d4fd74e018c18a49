"""A fake of Twilio's Messages API, and helpers to sign webhooks as Twilio does.

``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (form-encoded, HTTP basic
auth with the account SID and auth token) answers the real JSON shape. Queue a
failure in ``failures`` (see ``FakeServer``) to answer 500, 429 or a 400 with
Twilio's error JSON once.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from email.utils import formatdate
from urllib.parse import urlencode

from aiohttp import web
from twilio.request_validator import RequestValidator

from .server import FakeServer

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
# Twilio refuses a Body longer than this (error 21617).
MAX_BODY = 1600
AUTH_TOKEN = "fake-twilio-auth-token-0123456789"


def error(code: int, message: str, status: int = 400) -> tuple[int, dict, dict]:
    """A queued failure answered the way Twilio's API answers errors."""
    return status, {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                    "status": status}, {}


class FakeTwilio(FakeServer):
    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN):
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._requests = 0
        # Failures answered to the n-th create request (1-based), e.g. to fail a long text's second part.
        self.fail_request: dict[int, tuple[int, dict, dict]] = {}
        self.media: dict[str, tuple[bytes, str]] = {}  # URL path -> (data, content type), see add_media
        # A rate limit per sender (From, or MessagingServiceSid) as (rate per second, burst), None: off.
        # Real Twilio queues what a sender cannot send yet (a US long code: 1 segment a second) and refuses
        # with 429 / 20429 only past the account's API concurrency; the fake refuses at once, so a test
        # sees any message that was not paced.
        self.sender_limit: tuple[float, int] | None = None

    def add_media(self, url_path: str, data: bytes, content_type: str) -> str:
        """Serve ``data`` at ``url_path`` (HTTP basic auth required, as Twilio can require it); its URL."""
        self.media["/" + url_path.lstrip("/")] = (data, content_type)
        return self.url + "/" + url_path.lstrip("/")

    @property
    def api_url(self) -> str:
        """What chatgate's twilio.api_url is set to."""
        return self.url

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", self._create)
        app.router.add_get("/{path:.*}", self._media)
        return app

    async def _media(self, request: web.Request) -> web.Response:
        if request.path not in self.media:
            return web.json_response({"code": 20404, "message": "The requested resource was not found",
                                      "more_info": "https://www.twilio.com/docs/errors/20404", "status": 404},
                                     status=404)
        if not self._authorized(request):
            return web.json_response({"code": 20003, "message": "Authenticate", "more_info":
                                      "https://www.twilio.com/docs/errors/20003", "status": 401}, status=401,
                                     headers={"WWW-Authenticate": 'Basic realm="Twilio API"'})
        data, content_type = self.media[request.path]
        self.record("media", {"path": request.path})
        return web.Response(body=data, content_type=content_type)

    def messages(self, to: str | None = None) -> list[dict]:
        """The messages created so far (their form parameters), oldest first."""
        return [c.params for c in self.calls_to("Messages.create") if to is None or c.params.get("To") == to]

    def bodies(self, to: str) -> list[str]:
        return [m.get("Body", "") for m in self.messages(to)]

    @staticmethod
    def _check_content(params: dict) -> tuple[int, dict, dict] | None:
        """A message needs a Body, media or a Content template (``ContentSid`` "HX…" with JSON ``ContentVariables``)."""
        sid = params.get("ContentSid")
        if sid is not None:
            if not re.fullmatch(r"HX[0-9a-fA-F]{32}", sid):
                return error(21655, "The ContentSid is Invalid")
            try:
                variables = json.loads(params.get("ContentVariables") or "{}")
            except ValueError:
                variables = None
            if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
                return error(21656, "The ContentVariables Parameter is invalid")
            return None
        if not params.get("Body") and not params.get("MediaUrl"):
            return error(21602, "Message body is required")
        return None

    def _authorized(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("Authorization", "") == f"Basic {expected}"

    async def _create(self, request: web.Request) -> web.Response:
        if not self._authorized(request) or request.match_info["account"] != self.account_sid:
            return web.json_response({"code": 20003, "message": "Authenticate", "more_info":
                                      "https://www.twilio.com/docs/errors/20003", "status": 401}, status=401)
        params = dict(await request.post())
        with self._lock:
            self._requests += 1
            failure = self.fail_request.pop(self._requests, None)
        failure = failure or self.take_failure()
        if failure:
            status, body, headers = failure
            self.record("failure", dict(params, status=status))
            return web.json_response(body, status=status, headers=headers)
        sender = params.get("From") or params.get("MessagingServiceSid") or ""
        wait = self.over_limit("sender", self.sender_limit, sender, "Messages.create", params)
        if wait is not None:
            return web.json_response(error(20429, "Too Many Requests", status=429)[1], status=429,
                                     headers={"Retry-After": str(wait)})
        if "To" not in params or not (params.get("From") or params.get("MessagingServiceSid")):
            return web.json_response({"code": 21604 if "To" not in params else 21603,
                                      "message": "A 'To' and a 'From' or 'MessagingServiceSid' are required",
                                      "more_info": "https://www.twilio.com/docs/errors/21603", "status": 400},
                                     status=400)
        refusal = self._check_content(params)
        if refusal:
            return web.json_response(refusal[1], status=refusal[0])
        if len(params.get("Body", "")) > MAX_BODY:
            return web.json_response(error(21617, "The concatenated message body exceeds the 1600 character limit")[1],
                                     status=400)
        self.record("Messages.create", params)
        sid = "SM" + secrets.token_hex(16)
        now = formatdate(usegmt=True)
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json"
        return web.json_response({
            "account_sid": self.account_sid, "api_version": "2010-04-01", "body": params.get("Body", ""),
            "date_created": now, "date_sent": None, "date_updated": now, "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": params.get("From"),
            "messaging_service_sid": params.get("MessagingServiceSid"), "num_media": "0",
            "num_segments": str(max(1, -(-len(params.get("Body", "")) // 153))), "price": None,
            "price_unit": "USD", "sid": sid, "status": "queued", "to": params["To"], "uri": uri,
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
        }, status=201)


def signed(auth_token: str, url: str, params: dict) -> tuple[bytes, dict]:
    """The form body and headers of a webhook signed like Twilio signs it, for ``url``."""
    signature = RequestValidator(auth_token).compute_signature(url, params)
    return urlencode(params).encode(), {"Content-Type": "application/x-www-form-urlencoded",
                                        "X-Twilio-Signature": signature}


def inbound(sid: str, sender: str, body: str = "", to: str = "+15005550006", **extra) -> dict:
    """The form fields of Twilio's incoming-message webhook (From ``whatsapp:+…`` for WhatsApp)."""
    params = {
        "ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "",
        "FromZip": "", "SmsSid": sid, "FromState": "", "SmsStatus": "received", "FromCity": "",
        "Body": body, "FromCountry": "", "To": ("whatsapp:" + to) if sender.startswith("whatsapp:") else to,
        "ToZip": "", "NumSegments": "1", "MessageSid": sid, "AccountSid": ACCOUNT_SID, "From": sender,
        "ApiVersion": "2010-04-01",
    }
    params.update({k: str(v) for k, v in extra.items()})
    return params


def status_callback(sid: str, status: str, to: str, error_code: int | None = None) -> dict:
    """The form fields of a message status callback."""
    params = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status, "To": to,
              "From": "+15005550006", "AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01"}
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    return params
