"""The aiohttp application: webhooks of every enabled platform, Slack, health."""

from __future__ import annotations

import logging

import redis.exceptions
from aiohttp import web

from channels import telegram, twilio
from agent_console.slack import app as slack_app

from workers.dispatch import QUEUE_NAME

from . import metrics
from .config import Config
from .metrics import Requests
from .services import Services, connect

__all__ = ["create_app"]

log = logging.getLogger(__name__)

SERVICES = web.AppKey("services", Services)


@web.middleware
async def _errors(request: web.Request, handler):
    """Redis down → 503 so the platforms retry later; never a stack trace to the caller."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except UnicodeDecodeError:
        # A form or JSON body that is not UTF-8 is the caller's mistake, whichever handler read it.
        return web.json_response({"error": "malformed body: not valid UTF-8"}, status=400)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        log.error("Redis unavailable while handling %s: %s", request.path, exc)
        return web.json_response({"error": "storage unavailable, retry later"}, status=503)
    except Exception:
        log.exception("unhandled error on %s", request.path)
        return web.json_response({"error": "internal error"}, status=500)


def _counting(requests: Requests):
    """Count each webhook's answers by status for ``/metrics`` (unknown paths are not counted)."""

    @web.middleware
    async def count(request: web.Request, handler):
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else ""
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if route.startswith(("/webhooks/", "/slack/")):
                requests.count(route, exc.status)
            raise
        if route.startswith(("/webhooks/", "/slack/")):
            requests.count(route, response.status)
        return response

    return count


def _accepting(content_type: str, handler):
    """``handler`` for bodies of ``content_type`` only; anything else gets 415 before the body is read.

    The platforms always send one type; reading another (say a multipart body
    without a boundary) would fail inside aiohttp with no useful answer.
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.content_type != content_type:
            return web.json_response({"error": f"unsupported Content-Type {request.content_type!r}: "
                                      f"expected {content_type}"}, status=415)
        return await handler(request)

    return handle


async def _healthz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    try:
        await services.store.redis.ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        return web.json_response({"ok": False, "redis": f"unreachable: {exc}"}, status=503)
    return web.json_response({"ok": True, "redis": "ok"})


def create_app(config: Config, redis_url: str) -> web.Application:
    """The web application for ``config``, storing in the Redis at ``redis_url``."""
    requests = Requests()
    app = web.Application(client_max_size=config.server.max_body_bytes,
                          middlewares=[_counting(requests), _errors])
    services = connect(config, redis_url)
    app[SERVICES] = services
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", metrics.handler(services.store, requests, QUEUE_NAME))
    if config.telegram.enabled:
        app.router.add_post("/webhooks/telegram", _accepting(
            "application/json", telegram.webhook_handler(config.telegram, services.conversations)))
    if config.twilio.enabled:
        twilio_message, twilio_status = twilio.webhook_handlers(
            config.twilio, config.server.public_url, services.conversations)
        form = "application/x-www-form-urlencoded"
        app.router.add_post("/webhooks/twilio", _accepting(form, twilio_message))
        app.router.add_post("/webhooks/twilio/status", _accepting(form, twilio_status))
    if config.slack.enabled:
        bolt = slack_app.build(config.slack, services.conversations, services.store)
        if config.slack.signing_secret:
            app.router.add_post("/slack/events", slack_app.events_handler(bolt))
        if config.slack.socket_mode:
            sockets = []  # made on startup: its aiohttp session needs the running loop

            async def connect_socket(_app: web.Application) -> None:
                sockets.append(slack_app.socket_mode_handler(bolt, config.slack))
                await sockets[0].connect_async()

            async def close_socket(_app: web.Application) -> None:
                for socket in sockets:
                    await socket.close_async()

            app.on_startup.append(connect_socket)
            app.on_cleanup.append(close_socket)

    async def close(_app: web.Application) -> None:
        await services.close()

    app.on_cleanup.append(close)
    return app
