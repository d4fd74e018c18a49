"""The web-chat page in headless Chromium: a customer starts, writes, sees the agent live, rates; the widget embeds it."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestServer

from channels.webchat import COOKIE, WebChat, WebChatConfig
from gateway.ports import Runtime
from tests.conftest import screenshot
from tests.support import eventually_async
from tests.test_webchat import AGENT, core, deliver  # noqa: F401 (core is a fixture)

from playwright import async_api as playwright_api



async def serve(app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def test_customer_chats_with_an_agent_live(core, browser):
    expect = playwright_api.expect
    chat = WebChat(WebChatConfig(greeting="Hi! How can we help?"), Runtime(core.config, core.store))
    chat.events_wait = 0.5
    app = web.Application()
    chat.mount(app, core)
    server = await serve(app)
    try:
        context = await browser.new_context(viewport={"width": 390, "height": 740})
        page = await context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        # (The first look for a session is answered 401 before the customer starts: expected.)
        page.on("console", lambda msg: problems.append(msg.text)
                if msg.type == "error" and "status of 401" not in msg.text else None)

        await page.goto(str(server.make_url("/chat")))
        await expect(page.locator("#start")).to_be_visible()
        await page.fill("#name", "Ada")
        await page.fill("#location", "London")
        await page.click("#start-button")
        await expect(page.locator("#chat")).to_be_visible()
        await expect(page.locator(".msg.system").first).to_have_text("Hi! How can we help?")

        await page.fill("#text", "Where is my parcel? <img src=x onerror=alert(1)>")
        await page.press("#text", "Enter")
        await expect(page.locator(".msg.you .text")).to_have_text("Where is my parcel? <img src=x onerror=alert(1)>")
        await expect(page.locator("#status")).to_have_text("Waiting for an agent…")

        customer = next(c["value"] for c in await context.cookies() if c["name"] == COOKIE).split(".")[0]
        conversation = await eventually_async(lambda: core.store.open_conversation("webchat", customer),
                                              what="the customer's chat")
        assert (conversation.name, conversation.location) == ("Ada", "London")

        # The agent answers: the reply appears without a reload, its markup as elements.
        await core.conversations.accept(conversation.id, AGENT)
        await core.conversations.reply(conversation.id, AGENT,
                                       "**Hello** _Ada_, track it [here](https://track.example/1) "
                                       "(not [this](javascript:alert(1)))")
        await deliver(core, chat, customer)
        agent = page.locator(".msg.agent")
        await expect(agent.locator("strong")).to_have_text("Hello")
        await expect(agent.locator("em")).to_have_text("Ada")
        link = agent.locator("a")
        await expect(link).to_have_count(1)
        await expect(link).to_have_attribute("href", "https://track.example/1")
        assert "noopener" in await link.get_attribute("rel")
        await expect(agent).to_contain_text("[this](javascript:alert(1))")
        await expect(page.locator("#status")).to_have_text("Connected")
        await screenshot(page, "webchat.png")

        # Reloading keeps the conversation.
        await page.reload()
        await expect(page.locator(".msg.you")).to_have_count(1)
        await expect(page.locator(".msg.agent strong")).to_have_text("Hello")

        # Resolved: the rating question and its buttons arrive live; a click stores the rating.
        await core.conversations.resolve(conversation.id, AGENT)
        await deliver(core, chat, customer)
        await expect(page.locator("#rating")).to_be_visible()
        await page.click("#rating [data-rating='5']")
        await expect(page.locator("#rating")).to_be_hidden()
        async def rating() -> int | None:
            return (await core.store.get(conversation.id)).rating

        assert await eventually_async(rating, what="the rating stored") == 5
        await deliver(core, chat, customer)
        await expect(page.locator(".msg.system .text").last).to_have_text(core.config.conversation.rating_thanks)

        # Closed: the page says so; a new message starts a new chat.
        await core.conversations.leave(conversation.id, AGENT)
        await expect(page.locator("#closed")).to_be_visible(timeout=5000)
        await page.fill("#text", "One more thing")
        await page.press("#text", "Enter")
        await expect(page.locator("#closed")).to_be_hidden()
        await expect(page.locator(".msg.you .text")).to_have_text(["One more thing"])
        second = await eventually_async(lambda: core.store.open_conversation("webchat", customer),
                                        what="the new chat")
        assert second.id != conversation.id

        assert problems == []
        await context.close()
    finally:
        await server.close()


async def test_widget_embeds_the_chat_on_an_allowed_site_only(core, browser):
    expect = playwright_api.expect
    host_page = web.Application()
    server_holder: list[TestServer] = []

    async def shop(request: web.Request) -> web.Response:
        src = server_holder[0].make_url("/chat/widget.js")
        return web.Response(text=f'<!doctype html><title>Shop</title><h1>Shop</h1><script src="{src}"></script>',
                            content_type="text/html")

    host_page.router.add_get("/", shop)
    allowed_site = await serve(host_page)
    other_site = await serve(host_page)
    allowed = f"http://127.0.0.1:{allowed_site.port}"
    chat = WebChat(WebChatConfig(allowed_origins=(allowed,)), Runtime(core.config, core.store))
    chat.events_wait = 0.5
    app = web.Application()
    chat.mount(app, core)
    server_holder.append(await serve(app))
    try:
        page = await browser.new_page()
        await page.goto(f"{allowed}/")
        launcher = page.get_by_role("button", name="Chat with us")
        await launcher.click()
        frame = page.frame_locator("#chatgate-chat")
        await frame.locator("#name").fill("Grace")
        await frame.locator("#start-button").click()
        await frame.locator("#text").fill("Hello from the shop")
        await frame.locator("#text").press("Enter")
        await expect(frame.locator(".msg.you .text")).to_have_text("Hello from the shop")
        assert (await core.store.inbox()).total == 1
        await page.close()

        # A site that is not allowed: the frame stays empty (frame-ancestors).
        page = await browser.new_page()
        await page.goto(f"http://127.0.0.1:{other_site.port}/")
        await page.get_by_role("button", name="Chat with us").click()
        # Chromium refuses to load the chat into the frame: the frame ends on its error page.
        child = await eventually_async(lambda: next((f for f in page.frames if f != page.main_frame
                                                     and f.url.startswith("chrome-error:")), None),
                                       what=lambda: f"the frame refused (frames: {[f.url for f in page.frames]})")
        assert await child.locator("#name").count() == 0
        await page.close()
    finally:
        for server in (*server_holder, allowed_site, other_site):
            await server.close()
