"""``GET /metrics``: what an operator's Prometheus scrapes."""

from __future__ import annotations

import json

from aiohttp.test_utils import TestClient, TestServer

from chatgate.compose import connect
from gateway.app import SERVICES, create_app
from tests.fakes.telegram import text_update

SECRET = "metrics-secret"


async def test_metrics_show_conversations_by_state_and_webhook_answers(redis_url, make_config):
    config = make_config(f'[telegram]\nenabled = true\ntoken = "1:x"\nsecret_token = "{SECRET}"\n')
    async with TestClient(TestServer(create_app(connect(config, redis_url)))) as client:
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        for update_id, chat in ((1, 11), (2, 12), (3, 13)):
            response = await client.post("/webhooks/telegram", json=text_update(update_id, chat, "hello"),
                                         headers=headers)
            assert response.status == 200
        services = client.server.app[SERVICES]
        await services.conversations.accept("1", "U1")
        await services.conversations.accept("2", "U1")
        await services.conversations.resolve("2", "U1")
        assert (await client.post("/webhooks/telegram", data=json.dumps(text_update(4, 14, "x")),
                                  headers={"Content-Type": "application/json"})).status == 401

        response = await client.get("/metrics")
        assert response.status == 200
        text = await response.text()
    lines = set(text.splitlines())
    assert 'chatgate_conversations{state="new"} 1' in lines
    assert 'chatgate_conversations{state="active"} 1' in lines
    assert 'chatgate_conversations{state="resolved"} 1' in lines
    assert 'chatgate_conversations{state="closed"} 0' in lines
    assert 'chatgate_webhook_requests_total{route="/webhooks/telegram",status="200"} 3' in lines
    assert 'chatgate_webhook_requests_total{route="/webhooks/telegram",status="401"} 1' in lines
    assert any(line.startswith("chatgate_delivery_jobs_queued ") and not line.endswith(" 0") for line in lines)
    assert SECRET not in text and "1:x" not in text
