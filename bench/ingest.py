"""Webhook ingest: requests per second one ``chatgate web`` answers, against bare aiohttp.

Starts an embedded Redis, one ``chatgate web`` (Telegram, Twilio, Slack and the
web console on; no worker, so the CPU is the web process's and Redis's) and, as
the reference in the same run, a bare aiohttp app that reads the JSON body and
answers ``{"ok": true}``. Then it loads each with ``wrk`` (Debian's package;
without it, a slower Python client) on 127.0.0.1: distinct Telegram updates with
the secret-token header, and distinct Twilio SMS webhooks, each signed for its
body. It counts the messages stored (``bench/round_trips.py`` counts the Redis
round trips per message).

    .venv/bin/python bench/ingest.py [--seconds 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import redis as redis_sync

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from tests.conftest import TELEGRAM_SECRET, Deployment, free_port, wait_http  # noqa: E402
from tests.fakes.twilio import AUTH_TOKEN, inbound, signed  # noqa: E402
from tests.support import keys  # noqa: E402

# The store's keys under the default prefix (the deployment's own).
KEY = keys()

BARE_APP = textwrap.dedent("""
    import sys
    from aiohttp import web

    async def handle(request):
        await request.json()
        return web.json_response({"ok": True})

    async def healthz(request):
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhooks/telegram", handle)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
""")

# Each request a new Telegram update (update id, message id and text), customers in a pool of 2,000.
TELEGRAM_LUA = textwrap.dedent("""
    local n = 0
    request = function()
      n = n + 1
      local chat = 7000000 + n %% 2000
      local body = string.format('{"update_id":%%d,"message":{"message_id":%%d,"date":1700000000,' ..
        '"chat":{"id":%%d,"type":"private","first_name":"Load"},' ..
        '"from":{"id":%%d,"is_bot":false,"first_name":"Load"},"text":"load message %%d"}}', n, n, chat, chat, n)
      return wrk.format("POST", "/webhooks/telegram",
        {["Content-Type"] = "application/json", ["X-Telegram-Bot-Api-Secret-Token"] = "%s"}, body)
    end
""")

# Signed Twilio webhooks, read from a file of "signature<TAB>body" lines, each used once.
TWILIO_LUA = textwrap.dedent("""
    local lines = {}
    for line in io.lines("%s") do lines[#lines + 1] = line end
    local n = 0
    request = function()
      n = n %% #lines + 1
      local signature, body = lines[n]:match("([^\\t]*)\\t(.*)")
      return wrk.format("POST", "/webhooks/twilio",
        {["Content-Type"] = "application/x-www-form-urlencoded", ["X-Twilio-Signature"] = signature}, body)
    end
""")


def wrk(url: str, script: Path, seconds: float, connections: int) -> tuple[float, int, int]:
    """(requests per second, requests, non-2xx) from one wrk run."""
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return rate, total, (int(bad.group(1)) if bad else 0) + (sum(map(int, errors.groups())) if errors else 0)


def python_load(url: str, requests: list[tuple[dict, bytes]], seconds: float, connections: int) -> tuple[float, int, int]:
    """The same measure without wrk (slower: the client takes CPU from the server)."""
    import asyncio

    import aiohttp

    async def run() -> tuple[float, int, int]:
        deadline = time.perf_counter() + seconds
        done, bad = 0, 0
        it = iter(requests)

        async def client(session) -> None:
            nonlocal done, bad
            while time.perf_counter() < deadline:
                headers, body = next(it)
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    done += 1
                    bad += response.status >= 300
        started = time.perf_counter()
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(client(session) for _ in range(connections)))
        return done / (time.perf_counter() - started), done, bad

    return asyncio.run(run())


def telegram_requests(count: int) -> list[tuple[dict, bytes]]:
    from tests.fakes.telegram import text_update

    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
    return [(headers, json.dumps(text_update(n, 7_000_000 + n % 2000, f"load message {n}", message_id=n,
                                             first_name="Load")).encode()) for n in range(1, count + 1)]


def twilio_requests(public_url: str, count: int) -> list[tuple[dict, bytes]]:
    url = f"{public_url}/webhooks/twilio"
    made = []
    for n in range(count):
        body, headers = signed(AUTH_TOKEN, url, inbound(f"SMload{n:08d}", f"+1415{n % 2000:07d}", f"load message {n}"))
        made.append((headers, body))
    return made


def run(seconds: float = 10, connections: int = 32) -> dict:
    """Both measures and the reference; the figures."""
    use_wrk = shutil.which("wrk") is not None
    with tempfile.TemporaryDirectory(prefix="cg-ingest-") as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        deployment = Deployment(tmp, webs=1, workers=0, twilio={"enabled": True, "sms_from": "+15005550006"},
                                server={"public_url": f"http://127.0.0.1:{port}"})
        deployment.ports = [port]  # the port Twilio's signatures are computed for
        bare_port = free_port()
        bare = subprocess.Popen([sys.executable, "-c", BARE_APP, str(bare_port)])
        try:
            deployment.start()
            wait_http(f"http://127.0.0.1:{bare_port}/healthz")
            base = f"http://127.0.0.1:{port}"
            results = {}
            count = int(seconds * 20000)
            loads = {
                "bare aiohttp": (f"http://127.0.0.1:{bare_port}", TELEGRAM_LUA % TELEGRAM_SECRET,
                                 lambda: telegram_requests(count)),
                "telegram": (base, TELEGRAM_LUA % TELEGRAM_SECRET, lambda: telegram_requests(count)),
                "twilio sms": (base, None, lambda: twilio_requests(base, count)),
            }
            db = redis_sync.Redis.from_url(deployment.redis_url)
            for name, (url, lua, make) in loads.items():
                stored_before = _stored(db)
                if use_wrk:
                    script = tmp / f"{name.replace(' ', '_')}.lua"
                    if lua is None:  # Twilio: signatures computed here, read by wrk
                        lines = tmp / "twilio.lines"
                        lines.write_text("".join(f"{h['X-Twilio-Signature']}\t{b.decode()}\n" for h, b in make()))
                        lua = TWILIO_LUA % lines
                    script.write_text(lua)
                    rate, total, bad = wrk(url, script, seconds, connections)
                else:
                    path = "/webhooks/twilio" if name == "twilio sms" else "/webhooks/telegram"
                    rate, total, bad = python_load(url + path, make(), seconds, connections)
                stored = _stored(db) - stored_before
                results[name] = {"rate": rate, "requests": total, "bad": bad, "stored": stored}
            results["client"] = "wrk" if use_wrk else "python"
            return results
        finally:
            bare.terminate()
            bare.wait()
            deployment.stop()


def _stored(db: redis_sync.Redis) -> int:
    """Customer messages stored so far (each conversation counts its own)."""
    return sum(int(db.hget(key, "messages_in") or 0) for key in db.scan_iter(KEY("conv", "*"), count=1000))



def table(results: dict) -> str:
    bare = results["bare aiohttp"]["rate"]
    rows = [("machine", report.machine()),
            ("setup", f"1 chatgate web, no worker; load from {results['client']} on 127.0.0.1")]
    for name in ("bare aiohttp", "telegram", "twilio sms"):
        r = results[name]
        share = "" if name == "bare aiohttp" else f", {r['rate'] / bare:.1%} of bare"
        extra = "" if name == "bare aiohttp" else f"; {r['stored']} stored"
        rows.append((name, f"{r['rate']:.0f} req/s{share} ({r['requests']} requests, {r['bad']} not 2xx{extra})"))
    return report.table(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="load per target (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="connections held open (default 32)")
    args = parser.parse_args(argv)
    results = run(args.seconds, args.connections)
    print(table(results))
    ok = all(results[n]["bad"] == 0 for n in ("bare aiohttp", "telegram", "twilio sms"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
