"""``chatgate run``: one command starts Redis, a worker and the web server; Ctrl-C stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import redis

from tests.conftest import ROOT, free_port, wait_http
from tests.support import eventually


def test_run_starts_everything_and_ctrl_c_stops_everything(tmp_path):
    port = free_port()
    data = tmp_path / "data"
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\nport = {port}\n[redis]\ndata_dir = "{data}"\n')
    process = subprocess.Popen([sys.executable, "-m", "chatgate", "run", "-c", str(config)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        # The embedded Redis keeps its data in the configured folder, and a worker is registered.
        client = redis.Redis.from_url(f"unix://{data / 'redis.sock'}")
        eventually(lambda: client.smembers("rq:workers"), what="an RQ worker registered")
        client.set("kept", "yes")
        family = psutil.Process(process.pid).children(recursive=True)
        names = " ".join(" ".join(p.cmdline()) for p in family)
        assert "valkey-server" in names or "redis-server" in names
        assert "worker" in names
    finally:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 0, output
    assert "stopped" in output
    alive = [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"left running: {[p.cmdline() for p in alive]}"
    # Nothing lost: the data is on disk for the next run.
    assert (data / "appendonlydir").exists()


def test_the_default_run_prints_the_console_and_a_one_time_admin_sign_in_link(tmp_path):
    import http.cookiejar
    import re
    import threading
    import urllib.request

    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\nport = {port}\npublic_url = "http://127.0.0.1:{port}"\n'
                      f'[redis]\ndata_dir = "{tmp_path / "data"}"\n')
    process = subprocess.Popen([sys.executable, "-m", "chatgate", "run", "-c", str(config)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(line.decode() for line in process.stdout), daemon=True)
    reader.start()
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        eventually(lambda: any("login/token?t=" in line for line in lines), timeout=20,
                   what=lambda: f"the sign-in link in the output:\n{''.join(lines)}")
        output = "".join(lines)
        assert f"http://127.0.0.1:{port}/console" in output
        link = re.search(r"(http://\S+/console/login/token\?t=\S+)", output).group(1)

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        jar = http.cookiejar.CookieJar()
        browser = urllib.request.build_opener(NoRedirect, urllib.request.HTTPCookieProcessor(jar))
        try:
            browser.open(link, timeout=10)
            raise AssertionError("the sign-in link did not redirect")
        except urllib.error.HTTPError as answer:
            assert answer.code in (302, 303) and answer.headers["Location"] == "/console"
        with browser.open(f"http://127.0.0.1:{port}/console/api/me", timeout=10) as me:
            assert b'"admin": true' in me.read()
        # The link works once.
        fresh = urllib.request.build_opener(NoRedirect, urllib.request.HTTPCookieProcessor())
        try:
            fresh.open(link, timeout=10)
            used_again = 200
        except urllib.error.HTTPError as answer:
            used_again = answer.code if answer.headers.get("Location") != "/console" else 302
        assert used_again != 302
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(60)
