"""The web console in headless Chromium: sign in, see a chat in the Inbox, accept, reply, resolve, live updates.

The page is driven only through a base URL and a "customer writes" step, so the
same test runs in-process and against the real processes (web + worker): the
``console_site`` fixture has both.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import TOPICS, screenshot
from tests.web_console_support import AGENTS_TOML, PASSWORDS, build

from playwright import async_api as playwright_api

expect = playwright_api.expect



@dataclass
class ConsoleSite:
    base_url: str
    # (text, customer id, channel, name, phone, location) -> conversation id
    customer_writes: Callable[..., Awaitable[str]]
    # Whether customers' phone and location reach the profile (not through a Telegram text message).
    profiles: bool = True


@pytest.fixture(params=["in_process", "processes"])
async def console_site(request, redis_url, tmp_path):
    """The console on a real HTTP port: in this process (the core on the real Redis, the workers' own
    drain of the outboxes on this event loop), or the real thing, two ``chatgate web`` processes and a
    worker, customers writing through the fake Telegram webhook on the second web process while the
    browser uses the first."""
    if request.param == "in_process":
        harness = build(tmp_path, redis_url)
        server = TestServer(harness.app)
        await server.start_server()
        yield ConsoleSite(str(server.make_url("")).rstrip("/"), harness.customer_writes)
        await server.close()
        await harness.close()
        return
    from tests.conftest import _deployments
    from tests.fakes.telegram import text_update

    factory = _deployments(lambda: tmp_path / "deployment")
    deploy = next(factory)
    deployment = await asyncio.to_thread(deploy, webs=2, tail=TOPICS + AGENTS_TOML, web={"enabled": True})
    updates = iter(range(1, 10_000))

    async def customer_writes(text: str, customer: str = "1001", channel: str = "telegram", name: str = "Carla",
                              phone: str = "", location: str = "") -> str:
        first, _, last = name.partition(" ")
        update = text_update(next(updates), int(customer.lstrip("+")), text, first_name=first, last_name=last)
        status, body = await asyncio.to_thread(deployment.gateways[1].telegram, update)
        assert status == 200, body
        return ""

    yield ConsoleSite(deployment.gateways[0].base, customer_writes, profiles=False)
    await asyncio.to_thread(next, factory, None)  # stops the deployment (StopIteration must not reach a Future)


async def sign_in(page, base_url: str, user: str = "alice") -> None:
    await page.goto(f"{base_url}/console")
    await expect(page).to_have_url(f"{base_url}/console/login")
    await page.fill("#username", user)
    await page.fill("#password", PASSWORDS[user])
    await page.click("button[type=submit]")
    await expect(page.locator("#me-name")).not_to_be_empty()


async def test_an_agent_signs_in_accepts_replies_and_resolves(browser, console_site):
    site = console_site
    await site.customer_writes("Hello, where is my parcel #4821? It was due on Monday.", customer="7001",
                               name="Carla Mendes", phone="+351 910 000 000", location="Lisbon, Portugal")
    await site.customer_writes("I need a refund for invoice 2024-118", customer="+15550100", channel="sms",
                               name="Dan Brooks", phone="+1 555 0100", location="Ohio, US")
    page = await browser.new_page(viewport={"width": 1280, "height": 860})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    # Wrong password first: a clear refusal, no hint which field was wrong.
    await page.goto(f"{site.base_url}/console/login")
    await page.fill("#username", "alice")
    await page.fill("#password", "not-it")
    await page.click("button[type=submit]")
    await expect(page.locator("#message")).to_have_text("Wrong user name or password.")
    await sign_in(page, site.base_url)
    errors.clear()  # the wrong password's 401 is meant

    # The Inbox lists both chats, newest activity first, with the seed's columns.
    rows = page.locator("#rows tr")
    await expect(rows).to_have_count(2)
    await expect(rows.first).to_contain_text("Dan Brooks")
    await expect(page.locator("#count-inbox")).to_have_text("2")
    await expect(page.locator("#fig-waiting")).to_have_text("2")
    carla = rows.filter(has_text="Carla Mendes")
    await expect(carla).to_contain_text("Telegram")
    await expect(carla).to_contain_text("delivery")
    await expect(carla).to_contain_text("1 message")

    # The chat view: A-D disabled before accept, the profile at the right.
    await carla.click()
    await expect(page.locator("#chat-title")).to_have_text("Carla Mendes")
    for control in ("#ctl-back", "#ctl-sound", "#ctl-leave", "#ctl-resolve"):
        await expect(page.locator(control)).to_be_disabled()
    await expect(page.locator("#reply-form")).to_be_hidden()
    if site.profiles:
        await expect(page.locator("#p-location")).to_have_text("Lisbon, Portugal")
    await expect(page.locator("#p-query")).to_contain_text("where is my parcel")

    # E: accept. Then reply.
    await page.click("#ctl-accept")
    await expect(page.locator("#chat-state")).to_have_text("Active")
    await expect(page.locator("#ctl-resolve")).to_be_enabled()
    await expect(page.locator("#ctl-accept")).to_be_disabled()
    await page.fill("#reply-text", "Hi Carla! Let me check parcel #4821 for you.")
    await page.press("#reply-text", "Enter")
    await expect(page.locator("#history .msg.out")).to_contain_text("Let me check parcel #4821")
    await page.fill("#note-text", "Courier says Thursday.")
    await page.click("#note-form button")
    await expect(page.locator("#history .msg.note")).to_contain_text("Courier says Thursday.")
    await expect(page.locator("#reply-text")).to_be_empty()
    if site.profiles:
        await screenshot(page, "console.png", full_page=True)

    # B: with the speaker off a new customer message shows up live, silently; with it on, it rings.
    incoming = page.locator("#history .msg.in")
    await page.click("#ctl-sound")
    await expect(page.locator("#ctl-sound")).to_have_attribute("aria-pressed", "false")
    await site.customer_writes("Thanks!", customer="7001", name="Carla Mendes")
    await expect(incoming).to_have_count(2)
    await page.click("#ctl-sound")
    await expect(page.locator("#ctl-sound")).to_have_attribute("aria-pressed", "true")
    await site.customer_writes("Any news?", customer="7001", name="Carla Mendes")
    await expect(incoming).to_have_count(3)
    await expect(page.locator("body")).to_have_attribute("data-beeps", "1")

    # D: resolve.
    await page.click("#ctl-resolve")
    await expect(page.locator("#chat-state")).to_have_text("Resolved")
    await expect(page.locator("#ctl-resolve")).to_be_disabled()
    await expect(page.locator("#reply-form")).to_be_hidden()

    # Back in the Inbox: a new customer writes, and the row appears without a reload.
    await page.click("#back-to-list")
    await page.click("#tab-inbox")
    await expect(rows).to_have_count(1)
    await expect(page.locator("#live")).to_have_class("live")
    evil = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> hi'
    await site.customer_writes(evil, customer="7002", name="<b>Mallory</b>")
    await expect(rows).to_have_count(2)
    mallory = rows.filter(has_text="<b>Mallory</b>")
    await expect(mallory).to_have_count(1)
    # A live re-render can reorder the rows between Playwright finding the row and clicking its
    # place on the screen, opening another chat: then go back and click again.
    for _ in range(3):
        await mallory.click()
        try:
            await expect(page.locator("#chat-title")).to_contain_text("<b>Mallory</b>", timeout=2000)
            break
        except AssertionError:
            await page.click("#back-to-list")
    await expect(page.locator("#chat-title")).to_contain_text("<b>Mallory</b>")
    await expect(page.locator("#history .msg.in .text")).to_have_text(evil)
    assert await page.evaluate("window.__xss === undefined")
    assert errors == [], errors


async def test_the_console_fits_a_phone(browser, console_site):
    await console_site.customer_writes("Hi from my phone", customer="7003", name="Pat")
    page = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    await sign_in(page, console_site.base_url)
    await expect(page.locator("#rows tr")).to_have_count(1)
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    await page.locator("#rows tr").first.click()
    await expect(page.locator("#ctl-accept")).to_be_enabled()
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
