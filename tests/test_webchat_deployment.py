"""Web chat in a whole chatgate: two web processes and a worker, the channel built from the registry."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from chatgate.compose import connect, load_config


AGENTS = '\n[[agents]]\nid = "alice"\nname = "Alice"\n'


async def next_message(response, timeout: float = 30.0) -> dict:
    kind = ""
    while True:
        line = (await asyncio.wait_for(response.content.readline(), timeout)).decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[len("event: "):]
        elif line.startswith("data: ") and kind == "message":
            return json.loads(line[len("data: "):])


async def test_a_reply_sent_by_the_worker_reaches_the_page_on_another_web_process(deployment):
    chatgate = deployment(webs=2, workers=1, tail=AGENTS, webchat={"greeting": "Welcome!"})
    one, two = (f"http://127.0.0.1:{port}" for port in chatgate.ports)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        started = await http.post(f"{one}/chat/api/start", json={"name": "Ada"})
        assert started.status == 200 and (await started.json())["greeting"] == "Welcome!"
        written = await (await http.post(f"{one}/chat/api/messages",
                                         json={"text": "Where is my parcel?", "client_id": "m1"})).json()
        conversation_id = written["conversation"]["id"]

        # The cookie signed by one web process is good on the other (the secret is shared in Redis).
        events = await http.get(f"{two}/chat/api/events")
        assert events.status == 200

        services = connect(load_config(chatgate.config), chatgate.redis_url)
        try:
            await services.conversations.accept(conversation_id, "alice")
            await services.conversations.reply(conversation_id, "alice", "**On its way**, Ada")
        finally:
            await services.close()
        message = await next_message(events)
        assert (message["text"], message["from"], message["conversation_id"]) == (
            "**On its way**, Ada", "agent", conversation_id)
        events.close()

        chatgate.wait_idle()
        history = await (await http.get(f"{two}/chat/api/messages")).json()
        assert [(m["from"], m["text"]) for m in history["messages"]] == [
            ("you", "Where is my parcel?"), ("agent", "**On its way**, Ada")]
        entry = json.loads(chatgate.store().lindex(chatgate.key("msgs", conversation_id), 1))
        assert entry["status"] == "sent"  # the worker recorded the stream id as the platform's
