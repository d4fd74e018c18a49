"""``chatgate run``: one command starts Redis, a worker and the web server; Ctrl-C stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import redis

from tests.conftest import ROOT, free_port, wait_http


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
        deadline = time.time() + 15
        while not client.smembers("rq:workers") and time.time() < deadline:
            time.sleep(0.1)
        assert client.smembers("rq:workers"), "no RQ worker registered"
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
