"""The ``chatgate`` command: run, web, worker, check-config, hash-password, report, retention,
telegram set-webhook."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import subprocess
import sys
from contextlib import contextmanager

from gateway import config as config_module
from gateway.config import Config, ConfigError
from gateway.redis_server import EmbeddedRedis

from . import compose

log = logging.getLogger("chatgate")


def _load(path_arg: str | None) -> Config:
    path = config_module.find_config_file(path_arg)
    if path.name == "config.example.toml" and not path_arg:
        log.warning("no config.toml here: running with %s (copy it to config.toml and edit it)", path)
    return compose.load_config(path)


@contextmanager
def _redis(config: Config, url_arg: str | None):
    """The Redis URL to use: the argument, the config's, or an embedded server's."""
    url = url_arg or config.redis.url
    if url:
        yield url
        return
    server = EmbeddedRedis(config.redis.data_dir).start()
    log.info("embedded Redis at %s (data in %s)", server.url, server.data_dir)
    try:
        yield server.url
    finally:
        server.stop()


def _serve(config: Config, redis_url: str) -> None:
    from aiohttp import web

    from gateway.app import create_app

    services = compose.connect(config, redis_url)
    on = sorted({type(p).section for p in [*services.channels.values(), *services.consoles.values()]})
    off = sorted({cls.section for cls in [*compose.channel_classes(), *compose.console_classes()]} - set(on))
    log.info("on: %s; off (not enabled in %s): %s", ", ".join(on) or "nothing", config.path, ", ".join(off) or "none")
    log.info("web server on http://%s:%s", config.server.host, config.server.port)
    app = create_app(services)
    app.on_startup.append(_freeze_startup_objects)
    web.run_app(
        app, host=config.server.host, port=config.server.port,
        print=None, access_log=None, shutdown_timeout=5,
    )


# Allocations between two collections of the youngest generation (Python's default: 700).
YOUNG_COLLECTION_EVERY = 20_000


async def _freeze_startup_objects(_app) -> None:
    # A web process holds thousands of open streams, and a full collection walks everything it holds while
    # the event loop waits (100-250 ms at 2,000 streams with Python's defaults). What starting made
    # (modules, config, the app) lives as long as the process: frozen, no collection walks it again.
    # Young collections further apart let the short-lived objects of the streams' waits die young instead
    # of filling the oldest generation, so full collections come seldom.
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, 10, 10)


async def _announce(config: Config, redis_url: str) -> None:
    """Print where to open the web console and web chat, and a one-time admin sign-in link
    while no agent can sign in with a password (like Jupyter's token URL)."""
    base = config.server.public_url
    lines = []
    if config.enabled("web"):
        lines.append(f"  Agents' web console:   {base}/console")
    if config.enabled("webchat"):
        lines.append(f"  Customers' web chat:   {base}/chat")
    if config.enabled("web") and not any(agent.password_hash for agent in config.agents):
        issue_login_token = compose.plugin("web").issue_login_token
        services = compose.connect(config, redis_url)
        try:
            admin = next((agent for agent in services.team.admins()), compose.FIRST_ADMIN)
            token = await issue_login_token(services.store, admin.id, ttl=24 * 3600)
        finally:
            await services.close()
        lines.append(f"  Sign in as {admin.display_name} (once, valid 24 h): {base}/console/login/token?t={token}")
        lines.append("  (give agents passwords: `chatgate hash-password`, then password_hash in [[agents]])")
    print("\nchatgate is running.\n" + "\n".join(lines) + "\n", flush=True)


def cmd_hash_password(args) -> int:
    """Print a password hash for ``password_hash`` in ``[[agents]]``."""
    import getpass

    hash_password = compose.plugin("web").hash_password
    if args.stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("The two passwords differ; nothing was made.", file=sys.stderr)
            return 1
    if len(password) < 8:
        print("A password needs at least 8 characters.", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


def cmd_web(args) -> int:
    config = _load(args.config)
    with _redis(config, args.redis_url) as url:
        _serve(config, url)
    return 0


def cmd_worker(args) -> int:
    from workers.worker import run_worker

    config = _load(args.config)
    with _redis(config, args.redis_url) as url:
        run_worker(config, url, burst=args.burst)
    return 0


def _stop_worker(process: subprocess.Popen) -> None:
    """Warm shutdown, then make sure the worker and its work horses are gone.

    RQ's work horse moves to its own process group, so killing the worker's
    group alone can leave it behind.
    """
    import psutil

    try:
        family = [psutil.Process(process.pid)] + psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            pass
    for member in family:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    process.wait()


def cmd_run(args) -> int:
    """Embedded Redis (when no URL is set), one worker and the web server; Ctrl-C stops all."""
    config = _load(args.config)
    with _redis(config, args.redis_url) as url:
        worker_args = [sys.executable, "-m", "chatgate", "worker", "--redis-url", url]
        if args.config:
            worker_args += ["--config", args.config]
        elif config.path:
            worker_args += ["--config", config.path]
        # The worker gets its own session so a terminal Ctrl-C reaches only us; we
        # then stop it in order (web first, worker, Redis last).
        worker = subprocess.Popen(worker_args, start_new_session=True)
        try:
            if config.enabled("web") or config.enabled("webchat"):
                asyncio.run(_announce(config, url))
            _serve(config, url)
        finally:
            log.info("stopping the worker")
            _stop_worker(worker)
    log.info("stopped")
    return 0


def cmd_check_config(args) -> int:
    path = config_module.find_config_file(args.file)
    try:
        config = compose.load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) in {path}", file=sys.stderr)
        return 1
    enabled = sorted(name for name in config.sections if config.enabled(name))
    print(f"{path}: OK (enabled: {', '.join(enabled) or 'no platform yet'}; {len(config.topics)} topic rules)")
    return 0


def cmd_telegram_set_webhook(args) -> int:
    config = _load(args.config)
    if not config.enabled("telegram"):
        print(f"{config.path}: telegram.enabled: expected true to register the webhook", file=sys.stderr)
        return 1
    url = asyncio.run(compose.plugin("telegram").set_webhook(config.section("telegram"), config.server.public_url))
    print(f"Telegram will deliver updates to {url}")
    return 0


def _moment(text: str, now: float) -> float:
    """``7d``/``24h``/``90m`` ago, or an ISO date or date-time (UTC unless it says otherwise)."""
    from datetime import datetime, timezone

    ago = config_module.parse_duration(text)
    if ago is not None and not text.strip().isdigit():
        return now - ago
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a span back from now (7d, 24h, 90m) or a date (2026-01-31, 2026-01-31T09:00)")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def cmd_report(args) -> int:
    """One row per conversation created in the period, then per-agent totals, as CSV or JSON."""
    import time

    import redis.asyncio as aioredis

    from gateway import reports
    from gateway.store import Store
    from gateway.team import Team

    config = _load(args.config)
    now = time.time()
    try:
        since = _moment(args.since, now)
        until = _moment(args.until, now) if args.until else now
    except argparse.ArgumentTypeError as exc:
        print(f"chatgate report: {exc}", file=sys.stderr)
        return 2
    if until <= since:
        print("chatgate report: --until must be after --since", file=sys.stderr)
        return 2
    team = Team(config.agents)

    async def run(url: str) -> None:
        store = Store(aioredis.from_url(url), config.redis.key_prefix)
        try:
            report = reports.Report(since, until)
            rows = reports.conversation_rows(store, since, until, now)
            if args.format == "json":
                await reports.write_json(sys.stdout, rows, report, team.name)
            else:
                await reports.write_csv(sys.stdout, rows, report, team.name, args.table)
        finally:
            await store.redis.aclose()

    with _redis(config, args.redis_url) as url:
        asyncio.run(run(url))
    return 0


def cmd_retention(args) -> int:
    """One retention pass: closed conversations past ``[retention] closed_after`` to files, out of Redis."""
    import dataclasses

    from gateway import retention
    from gateway.reports import iso

    config = _load(args.config)
    if args.closed_after is not None:
        after = config_module.parse_duration(args.closed_after)
        if after is None:
            print(f"chatgate retention: --closed-after {args.closed_after!r}: expected a duration (30d, 12h, 900)",
                  file=sys.stderr)
            return 2
        config = dataclasses.replace(config, retention=dataclasses.replace(config.retention, closed_after=after))

    async def run(url: str) -> retention.Pass:
        services = compose.connect(config, url)
        try:
            return await compose.run_retention(services)
        finally:
            await services.close()

    with _redis(config, args.redis_url) as url:
        done = asyncio.run(run(url))
    if done.cutoff is None:
        print(f"{config.path}: retention.closed_after is 0: closed conversations are kept; nothing removed")
        return 0
    print(f"{done.removed} conversation(s) closed before {iso(done.cutoff)} exported to "
          f"{os.path.abspath(done.directory)} and removed from Redis")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chatgate", description="Contact-center gateway: customers on "
                                "WhatsApp, SMS, Telegram and the web chat, agents in Slack and the web console.")
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(sp):
        sp.add_argument("-c", "--config", help="config file (default: $CHATGATE_CONFIG, ./config.toml, "
                        "else ./config.example.toml)")
        sp.add_argument("--redis-url", help="use this Redis instead of redis.url / the embedded server")
        return sp

    with_config(sub.add_parser("run", help="web server, a worker and (if needed) Redis, in one command")).set_defaults(func=cmd_run)
    with_config(sub.add_parser("web", help="the web server only")).set_defaults(func=cmd_web)
    w = with_config(sub.add_parser("worker", help="an RQ worker with the scheduler"))
    w.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    w.set_defaults(func=cmd_worker)
    c = sub.add_parser("check-config", help="list every problem in a config file")
    c.add_argument("file", nargs="?")
    c.set_defaults(func=cmd_check_config)
    h = sub.add_parser("hash-password", help="a password hash for password_hash in [[agents]] (web console sign-in)")
    h.add_argument("--stdin", action="store_true", help="read the password from standard input")
    h.set_defaults(func=cmd_hash_password)
    r = with_config(sub.add_parser("report", help="conversations of a period and per-agent totals, CSV or JSON"))
    r.add_argument("--since", default="7d", help="start: a span back from now (7d, 24h) or a date (default 7d)")
    r.add_argument("--until", help="end (excluded): a span back from now or a date (default now)")
    r.add_argument("--format", choices=("csv", "json"), default="csv")
    r.add_argument("--table", choices=("all", "conversations", "agents"), default="all",
                   help="CSV: both tables (an empty line between them), or one")
    r.set_defaults(func=cmd_report)
    k = with_config(sub.add_parser("retention", help="export closed conversations past [retention] closed_after "
                                   "to files and remove them from Redis (one pass)"))
    k.add_argument("--closed-after", help="override [retention] closed_after for this pass (30d, 12h, 900)")
    k.set_defaults(func=cmd_retention)
    t = sub.add_parser("telegram", help="Telegram set-up")
    tsub = t.add_subparsers(dest="telegram_command", required=True)
    with_config(tsub.add_parser("set-webhook", help="register the webhook and its secret with Telegram")).set_defaults(func=cmd_telegram_set_webhook)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("CHATGATE_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request URL at INFO, and Telegram's URLs carry the bot token;
    # the others print request bodies or tokens at DEBUG.
    for noisy in ("httpx", "httpcore", "telegram", "slack_sdk", "slack_bolt", "twilio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
