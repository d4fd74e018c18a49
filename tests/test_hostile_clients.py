"""Hostile clients and exposed surfaces, over HTTP.

Files agents send are served so a browser cannot run them on chatgate's origin; platform credentials
go only to the platform's own hosts; ``/metrics`` and ``/healthz`` say no more than they must to
strangers; no answer names the server's software; an Inbox page cannot ask Redis for a long script.
The app runs in-process (aiohttp's TestServer) on the real Redis, except the Twilio media test, which
runs the real ``chatgate web`` and ``chatgate worker`` (the worker fetches a customer's media).
"""

from __future__ import annotations

import time

import pytest
import redis as redis_sync
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from chatgate.compose import connect
from gateway.app import SERVICES, create_app
from gateway.config import ConfigError
from gateway.message import File
from gateway.ports import DeliveryError
from gateway.store import MAX_OFFSET
from tests import conftest
from tests.fakes.server import FakeServer
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, inbound, signed
from tests.support import eventually, eventually_async, slack_agents

METRICS_TOKEN = "metrics-token-0123456789abcdef"
SIGNING_SECRET = conftest.SIGNING_SECRET
CHANNEL = conftest.CHANNEL
PUBLIC_URL = "https://support.example.com"

SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.cookie)">'
       b'<script>fetch("/console/api/me")</script></svg>')
HTML = b"<!doctype html><script>fetch('/console/api/me').then(r => r.text()).then(alert)</script>"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


class Recorder(FakeServer):
    """A host that is not the platform's: answers every GET with a small JPEG and records the
    Authorization header each request carried."""

    def __init__(self):
        super().__init__()
        self.authorizations: list[str] = []

    def app(self) -> web.Application:
        async def any_file(request: web.Request) -> web.Response:
            self.authorizations.append(request.headers.get("Authorization", ""))
            self.record(request.path, {"authorization": request.headers.get("Authorization", "")})
            return web.Response(body=b"\xff\xd8\xff\xe0stolen", content_type="image/jpeg")

        app = web.Application()
        app.router.add_get("/{tail:.*}", any_file)
        return app


@pytest.fixture
def recorder():
    server = Recorder().start()
    yield server
    server.stop()


def app_config(slack_url: str, extra: str = "") -> str:
    return f"""
[slack]
enabled = true
bot_token = "xoxb-the-bot-token"
signing_secret = "{SIGNING_SECRET}"
channel = "{CHANNEL}"
api_url = "{slack_url}"
{extra}
"""


@pytest.fixture
async def make_client(redis_url, make_config, slack):
    """``await make_client(extra_toml)``: the web app in-process with the fake Slack; closed after the test."""
    clients = []

    async def make(extra: str = "") -> TestClient:
        client = TestClient(TestServer(create_app(connect(make_config(app_config(slack.api_url, extra)),
                                                          redis_url))))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


class Files:
    """A source of files (as a console that holds them): what ``GET /media/<token>`` streams."""

    fetches_files = False

    def __init__(self, files: dict[str, tuple[bytes, str]]):
        self.files = files

    async def open_file(self, attachment: dict) -> File:
        data, content_type = self.files[attachment["ref"]]
        return File(data, attachment["name"], content_type)


# -- 1. files agents send are passive on our origin --------------------------------------------------


@pytest.mark.parametrize("name, data, content_type", [
    ("invite.svg", SVG, "image/svg+xml"),
    ("page.html", HTML, "text/html; charset=utf-8"),
    ("page.xhtml", HTML, "application/xhtml+xml"),
    ("notes", HTML, ""),
])
async def test_a_shared_html_or_svg_file_is_a_download_that_cannot_run(make_client, name, data, content_type):
    client = await make_client()
    media = client.server.app[SERVICES].media
    media.sources["files"] = Files({"x": (data, content_type)})
    token = await media.token({"source": "files", "ref": "x", "name": name, "content_type": content_type})
    async with client.get(f"/media/{token}") as response:
        assert response.status == 200
        assert await response.read() == data
        headers = response.headers
    assert headers["Content-Disposition"].startswith("attachment;")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == "sandbox"
    assert headers["Content-Type"].split(";")[0] == (content_type.split(";")[0] or "application/octet-stream")


@pytest.mark.parametrize("content_type", ["image/png", "image/jpeg", "audio/ogg", "video/mp4", "application/pdf"])
async def test_passive_files_are_shown_inline_still_sandboxed(make_client, content_type):
    client = await make_client()
    media = client.server.app[SERVICES].media
    media.sources["files"] = Files({"x": (PNG, content_type)})
    token = await media.token({"source": "files", "ref": "x", "name": "label", "content_type": content_type})
    async with client.get(f"/media/{token}") as response:
        assert response.status == 200 and await response.read() == PNG
        assert response.headers["Content-Type"] == content_type
        assert response.headers["Content-Disposition"].startswith("inline;")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Security-Policy"] == "sandbox"


async def test_media_links_go_to_server_media_url_when_set(make_client):
    client = await make_client('[server]\npublic_url = "https://support.example.com"\n'
                               'media_url = "https://media.example-files.com/"\n')
    services = client.server.app[SERVICES]
    url = await services.media.url(services.config.server.public_url, {"source": "slack", "ref": "x"})
    assert url.startswith("https://media.example-files.com/media/")


@pytest.mark.parametrize("value", ["media.example.com", "ftp://media.example.com", "https://media.example.com/?a=1",
                                   "https://user@media.example.com", "https:///media"])
def test_a_malformed_media_url_is_a_config_error_naming_key_file_and_expectation(make_config, value):
    with pytest.raises(ConfigError) as error:
        make_config(f'[server]\nmedia_url = "{value}"\n')
    problem = next(p for p in error.value.problems if "media_url" in p)
    assert problem.startswith(f"{error.value.problems[0].split(':')[0]}:") and "config.toml" in problem
    assert "server.media_url: expected a base URL like" in problem and repr(value) in problem


# -- 2. credentials only to the platform's own hosts -------------------------------------------------


async def test_a_slack_file_on_a_foreign_host_is_not_fetched_and_gets_no_token(make_client, slack, recorder):
    client = await make_client()
    media = client.server.app[SERVICES].media
    foreign = await media.token({"source": "slack", "ref": f"{recorder.url}/files-pri/T1-F1/x.png", "name": "x.png"})
    async with client.get(f"/media/{foreign}") as response:
        assert response.status == 404
        error = (await response.json())["error"]
    assert "not fetched, no credentials sent" in error and "slack.file_hosts" in error
    assert recorder.authorizations == [] and recorder.calls == []
    # The same file on the configured Slack (api_url's origin) is fetched with the token.
    shared = slack.add_private_file("x.png", PNG, "image/png")
    own = await media.token({"source": "slack", "ref": shared["url_private"], "name": "x.png",
                             "content_type": "image/png"})
    async with client.get(f"/media/{own}") as response:
        assert response.status == 200 and await response.read() == PNG


def test_the_allowlists_take_the_platforms_hosts_and_refuse_the_rest():
    from gateway.hosts import host_allowed

    twilio = ("api.twilio.com", "*.twilio.com", "*.twiliocdn.com")
    assert host_allowed("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", twilio)
    assert host_allowed("https://media.twiliocdn.com/AC1/x", twilio)
    assert not host_allowed("http://api.twilio.com/x", twilio)  # never in clear
    assert not host_allowed("https://api.twilio.com.evil.example/x", twilio)
    assert not host_allowed("https://eviltwilio.com/x", twilio)
    assert not host_allowed("https://user@api.twilio.com/x", twilio)
    assert host_allowed("http://127.0.0.1:8000/media/1", twilio, api_url="http://127.0.0.1:8000")
    assert not host_allowed("http://127.0.0.1:8001/media/1", twilio, api_url="http://127.0.0.1:8000")
    assert host_allowed("https://files.slack.com/files-pri/T1-F1/x", ("files.slack.com",), "https://slack.com/api/")
    assert not host_allowed("https://files.slack.com.evil.example/x", ("files.slack.com",), "https://slack.com/api/")


def test_a_host_allowlist_that_is_not_host_names_is_a_config_error(make_config):
    with pytest.raises(ConfigError) as error:
        make_config(app_config("http://127.0.0.1:9/api/", 'file_hosts = ["https://files.slack.com/"]'))
    assert any("slack.file_hosts: expected a list of host names" in p for p in error.value.problems)
    config = make_config(app_config("http://127.0.0.1:9/api/", 'file_hosts = ["files.slack.com", "*.slack-edge.com"]'))
    assert config.section("slack").file_hosts == ("files.slack.com", "*.slack-edge.com")


TWILIO = {"enabled": True, "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "sms_from": "+15005550006"}


def test_a_twilio_media_url_on_a_foreign_host_gets_no_credentials(deployment, recorder):
    d = deployment(server={"public_url": PUBLIC_URL}, twilio=TWILIO)
    number = "+14155550177"
    own = d.twilio.add_media(f"2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM1/Media/ME1", PNG, "image/png")
    params = inbound("SM" + "7" * 32, number, "photos of the damage", NumMedia=2,
                     MediaUrl0=f"{recorder.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM1/Media/ME2",
                     MediaContentType0="image/jpeg", MediaUrl1=own, MediaContentType1="image/png")
    body, headers = signed(AUTH_TOKEN, PUBLIC_URL + "/webhooks/twilio", params)
    assert d.gateway.post("/webhooks/twilio", body, headers)[0] == 200
    warning = eventually(lambda: [c.params["text"] for c in d.slack.calls_to("chat.postMessage")
                                  if "could not be brought here" in str(c.params.get("text"))],
                         what="the note about the refused file")[0]
    assert "not fetched, no credentials sent" in warning and "twilio.media_hosts" in warning
    # The file on Twilio's own host (the fake, at api_url) still comes through, fetched with the credentials.
    eventually(lambda: [f for f in d.slack.files if f["data"] == PNG], what="the photo from Twilio's host")
    d.wait_idle()
    assert recorder.authorizations == [] and recorder.calls == []


# -- 3. closed surfaces ------------------------------------------------------------------------------


async def test_metrics_need_the_token_when_one_is_set(make_client):
    client = await make_client(f'[metrics]\ntoken = "{METRICS_TOKEN}"\n')
    async with client.get("/metrics") as response:
        assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "chatgate_conversations" not in await response.text()
    for wrong in ("Bearer nope", f"Basic {METRICS_TOKEN}", METRICS_TOKEN, f"Bearer {METRICS_TOKEN}x"):
        async with client.get("/metrics", headers={"Authorization": wrong}) as response:
            assert response.status == 401, wrong
    async with client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}) as response:
        assert response.status == 200
        assert 'chatgate_conversations{state="new"}' in await response.text()


async def test_metrics_stay_open_without_a_token_and_the_token_may_come_from_the_environment(
        make_client, monkeypatch):
    client = await make_client()
    async with client.get("/metrics") as response:
        assert response.status == 200
    monkeypatch.setenv("CHATGATE_TEST_METRICS_TOKEN", METRICS_TOKEN)
    client = await make_client('[metrics]\ntoken = "env:CHATGATE_TEST_METRICS_TOKEN"\n')
    async with client.get("/metrics") as response:
        assert response.status == 401
    async with client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}) as response:
        assert response.status == 200


def test_a_short_metrics_token_is_a_config_error(make_config):
    with pytest.raises(ConfigError) as error:
        make_config('[metrics]\ntoken = "short"\n')
    assert any("metrics.token: expected a secret of at least 16 characters" in p for p in error.value.problems)


async def test_healthz_says_only_ok_or_not_to_strangers(make_config, slack):
    unreachable = "unix:///nonexistent/chatgate-test/redis.sock"
    config = make_config(app_config(slack.api_url, f'[metrics]\ntoken = "{METRICS_TOKEN}"\n'))
    async with TestClient(TestServer(create_app(connect(config, unreachable)))) as client:
        async with client.get("/healthz") as response:
            assert response.status == 503
            assert await response.json() == {"ok": False}
        async with client.get("/healthz", headers={"Authorization": "Bearer wrong"}) as response:
            assert response.status == 503 and await response.json() == {"ok": False}
        async with client.get("/healthz", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}) as response:
            assert response.status == 503
            health = await response.json()
    assert health["ok"] is False and "/nonexistent/chatgate-test/redis.sock" in health["redis"]


async def test_healthz_ok_without_details(make_client):
    client = await make_client()
    async with client.get("/healthz") as response:
        assert response.status == 200 and await response.json() == {"ok": True}


async def test_no_answer_names_the_server_software_or_version(make_client):
    client = await make_client()
    for path in ("/healthz", "/metrics", "/no/such/page", "/media/forged.token", "/console"):
        async with client.get(path, allow_redirects=False) as response:
            assert response.headers.get("Server") == "chatgate", (path, response.headers.get("Server"))
    async with client.post("/slack/events", data=b"x") as response:
        assert response.headers.get("Server") == "chatgate"


# -- 4. bounded pages --------------------------------------------------------------------------------


async def fill_inbox(services, count: int) -> None:
    """``count`` waiting chats, straight through the state machine (as the bench fills it)."""
    calls = [("ingest", 1_767_225_600.0 + n, "", {
        "channel": "sms", "customer": f"+1415555{n:04d}", "platform_id": f"SM{n}", "text": "hello", "name": "",
        "phone": "", "location": "", "attachments": "[]", "topic": "", "rating_thanks": "", "seen_ttl": "60",
        "head_start": "0", "team_only": "0"}) for n in range(count)]
    for start in range(0, count, 500):
        await services.store.run_many(calls[start:start + 500])


async def test_the_console_api_refuses_a_deep_page_with_a_reason(redis_url, tmp_path):
    from tests.web_console_support import PASSWORDS, build

    harness = build(tmp_path, redis_url)
    try:
        await fill_inbox(harness.services, 1030)
        async with TestClient(TestServer(harness.app)) as client:
            signed = await client.post("/console/login", data={"username": "alice", "password": PASSWORDS["alice"]},
                                       allow_redirects=False)
            assert signed.status == 303
            async with client.get(f"/console/api/lists?tab=inbox&offset={MAX_OFFSET + 1}") as response:
                assert response.status == 400
                refusal = await response.json()
            assert refusal["error"] == "bad_query"
            assert "at most 1,000" in refusal["message"] and "filter" in refusal["message"]
            async with client.get("/console/api/lists?tab=inbox&offset=99980") as response:
                assert response.status == 400
            async with client.get(f"/console/api/lists?tab=inbox&offset={MAX_OFFSET}&limit=20") as response:
                assert response.status == 200
                page = await response.json()
            assert len(page["rows"]) == 20 and page["total"] == 1030 and page["has_more"] is False
            assert page["max_offset"] == MAX_OFFSET
            async with client.get("/console/api/lists?tab=inbox&offset=980&limit=20") as response:
                assert (await response.json())["has_more"] is True
    finally:
        await harness.close()


async def test_the_store_refuses_a_deep_page_and_the_deepest_one_is_fast(services):
    await fill_inbox(services, 1200)
    with pytest.raises(ValueError):
        await services.store.inbox_for("U1", offset=MAX_OFFSET + 1)
    with pytest.raises(ValueError):
        await services.store.assigned_for("U1", offset=MAX_OFFSET + 1)
    page = await services.store.inbox_for("U1", offset=MAX_OFFSET, limit=100)
    assert len(page.conversations) == 100 and page.total == 1200
    slowlog = redis_sync.Redis.from_url(services.redis_url)
    slowlog.config_set("slowlog-log-slower-than", 0)
    slowlog.slowlog_reset()
    for _ in range(5):
        await services.store.inbox_for("U1", offset=MAX_OFFSET, limit=100)
    scripts = [entry["duration"] for entry in slowlog.slowlog_get(128)
               if entry["command"].upper().startswith((b"EVALSHA", b"EVAL "))]
    slowlog.config_set("slowlog-log-slower-than", 10000)
    assert scripts and max(scripts) < 20_000, scripts  # microseconds; about 1.5 ms on the CI machine


async def test_the_slack_home_pages_no_deeper_than_the_bound(make_client, slack):
    import json

    from agent_console.slack.home import HomeState
    from tests.fakes.slack import home_action, sign

    client = await make_client(slack_agents("UAGENT1"))
    await fill_inbox(client.server.app[SERVICES], 1030)
    # A state saved deeper (before the bound) is read back at the deepest page.
    assert HomeState.from_json('{"tab": "inbox", "offset": 99980}').offset == MAX_OFFSET

    async def click(value: str) -> str:
        before = len(slack.calls_to("views.publish"))
        body = home_action("home_page_next", "UAGENT1", value)
        async with client.post("/slack/events", data=body.encode(), headers={
                "Content-Type": "application/x-www-form-urlencoded", **sign(SIGNING_SECRET, body)}) as response:
            assert response.status == 200
        await eventually_async(lambda: len(slack.calls_to("views.publish")) > before, what="the Home published")
        return json.dumps(slack.home_views["UAGENT1"]["blocks"], ensure_ascii=False)

    refused = await click("99980")
    assert "Pages go back at most 1,000 chats" in refused and "1–10 of 1030" in refused
    deepest = await click(str(MAX_OFFSET))
    assert "1001–1010 of 1030" in deepest and "filter by channel or topic" in deepest
    assert "home_page_next" not in deepest and "home_page_previous" in deepest
