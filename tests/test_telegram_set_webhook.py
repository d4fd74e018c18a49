"""``chatgate telegram set-webhook`` registers the webhook URL and its secret with Telegram."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT
from tests.fakes.telegram import FakeTelegram


def test_set_webhook_registers_url_and_secret(tmp_path):
    telegram = FakeTelegram().start()
    try:
        config = tmp_path / "config.toml"
        config.write_text(f"""
[server]
public_url = "https://support.example.com/"
[telegram]
enabled = true
token = "{telegram.token}"
secret_token = "s3cret_token-1"
api_url = "{telegram.api_url}"
""")
        result = subprocess.run([sys.executable, "-m", "chatgate", "telegram", "set-webhook", "-c", str(config)],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "https://support.example.com/webhooks/telegram" in result.stdout
        (call,) = telegram.calls_to("setWebhook")
        assert call.params["url"] == "https://support.example.com/webhooks/telegram"
        assert call.params["secret_token"] == "s3cret_token-1"
        assert telegram.token not in result.stdout + result.stderr
    finally:
        telegram.stop()


def test_set_webhook_needs_telegram_enabled(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[telegram]\nenabled = false\n")
    result = subprocess.run([sys.executable, "-m", "chatgate", "telegram", "set-webhook", "-c", str(config)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"{config}: telegram.enabled: expected true" in result.stderr
