"""The whole workflow of a contact center in headless Chromium, both pages against a real chatgate.

Two ``chatgate web`` processes (customers on A, agents' consoles on B, and one on A), one worker, the
fake Slack on, auto-close after 1 s: a customer writes on /chat, the chat appears live in the
console's Inbox, a control before accept is disabled and refused by the server, a second customer's
row appears live (events fan out across the web processes through Redis), accept, reply, the speaker,
resolve, the 1-5 rating, auto-close, the return with the previous agent's head start, and one chat
worked from Slack and the web console at once. The README's screenshots are taken on the way
(with ``CHATGATE_SCREENSHOTS=docs``).
"""

from __future__ import annotations

import asyncio

from tests.conftest import TOPICS, screenshot
from tests.support import eventually_async
from tests.web_console_support import AGENTS_TOML, PASSWORDS

from playwright import async_api as playwright_api

expect = playwright_api.expect

RATING_THANKS = "Thanks for your rating!"
BOB_IN_SLACK = "U0BOB"  # bob's Slack user id in AGENTS_TOML: one person, one agent in both consoles

# Counts the tones the console really starts (B speaker), whatever the page says about itself.
COUNT_TONES = """
window.__tones = 0;
if (window.AudioContext) {
  const create = AudioContext.prototype.createOscillator;
  AudioContext.prototype.createOscillator = function () {
    const oscillator = create.call(this);
    const start = oscillator.start.bind(oscillator);
    oscillator.start = (...args) => { window.__tones += 1; return start(...args); };
    return oscillator;
  };
}
"""

# A control forced past the page: the API called with the page's own session and CSRF token.
FORCE = """async ([id, action]) => {
  const me = await (await fetch('/console/api/me', {headers: {Accept: 'application/json'}})).json();
  const response = await fetch(`/console/api/chats/${encodeURIComponent(id)}/${action}`, {
    method: 'POST', body: '{}',
    headers: {'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRF-Token': me.csrf}});
  return [response.status, await response.json()];
}"""


def watch(page, problems: list[str], allowed: tuple[str, ...] = ()) -> None:
    """Collect the page's errors: script errors, console errors, failed requests (but ``allowed``)."""
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(msg.text)
            if msg.type == "error" and not any(a in msg.text for a in allowed) else None)


async def customer(browser, base: str, name: str, problems: list[str], **fields: str):
    """A customer's own browser on /chat who gave their name; the page."""
    context = await browser.new_context(viewport={"width": 390, "height": 740})
    page = await context.new_page()
    # The first look for a session is answered 401 before the customer starts: expected.
    watch(page, problems, allowed=("status of 401",))
    await page.goto(f"{base}/chat")
    await page.fill("#name", name)
    for field, value in fields.items():
        await page.fill(f"#{field}", value)
    await page.click("#start-button")
    await expect(page.locator("#chat")).to_be_visible()
    return page


async def write(page, text: str) -> None:
    await page.fill("#text", text)
    await page.press("#text", "Enter")
    await expect(page.locator(".msg.you .text").last).to_have_text(text)


async def agent(browser, base: str, user: str, problems: list[str], width: int = 1280, height: int = 820):
    """An agent signed in to the console; the page (on the Inbox)."""
    context = await browser.new_context(viewport={"width": width, "height": height})
    await context.add_init_script(COUNT_TONES)
    page = await context.new_page()
    watch(page, problems)
    await page.goto(f"{base}/console")
    await expect(page).to_have_url(f"{base}/console/login")
    await page.fill("#username", user)
    await page.fill("#password", PASSWORDS[user])
    await page.click("button[type=submit]")
    await expect(page.locator("#me-name")).not_to_be_empty()
    await expect(page.locator("#live")).to_have_class("live")  # the event stream is open
    return page


def chat_id(page) -> str:
    return page.url.rsplit("#/chat/", 1)[1]


async def test_the_whole_workflow_from_both_pages(deployment, browser):
    chatgate = await asyncio.to_thread(
        deployment, webs=2, workers=1, tail=TOPICS + AGENTS_TOML, web={"enabled": True},
        webchat={"greeting": "Hello! How can we help?"},
        conversation={"auto_close": True, "auto_close_after": 1, "rating_thanks": RATING_THANKS})
    site_a, site_b = (gateway.base for gateway in chatgate.gateways)
    problems: list[str] = []

    # -- a customer writes on /chat (web process A); the chat appears live in the console (B) --
    alice = await agent(browser, site_b, "alice", problems)
    rows = alice.locator("#rows tr")
    await expect(alice.locator("#empty")).to_be_visible()
    carla = await customer(browser, site_a, "Carla Mendes", problems, location="Lisbon, Portugal")
    await write(carla, "Hello, where is my parcel #4821? It was due on Monday.")
    await expect(carla.locator("#status")).to_have_text("Waiting for an agent…")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Carla Mendes")
    await expect(rows.first).to_contain_text("Web chat")
    await expect(rows.first).to_contain_text("delivery")

    # Opened before accept: A-D are disabled, and D forced through the API is refused, saying why.
    await rows.first.click()
    await expect(alice.locator("#chat-title")).to_have_text("Carla Mendes")
    first_chat = chat_id(alice)
    for control in ("#ctl-back", "#ctl-sound", "#ctl-leave", "#ctl-resolve"):
        await expect(alice.locator(control)).to_be_disabled()
    await expect(alice.locator("#ctl-accept")).to_be_enabled()
    status, body = await alice.evaluate(FORCE, [first_chat, "resolve"])
    assert (status, body["error"]) == (409, "not_accepted"), body
    assert body["message"] == "Accept this chat first: its controls work only after accept.", body
    await expect(alice.locator("#chat-state")).to_have_text("New")

    # -- a second customer writes while the agent watches the Inbox: the row appears live --
    await alice.click("#back-to-list")
    await expect(rows).to_have_count(1)
    dan = await customer(browser, site_a, "Dan Brooks", problems, phone="+1 555 0100")
    await write(dan, "I need a refund for invoice 2024-118")
    await expect(rows).to_have_count(2)
    await expect(rows.first).to_contain_text("Dan Brooks")  # last activity first
    await expect(alice.locator("#count-inbox")).to_have_text("2")
    await expect(alice.locator("#fig-waiting")).to_have_text("2")
    await screenshot(alice, "console-inbox.png")

    # -- E accept, reply: the customer sees the reply live --
    await rows.filter(has_text="Carla Mendes").click()
    await alice.click("#ctl-accept")
    await expect(alice.locator("#chat-state")).to_have_text("Active")
    for control in ("#ctl-back", "#ctl-sound", "#ctl-leave", "#ctl-resolve"):
        await expect(alice.locator(control)).to_be_enabled()
    await alice.fill("#reply-text", "Hi Carla! Parcel #4821 is with the courier; it arrives **Thursday**.")
    await alice.press("#reply-text", "Enter")
    await expect(alice.locator("#history .msg.out")).to_contain_text("Parcel #4821 is with the courier")
    await expect(carla.locator(".msg.agent")).to_contain_text("Parcel #4821 is with the courier")
    await expect(carla.locator(".msg.agent strong")).to_have_text("Thursday")
    await expect(carla.locator("#status")).to_have_text("Connected")

    # -- B speaker: on (the default once accepted), a customer message rings; off, it does not --
    incoming = alice.locator("#history .msg.in")
    await expect(alice.locator("#ctl-sound")).to_have_attribute("aria-pressed", "true")
    assert await alice.evaluate("window.__tones") == 0  # the agent's own reply did not ring
    await write(carla, "Great, thanks!")
    await expect(incoming).to_have_count(2)
    await expect(alice.locator("body")).to_have_attribute("data-beeps", "1")
    assert await alice.evaluate("window.__tones") == 1
    await alice.click("#ctl-sound")
    await expect(alice.locator("#ctl-sound")).to_have_attribute("aria-pressed", "false")
    await write(carla, "Can I pick it up myself?")
    await expect(incoming).to_have_count(3)  # shown live, silently
    await alice.fill("#reply-text", "Yes, at the depot in Rua Augusta.")
    await alice.press("#reply-text", "Enter")
    await expect(carla.locator(".msg.agent")).to_have_count(2)
    await expect(alice.locator("body")).to_have_attribute("data-beeps", "1")
    assert await alice.evaluate("window.__tones") == 1
    # The worker records each reply as sent; the console shows that on its next load of the chat.
    await asyncio.to_thread(chatgate.wait_idle)
    await alice.reload()
    await expect(alice.locator("#history .msg.out .status")).to_have_text(["sent", "sent"])
    await alice.evaluate("document.getElementById('notice').hidden = true")  # "Speaker off." would cover the top
    await screenshot(alice, "console-chat.png")

    # -- D resolve: the customer is asked for a rating as 1-5 buttons and clicks 4 --
    # The scheduler closes a resolved chat 1-2 s after D, too soon to be sure the customer's click comes
    # first: an admin switches auto-close off meanwhile (the admin panel), and on again after the rating.
    ada = await agent(browser, site_a, "ada", problems)
    await ada.goto(f"{site_a}/console#/admin")
    await expect(ada.locator("#auto-close-on")).to_be_checked()
    await expect(ada.locator("#auto-close-after")).to_have_value("1")
    await ada.uncheck("#auto-close-on")
    await ada.click("#auto-close-form button[type=submit]")
    await expect(ada.locator("#notice")).to_have_text("Saved. 0 resolved chats affected.")
    await alice.click("#ctl-resolve")
    await expect(alice.locator("#chat-state")).to_have_text("Resolved")
    await expect(carla.locator("#rating")).to_be_visible()
    await expect(carla.locator("#rating [data-rating]")).to_have_text(["1", "2", "3", "4", "5"])
    await screenshot(carla, "chat.png")
    await carla.click("#rating [data-rating='4']")
    await expect(carla.locator("#rating")).to_be_hidden()
    await expect(carla.locator(".msg.system .text").last).to_have_text(RATING_THANKS)
    await expect(alice.locator("#c-rating")).to_have_text("★★★★☆")  # 4 of 5
    await expect(alice.locator("#chat-state")).to_have_text("Resolved")

    # -- auto-close on again, after 1 s: both pages say the chat is closed --
    await ada.check("#auto-close-on")
    await ada.click("#auto-close-form button[type=submit]")
    await expect(ada.locator("#notice")).to_have_text("Saved. 1 resolved chat affected.")
    await expect(carla.locator("#closed")).to_be_visible(timeout=15_000)
    await expect(carla.locator("#status")).to_have_text("Closed")
    await expect(alice.locator("#chat-state")).to_have_text("Closed", timeout=15_000)
    await expect(alice.locator("#chat-status")).to_have_text("Closed.")
    await expect(alice.locator("#c-rating")).to_have_text("★★★★☆")
    await ada.context.close()

    # -- the customer writes again: a new chat, offered first to the agent who had the last one --
    await write(carla, "One more thing: can you deliver to my office instead?")
    await expect(carla.locator("#closed")).to_be_hidden()
    await alice.click("#back-to-list")
    returning = rows.filter(has_text="Carla Mendes")
    await expect(returning).to_have_count(1)
    await expect(returning).to_contain_text("New")
    await returning.click()
    await expect(alice.locator("#p-query")).to_contain_text("deliver to my office")
    second_chat = chat_id(alice)
    assert second_chat != first_chat
    await expect(alice.locator("#ctl-accept")).to_be_enabled()

    # Bob (console on A) sees it in the Inbox, but may not take it during alice's head start.
    bob = await agent(browser, site_a, "bob", problems)
    bob_rows = bob.locator("#rows tr")
    await expect(bob_rows).to_have_count(2)
    await bob_rows.filter(has_text="Carla Mendes").click()
    await expect(bob.locator("#ctl-accept")).to_be_disabled()
    status, body = await bob.evaluate(FORCE, [second_chat, "accept"])
    assert (status, body["error"]) == (409, "head_start"), body
    assert "Alice" in body["message"], body
    await alice.click("#ctl-accept")
    await expect(alice.locator("#chat-state")).to_have_text("Active")

    # -- one chat from Slack and the web console at once: bob accepts Dan's chat in Slack... --
    await bob.click("#back-to-list")
    dan_row = bob_rows.filter(has_text="Dan Brooks")
    dan_chat = await dan_row.get_attribute("data-id")
    card_ts = await eventually_async(lambda: chatgate.card_ts(dan_chat), timeout=20, what="Dan's card in Slack")
    status = await asyncio.to_thread(chatgate.click, "accept", dan_chat, BOB_IN_SLACK, 1)
    assert status == 200
    await expect(dan.locator("#status")).to_have_text("Connected")
    await expect(bob.locator("#count-assigned")).to_have_text("1")
    # ... and replies from the web console: the customer gets it, and Slack's thread shows it.
    await bob.click("#tab-assigned")
    await bob_rows.filter(has_text="Dan Brooks").click()
    await expect(bob.locator("#chat-state")).to_have_text("Active")
    await expect(bob.locator("#c-agent")).to_have_text("Bob")
    reply = "Hi Dan, I have refunded invoice 2024-118; it shows in 3-5 days."
    await bob.fill("#reply-text", reply)
    await bob.press("#reply-text", "Enter")
    await expect(dan.locator(".msg.agent .text")).to_have_text(reply)
    await eventually_async(lambda: any(reply in text for text in chatgate.slack.thread_texts(card_ts)), timeout=20,
                           what="the web console's reply in the Slack thread")

    # -- the console at phone width --
    phone = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True,
                                   storage_state=await alice.context.storage_state())
    watch(phone, problems)
    await phone.goto(f"{site_b}/console#/assigned")
    await expect(phone.locator("#rows tr")).to_have_count(1)
    assert await phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    await screenshot(phone, "console-phone.png")

    # Nothing went wrong in any page but the two controls forced past the page (answered 409, as meant).
    forced = [p for p in problems if "status of 409 (Conflict)" in p]
    assert len(forced) == 2 and len(problems) == 2, problems
