"""Configuration: typed values, secrets from the environment, and every problem named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import ConfigError, parse_duration
from chatgate.compose import load_config as load
from gateway.topics import Topics

ROOT = Path(__file__).resolve().parent.parent


def check_config(path: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "chatgate", "check-config", str(path)], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, **(env or {})})


def test_the_example_config_is_valid():
    result = check_config(ROOT / "config.example.toml")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_check_config_lists_every_problem_with_key_file_and_expectation(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("""
[server]
port = "eighty"
[telegram]
enabled = true
token = "env:NO_SUCH_VARIABLE_HERE"
secret_token = "has spaces"
[slack]
enabled = true
bot_token = "xoxp-user-token"
[conversation]
auto_close_after = "soonish"
[[topics]]
name = "billing"
patterns = ["(unclosed"]
[surprise]
""")
    result = check_config(path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    expected = {
        "server.port": "a whole number",
        "telegram.token": "environment variable NO_SUCH_VARIABLE_HERE",
        "telegram.secret_token": "1-256 characters",
        "slack.bot_token": "xoxb-",
        "slack.signing_secret": "signing secret",
        "slack.channel": "channel",
        "conversation.auto_close_after": "a duration",
        "topics[0].patterns": "valid regular expressions",
        "surprise": "unknown key",
    }
    for key, words in expected.items():
        matching = [line for line in lines if f"{path}: {key}: " in line]
        assert matching, f"no problem reported for {key}: {lines}"
        assert words in matching[0]
    assert lines[-1] == f"{len(expected)} problem(s) in {path}"


def test_not_toml_at_all(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[server\nport = 1")
    result = check_config(path)
    assert result.returncode == 1 and "not valid TOML" in result.stderr and str(path) in result.stderr


def test_missing_file(tmp_path):
    result = check_config(tmp_path / "nowhere.toml")
    assert result.returncode == 1 and "cannot read the file" in result.stderr


def test_secrets_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CG_TEST_TOKEN", "123:abc")
    path = tmp_path / "c.toml"
    path.write_text('[telegram]\nenabled = true\ntoken = "env:CG_TEST_TOKEN"\nsecret_token = "abc"\n')
    config = load(path)
    assert config.section("telegram").token == "123:abc"


def test_disabled_platforms_need_no_secrets(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[telegram]\nenabled = false\ntoken = "env:CG_SURELY_UNSET"\n')
    assert load(path).section("telegram").enabled is False


@pytest.mark.parametrize("value, seconds", [(1, 1.0), (0.5, 0.5), ("90s", 90.0), ("15m", 900.0),
                                             ("1h", 3600.0), ("250ms", 0.25), ("2", 2.0)])
def test_durations_accept_seconds_and_units(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", -1, True, "5 minutes", [1]])
def test_bad_durations_are_refused(value):
    assert parse_duration(value) is None


def test_auto_close_in_one_second(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[conversation]\nauto_close_after = 1\n")
    assert load(path).conversation.auto_close_after == 1.0
    path.write_text("[conversation]\nauto_close = false\n")
    config = load(path)
    assert config.conversation.auto_close is False and config.conversation.auto_close_after == 900.0


def test_config_errors_raise_with_all_problems(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[server]\nport = -5\nmax_body_bytes = 10\n')
    with pytest.raises(ConfigError) as error:
        load(path)
    assert len(error.value.problems) == 2


def test_a_topics_slack_channel_is_slack_configuration(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[slack]\nchannel = "C0SUPPORT"\ntopic_channels = { billing = "C0BILLING" }\n'
                    '[[topics]]\nname = "billing"\nkeywords = ["refund"]\n')
    slack = load(path).section("slack")
    assert (slack.topic_channel("billing"), slack.topic_channel("general")) == ("C0BILLING", "C0SUPPORT")
    assert slack.card_channels() == {"C0SUPPORT", "C0BILLING"}
    path.write_text('[slack]\ntopic_channels = { billing = "#billing", account = 7 }\n'
                    '[[topics]]\nname = "billing"\nkeywords = ["refund"]\nslack_channel = "C0BILLING"\n')
    with pytest.raises(ConfigError) as error:
        load(path)
    assert error.value.problems == [
        f"{path}: slack.topic_channels.billing: expected the id of the Slack channel for this topic's chat cards, "
        "like C0123456789, got '#billing'",
        f"{path}: slack.topic_channels.account: expected a string, got 7",
        f'{path}: topics[0].slack_channel: expected nothing here: it moved to [slack] topic_channels = '
        '{ billing = "C0BILLING" }',
    ]


def topics(text: str, tmp_path) -> Topics:
    path = tmp_path / "t.toml"
    path.write_text(text)
    return Topics.compile(load(path).topics)


def test_topics_match_whole_words_case_insensitively_in_order(tmp_path):
    rules = topics("""
[[topics]]
name = "billing"
keywords = ["refund", "invoice"]
[[topics]]
name = "delivery"
keywords = ["parcel", "refund"]
patterns = ['order\\s*#?\\d+']
[[topics]]
name = "returns"
keywords = ["возврат", "c++"]
""", tmp_path)
    assert rules.tag("I want a REFUND for my parcel") == "billing"  # first rule wins
    assert rules.tag("Where is my Parcel?") == "delivery"
    assert rules.tag("order #1234 is late") == "delivery"
    assert rules.tag("refunding is not a word here") == "general"  # word boundary
    assert rules.tag("Хочу ВОЗВРАТ денег") == "returns"  # Unicode, case-insensitive
    assert rules.tag("your c++ course") == "returns"
    assert rules.tag("hello") == "general"
