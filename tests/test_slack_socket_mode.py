"""Socket Mode: chatgate connects out to Slack (no public URL), and its Slack config checks.

The fake Slack answers ``apps.connections.open`` with its own websocket, says
``hello`` and pushes envelopes as Slack does; chatgate must ack each one.
"""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs

import pytest

from gateway.config import ConfigError
from tests.fakes.slack import block_action, message_event
from tests.support import eventually
from tests.test_end_to_end import CHANNEL
from tests.test_slack_card import ACTIVE_BUTTONS, AGENT, card_gateway, new_chat


def test_socket_mode_receives_clicks_and_replies_over_the_websocket_and_acks_them(deployment):
    running = card_gateway(deployment, slack={"socket_mode": True, "app_token": "xapp-1-A0001-test",
                                              "signing_secret": None})
    if True:  # noqa: SIM108 - keeps the steps below as they read
        gw, slack = running[0], running[1]
        eventually(lambda: slack.calls_to("socket_connect"), what="the Socket Mode connection")
        # No signing secret: there is no HTTP endpoint for Slack at all.
        assert gw.slack_form(block_action("accept", "1", AGENT, CHANNEL, "1.1", slack.response_url))[0] == 404

        chat = new_chat(running)
        click = json.loads(parse_qs(block_action("accept", chat.id, AGENT, CHANNEL, chat.card_ts,
                                                 slack.response_url))["payload"][0])
        slack.socket_send({"envelope_id": "env-click", "type": "interactive", "payload": click,
                           "accepts_response_payload": False})
        eventually(lambda: [c for c in slack.calls_to("socket_ack") if c.params.get("envelope_id") == "env-click"],
                   what="the ack of the click")
        chat.wait_buttons(ACTIVE_BUTTONS)
        assert chat.field("assignee") == AGENT

        event = json.loads(message_event(AGENT, CHANNEL, "Hello over the socket", f"{time.time():.6f}", chat.card_ts))
        slack.socket_send({"envelope_id": "env-reply", "type": "events_api", "payload": event,
                           "accepts_response_payload": False, "retry_attempt": 0, "retry_reason": ""})
        eventually(lambda: "Hello over the socket" in chat.telegram.sent_texts(chat.customer), what="the reply")
        assert [c for c in slack.calls_to("socket_ack") if c.params.get("envelope_id") == "env-reply"]


def test_slack_config_checks_socket_mode_token_and_head_start(make_config):
    base = '[slack]\nenabled = true\nbot_token = "xoxb-1"\nchannel = "C1"\n'
    with pytest.raises(ConfigError) as error:
        make_config(base + 'socket_mode = true\napp_token = "xoxb-wrong"\n[routing]\nreturning_head_start = "soon"\n')
    problems = "\n".join(error.value.problems)
    assert "config.toml: slack.app_token: expected an app-level token starting with xapp-" in problems
    assert "config.toml: routing.returning_head_start: expected a duration" in problems
    assert "signing_secret" not in problems  # Socket Mode needs none
    config = make_config(base + 'socket_mode = true\napp_token = "xapp-1-A1-x"\n[routing]\nreturning_head_start = "2m"\n')
    assert config.section("slack").socket_mode and config.routing.returning_head_start == 120.0
    with pytest.raises(ConfigError) as error:
        make_config(base)  # without Socket Mode the signing secret is required
    assert any("slack.signing_secret" in p for p in error.value.problems)
