"""The agents' web console over HTTP: sign-in, sessions, CSRF, the JSON API, the controls, live events."""

from __future__ import annotations

import asyncio
import json
import re
from importlib import resources

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent_console.web import WebConsole, hash_password, issue_login_token, verify_password
from agent_console.web.config import WebConfig
from agent_console.web.sessions import COOKIE
from gateway.config import ConfigReader as _Reader
from tests.support import eventually_async
from tests.web_console_support import PASSWORDS, build


@pytest.fixture
async def harness(redis_url, tmp_path):
    harness = build(tmp_path, redis_url, "login_attempts = 5\n")
    yield harness
    await harness.close()


@pytest.fixture
async def client(harness):
    async with TestClient(TestServer(harness.app)) as client:
        yield client


async def sign_in(client, user: str = "alice", password: str | None = None):
    return await client.post("/console/login", data={"username": user, "password": password or PASSWORDS[user]},
                             allow_redirects=False)


async def signed_in(client, user: str = "alice") -> str:
    """Sign ``user`` in on ``client``; their CSRF token."""
    response = await sign_in(client, user)
    assert response.status == 303, await response.text()
    return (await (await client.get("/console/api/me")).json())["csrf"]


async def post(client, path: str, csrf: str, body: dict | None = None):
    return await client.post(path, json=body or {}, headers={"X-CSRF-Token": csrf})


def assert_secure(response) -> None:
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Frame-Options"] == "DENY"


# -- sign-in and sessions ----------------------------------------------------------


async def test_signed_out_the_console_sends_to_the_sign_in_page(client):
    response = await client.get("/console", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/console/login"
    assert_secure(response)
    page = await client.get("/console/login")
    assert page.status == 200 and "<form" in await page.text()
    assert_secure(page)
    api = await client.get("/console/api/lists")
    assert api.status == 401
    assert (await api.json())["error"] == "signed_out"
    assert_secure(api)


async def test_sign_in_with_the_right_password_opens_the_console(client):
    response = await sign_in(client)
    assert response.status == 303 and response.headers["Location"] == "/console"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Path=/console" in cookie and "Secure" not in cookie
    page = await client.get("/console")
    assert page.status == 200
    assert_secure(page)
    me = await (await client.get("/console/api/me")).json()
    assert me["agent"] == {"id": "alice", "name": "Alice", "admin": False} and len(me["csrf"]) > 20


async def test_a_wrong_password_or_an_unknown_user_get_the_same_clear_refusal(client):
    for user, password in (("alice", "wrong"), ("nobody", "alice-secret-1"), ("alice", "")):
        response = await sign_in(client, user, password or " ")
        assert response.status == 401
        text = await response.text()
        assert "Wrong user name or password." in text
        assert "Set-Cookie" not in response.headers
        assert_secure(response)
    assert (await client.get("/console/api/me")).status == 401


async def test_sign_in_attempts_are_limited_per_user_name_and_client(client):
    for _ in range(5):
        assert (await sign_in(client, "alice", "wrong")).status == 401
    limited = await sign_in(client, "alice")  # even the right password waits now, from this client
    assert limited.status == 429 and 0 < int(limited.headers["Retry-After"]) <= 60
    assert "Too many sign-in attempts" in await limited.text()
    # Another user name from the same client is not locked (tests/test_web_console_sessions.py has more).
    assert (await sign_in(client, "bob")).status == 303


async def test_a_form_posted_from_another_site_is_refused(client):
    response = await client.post("/console/login", data={"username": "alice", "password": PASSWORDS["alice"]},
                                 headers={"Origin": "https://evil.example"}, allow_redirects=False)
    assert response.status == 403 and "Set-Cookie" not in response.headers


async def test_a_tampered_or_forged_cookie_is_signed_out(client):
    await signed_in(client)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/console"))[COOKIE].value
    version, body, signature = cookie.split(".")
    payload = json.loads(__import__("base64").urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["a"] = "ada"  # try to become the admin with the same signature
    forged = __import__("base64").urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    for value in (f"{version}.{forged}.{signature}", cookie[:-2] + ("AA" if cookie[-2:] != "AA" else "BB"), "junk"):
        client.session.cookie_jar.clear()
        client.session.cookie_jar.update_cookies({COOKIE: value}, client.make_url("/console"))
        assert (await client.get("/console/api/me")).status == 401
        assert (await client.get("/console", allow_redirects=False)).status == 302
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({COOKIE: cookie}, client.make_url("/console"))
    assert (await client.get("/console/api/me")).status == 200  # the untouched cookie still works


async def test_sign_out_ends_the_session_even_for_a_copied_cookie(client):
    csrf = await signed_in(client)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/console"))[COOKIE].value
    assert (await client.post("/console/logout")).status == 403  # no CSRF token
    assert (await client.post("/console/logout", headers={"X-CSRF-Token": csrf})).status == 200
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({COOKIE: cookie}, client.make_url("/console"))
    assert (await client.get("/console/api/me")).status == 401


async def test_a_one_time_sign_in_link_works_once(client, harness):
    token = await issue_login_token(harness.services.store, "ada", ttl=60)
    response = await client.get(f"/console/login/token?t={token}", allow_redirects=False)
    assert response.status == 303 and COOKIE in response.headers["Set-Cookie"]
    me = await (await client.get("/console/api/me")).json()
    assert me["agent"]["admin"] is True
    client.session.cookie_jar.clear()
    again = await client.get(f"/console/login/token?t={token}", allow_redirects=False)
    assert again.status == 401 and "used already" in await again.text()


# -- CSRF, errors -------------------------------------------------------------------


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(client, harness):
    cid = await harness.customer_writes("Hello, my parcel is late")
    csrf = await signed_in(client)
    for headers in ({}, {"X-CSRF-Token": "not-the-token"}):
        response = await client.post(f"/console/api/chats/{cid}/accept", json={}, headers=headers)
        assert response.status == 403
        assert (await response.json())["error"] == "csrf"
    assert (await harness.services.store.get(cid)).state.value == "new"
    assert (await post(client, f"/console/api/chats/{cid}/accept", csrf)).status == 200


async def test_bad_requests_get_json_errors(client, harness):
    cid = await harness.customer_writes("Hi")
    csrf = await signed_in(client)
    cases = [
        (await client.get("/console/api/lists?tab=closed"), 400, "bad_query"),
        (await client.get("/console/api/lists?limit=5000"), 400, "bad_query"),
        (await client.get("/console/api/lists?channel=%3Cb%3E"), 400, "bad_query"),
        (await client.get("/console/api/chats/999999"), 404, "not_found"),
        (await post(client, f"/console/api/chats/{cid}/explode", csrf), 404, "unknown_action"),
        (await post(client, f"/console/api/chats/{cid}/sound", csrf, {"on": "yes"}), 400, "bad_body"),
        (await client.post(f"/console/api/chats/{cid}/note", data=b"[1]", headers={"X-CSRF-Token": csrf}),
         400, "bad_json"),
        (await post(client, f"/console/api/chats/{cid}/reply", csrf, {"text": "x" * 70_000}), 413, "too_large"),
    ]
    for response, status, code in cases:
        assert response.status == status, await response.text()
        body = await response.json()
        assert body["error"] == code and body["message"]
        assert_secure(response)


# -- lists and chats ------------------------------------------------------------------


async def test_lists_show_the_seed_columns_filters_and_figures(client, harness):
    first = await harness.customer_writes("Where is my parcel?", customer="1", name="Carla", location="Lisbon")
    await harness.customer_writes("Refund for invoice 7 please", customer="+15550001", channel="sms", name="",)
    await signed_in(client)
    data = await (await client.get("/console/api/lists?tab=inbox")).json()
    assert data["total"] == 2 and data["counts"] == {"inbox": 2, "assigned": 0}
    assert [row["topic"] for row in data["rows"]] == ["billing", "delivery"]  # last activity first
    row = data["rows"][1]
    assert row["id"] == first and row["customer"] == "Carla" and row["state"] == "new"
    assert row["channel"] == "telegram" and row["channel_label"] == "Telegram"
    assert row["messages"] == 1 and row["first_response"] is None and row["rating"] is None
    assert row["duration"] >= 0 and row["undelivered"] == 0 and row["updated_at"] > 0
    assert data["figures"]["waiting"] == 2
    assert data["channels"] == [{"name": "telegram", "label": "Telegram"}, {"name": "sms", "label": "SMS"},
                                {"name": "whatsapp", "label": "WhatsApp"}]  # the enabled channels
    assert data["topics"] == ["billing", "delivery", "general"]
    only_sms = await (await client.get("/console/api/lists?tab=inbox&channel=sms")).json()
    assert [r["channel"] for r in only_sms["rows"]] == ["sms"] and only_sms["total"] == 1
    by_topic = await (await client.get("/console/api/lists?tab=inbox&topic=delivery")).json()
    assert [r["id"] for r in by_topic["rows"]] == [first]
    paged = await (await client.get("/console/api/lists?tab=inbox&limit=1&offset=1")).json()
    assert [r["id"] for r in paged["rows"]] == [first] and paged["has_more"] is False


async def test_the_chat_json_has_profile_history_and_the_controls_of_this_agent(client, harness):
    cid = await harness.customer_writes("Where is my parcel?", phone="+351910000000", location="Lisbon")
    await signed_in(client)
    chat = await (await client.get(f"/console/api/chats/{cid}")).json()
    assert chat["profile"] == {"name": "Carla", "query": "Where is my parcel?", "phone": "+351910000000",
                               "location": "Lisbon"}
    assert [(h["direction"], h["by"], h["by_name"], h["text"]) for h in chat["history"]] == [
        ("in", "customer", "Carla", "Where is my parcel?")]
    assert chat["controls"] == {"back": False, "sound": False, "leave": False, "resolve": False, "accept": True,
                                "reject": True, "reply": False, "note": False, "redeliver": False,
                                "reassign": False, "transfer": False}
    assert [(c["name"], c["label"], c["arguments"]) for c in chat["available"]] == [
        ("accept", "E Accept", []), ("reject", "F Reject", [])]
    assert chat["state"] == "new" and chat["mine"] is False


async def test_a_control_before_accept_is_refused_clearly_and_changes_nothing(client, harness):
    cid = await harness.customer_writes("Hello")
    csrf = await signed_in(client)
    before = await harness.services.store.history(cid)
    for action, body in (("resolve", {}), ("leave", {}), ("sound", {"on": False}), ("reply", {"text": "Hi"}),
                         ("note", {"text": "n"})):
        response = await post(client, f"/console/api/chats/{cid}/{action}", csrf, body)
        assert response.status == 409, action
        refusal = await response.json()
        assert refusal["error"] == "not_accepted"
        assert refusal["message"] == "Accept this chat first: its controls work only after accept."
    conversation = await harness.services.store.get(cid)
    assert conversation.state.value == "new" and conversation.assignee == ""
    assert await harness.services.store.history(cid) == before


async def test_accept_reply_and_resolve(client, harness):
    cid = await harness.customer_writes("Hello, invoice question")
    csrf = await signed_in(client)
    accepted = await post(client, f"/console/api/chats/{cid}/accept", csrf)
    assert accepted.status == 200
    chat = (await accepted.json())["chat"]
    assert chat["state"] == "active" and chat["assignee_name"] == "Alice" and chat["mine"] is True
    assert chat["controls"]["resolve"] and chat["controls"]["reply"] and not chat["controls"]["accept"]
    assert chat["sound"] is True

    body = {"text": "Hi Carla, let me check.", "client_id": "abcdef123456"}
    assert (await post(client, f"/console/api/chats/{cid}/reply", csrf, body)).status == 200
    again = await post(client, f"/console/api/chats/{cid}/reply", csrf, body)  # a double submit
    history = (await again.json())["chat"]["history"]
    assert [(h["direction"], h["by_name"], h["text"]) for h in history] == [
        ("in", "Carla", "Hello, invoice question"), ("out", "Alice", "Hi Carla, let me check.")]
    assert (await post(client, f"/console/api/chats/{cid}/note", csrf, {"text": "VIP"})).status == 200
    sound = await post(client, f"/console/api/chats/{cid}/sound", csrf, {"on": False})
    assert (await sound.json())["chat"]["sound"] is False

    assigned = await (await client.get("/console/api/lists?tab=assigned")).json()
    assert [r["id"] for r in assigned["rows"]] == [cid] and assigned["rows"][0]["first_response"] is not None

    resolved = await post(client, f"/console/api/chats/{cid}/resolve", csrf)
    assert (await resolved.json())["chat"]["state"] == "resolved"
    twice = await post(client, f"/console/api/chats/{cid}/resolve", csrf)
    assert twice.status == 409 and (await twice.json())["error"] == "already_resolved"


async def test_another_agent_is_told_who_has_the_chat(harness):
    cid = await harness.customer_writes("Hello")
    server = TestServer(harness.app)
    async with TestClient(server) as alice, TestClient(server) as bob:
        alice_csrf, bob_csrf = await signed_in(alice), await signed_in(bob, "bob")
        assert (await post(alice, f"/console/api/chats/{cid}/accept", alice_csrf)).status == 200
        late = await post(bob, f"/console/api/chats/{cid}/accept", bob_csrf)
        assert late.status == 409
        assert (await late.json())["message"] == "Too late: Alice has already accepted this chat."
        resolve = await post(bob, f"/console/api/chats/{cid}/resolve", bob_csrf)
        assert (await resolve.json())["message"] == "Only the agent who accepted this chat (Alice) can do that."
        assert (await harness.services.store.get(cid)).state.value == "active"


async def test_reject_keeps_the_chat_in_the_inbox_for_the_others(harness):
    cid = await harness.customer_writes("Hello")
    server = TestServer(harness.app)
    async with TestClient(server) as alice, TestClient(server) as bob:
        csrf = await signed_in(alice)
        await signed_in(bob, "bob")
        assert (await post(alice, f"/console/api/chats/{cid}/reject", csrf)).status == 200
        assert (await (await alice.get("/console/api/lists")).json())["total"] == 0
        assert (await (await bob.get("/console/api/lists")).json())["total"] == 1


# -- admins -------------------------------------------------------------------------


async def test_admins_switch_auto_close_reassign_and_see_the_agents(harness):
    cid = await harness.customer_writes("Hello")
    server = TestServer(harness.app)
    async with TestClient(server) as alice, TestClient(server) as ada:
        alice_csrf, ada_csrf = await signed_in(alice), await signed_in(ada, "ada")
        assert (await alice.get("/console/api/admin")).status == 403
        denied = await post(alice, "/console/api/admin", alice_csrf, {"auto_close": False, "after": 60})
        assert denied.status == 403 and (await denied.json())["error"] == "not_admin"

        panel = await (await ada.get("/console/api/admin")).json()
        assert panel["auto_close"] == {"enabled": True, "after": 900.0}
        assert {"id": "bob", "name": "Bob", "admin": False, "slack": "U0BOB", "web_sign_in": True} in panel["agents"]
        saved = await post(ada, "/console/api/admin", ada_csrf, {"auto_close": False, "after": 1})
        assert saved.status == 200 and (await saved.json())["auto_close"] == {"enabled": False, "after": 1.0}
        bad = await post(ada, "/console/api/admin", ada_csrf, {"auto_close": True, "after": 0})
        assert bad.status == 409 and "more than zero" in (await bad.json())["message"]

        await post(alice, f"/console/api/chats/{cid}/accept", alice_csrf)
        assert (await post(alice, f"/console/api/chats/{cid}/reassign", alice_csrf, {"to": "bob"})).status == 403
        chat = await (await ada.get(f"/console/api/chats/{cid}")).json()
        assert chat["controls"]["reassign"] and {a["id"] for a in chat["agents"]} == {"alice", "bob", "ada"}
        moved = await post(ada, f"/console/api/chats/{cid}/reassign", ada_csrf, {"to": "bob"})
        assert moved.status == 200 and (await moved.json())["chat"]["assignee_name"] == "Bob"


# -- live ---------------------------------------------------------------------------


async def read_events(response, count: int, timeout: float = 5.0) -> list[tuple[str, str, dict]]:
    """``count`` chat events (id, event, data) from an SSE response."""
    found: list[tuple[str, str, dict]] = []
    current: dict[str, str] = {}

    async def read() -> None:
        while len(found) < count:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line == "":
                if current.get("event") == "chat":
                    found.append((current.get("id", ""), "chat", json.loads(current["data"])))
                current.clear()
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                current[name] = value

    await asyncio.wait_for(read(), timeout)
    return found


async def test_the_event_stream_resumes_from_last_event_id_without_losing_events(client, harness):
    harness.console.ping_every = 0.2
    cid = await harness.customer_writes("Hello")  # event 1: created
    csrf = await signed_in(client)
    await post(client, f"/console/api/chats/{cid}/accept", csrf)  # event 2: accepted

    async def both_events() -> list:  # on the stream once the worker has drained the chat's outbox
        stream = await harness.services.store.redis.xrange(harness.services.store.key("web", "events"))
        return stream if len(stream) >= 2 else []

    stream = await eventually_async(both_events, what="the created and accepted events on the stream")
    first_id = stream[0][0].decode()

    # A browser that saw only the first event reconnects: it gets what it missed, then what comes next.
    async with client.get("/console/api/events", headers={"Last-Event-ID": first_id}) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert_secure(response)
        missed = await read_events(response, 1)
        assert [(e["conversation_id"], e["kind"], e["by"]) for _, _, e in missed] == [(cid, "accepted", "alice")]
        assert missed[0][0] == stream[1][0].decode()
        await post(client, f"/console/api/chats/{cid}/reply", csrf, {"text": "Hi"})
        live = await read_events(response, 1)
        assert live[0][2]["conversation_id"] == cid and int(live[0][0].split("-")[0]) > 0
    # ?since= does the same for a client that cannot set headers.
    async with client.get(f"/console/api/events?since={first_id}") as response:
        assert len(await read_events(response, 2)) == 2


async def test_the_stream_sends_figures_and_needs_a_session(client, harness):
    harness.console.ping_every = 0.1
    assert (await client.get("/console/api/events")).status == 401
    await signed_in(client)
    async with client.get("/console/api/events") as response:
        text = b""
        while b"event: figures" not in text or b": ping" not in text:
            text += await asyncio.wait_for(response.content.readany(), 3)
        assert b'"waiting": 0' in text


# -- customer text is text -----------------------------------------------------------


async def test_customer_markup_is_data_never_markup(client, harness):
    evil = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
    cid = await harness.customer_writes(evil, name="<b>Mallory</b>")
    await signed_in(client)
    response = await client.get(f"/console/api/chats/{cid}")
    assert response.headers["Content-Type"].startswith("application/json")
    chat = await response.json()
    assert chat["history"][0]["text"] == evil and chat["profile"]["name"] == "<b>Mallory</b>"
    # The page has no inline script, and its script never parses HTML from data.
    static = resources.files("agent_console.web").joinpath("static")
    page = static.joinpath("console.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", page) and " on" not in re.sub(r"<!--.*?-->", "", page).lower()
    script = static.joinpath("console.js").read_text()
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", script)


async def test_static_files_are_served_with_secure_headers_and_nothing_else(client):
    css = await client.get("/console/static/console.css")
    assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")
    assert_secure(css)
    assert (await client.get("/console/static/..%2F__init__.py")).status == 404
    assert (await client.get("/console/static/nothing.js")).status == 404


# -- passwords and config --------------------------------------------------------------


def test_password_hashes_are_scrypt_and_checked_in_constant_time():
    stored = hash_password("correct horse")
    scheme, n, r, p, salt, digest = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1") and salt and digest
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsE", stored)
    assert hash_password("correct horse") != stored  # salted
    for broken in ("", "scrypt$", "bcrypt$16384$8$1$AA$AA", stored.replace("$16384$", "$99999999$"),
                   stored[:-4] + "!!!!"):
        assert not verify_password("correct horse", broken)


def test_the_web_section_is_read_and_checked():
    problems: list[str] = []
    config = WebConsole.load_config(_Reader({"session_secret": "x" * 40, "session_max_age": "2h",
                                             "login_attempts": 3, "cookie_secure": True}, "c.toml", problems, "web"))
    assert problems == []
    assert config == WebConfig(True, "x" * 40, 7200.0, 3, True)
    problems = []
    WebConsole.load_config(_Reader({"session_secret": "short", "login_attempts": 0, "colour": "blue"},
                                   "c.toml", problems, "web"))
    assert len(problems) == 3 and not any("short" in p for p in problems)  # the secret is never echoed
    assert WebConsole.load_config(_Reader({}, "c.toml", [], "web")) == WebConfig()


async def test_chatgates_own_address_opens_the_console(client):
    response = await client.get("/", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/console"
