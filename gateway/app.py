"""The aiohttp application: health, metrics, and the routes of every enabled channel and console.

``/metrics`` and the details of ``/healthz`` are for the operator: with ``[metrics] token`` set they
need ``Authorization: Bearer <token>`` (401 without); anyone may ask ``/healthz`` whether the server
is ok (200) or not (503), without the reason. No answer names the server's software or version.
"""

from __future__ import annotations

import hmac
import logging

import redis.exceptions
from aiohttp import web

from . import metrics
from .jobs import QUEUE
from .metrics import Requests
from .services import Services

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
    except UnicodeEncodeError:
        # Last resort: text with a lone surrogate (a "\udfff" escape, a header's bytes that are not UTF-8)
        # that some handler passed on unchecked; the readers (gateway/http.py) and the store catch it first.
        log.warning("text with an unencodable character reached %s", request.path)
        return web.json_response({"error": "text contains an invalid character"}, status=400)
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


def _operator(request: web.Request) -> bool:
    """Whether the request carries ``[metrics] token`` as its bearer token (never, when none is set)."""
    token = request.app[SERVICES].config.metrics.token
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "replace"), token.encode())


async def _healthz(request: web.Request) -> web.Response:
    """ok or not for anyone; why not (Redis's error) only for the operator's token."""
    services = request.app[SERVICES]
    try:
        await services.store.redis.ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        if _operator(request):
            return web.json_response({"ok": False, "redis": f"unreachable: {exc}"}, status=503)
        return web.json_response({"ok": False}, status=503)
    return web.json_response({"ok": True, "redis": "ok"} if _operator(request) else {"ok": True})


def _protected(handler):
    """``handler`` behind ``[metrics] token`` when one is set (401 without it); open otherwise."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.app[SERVICES].config.metrics.token and not _operator(request):
            return web.json_response({"error": "this needs the metrics token (Authorization: Bearer …)"},
                                     status=401, headers={"WWW-Authenticate": 'Bearer realm="chatgate"'})
        return await handler(request)

    return handle


async def _server_header(_request: web.Request, response: web.StreamResponse) -> None:
    """Every answer says ``Server: chatgate``: no software or version for a scanner to match."""
    response.headers["Server"] = "chatgate"


def create_app(services: Services, queue_name: str = QUEUE) -> web.Application:
    """The web application for ``services``: each enabled channel and console mounts its own routes."""
    requests = Requests()
    app = web.Application(client_max_size=services.config.server.max_body_bytes,
                          middlewares=[_counting(requests), _errors])
    app[SERVICES] = services
    app.on_response_prepare.append(_server_header)
    app.router.add_get("/healthz", _healthz)
    if services.media is not None:
        app.router.add_get("/media/{token}", services.media.handler())
    app.router.add_get("/metrics", _protected(metrics.handler(services.store, requests, queue_name)))
    mounted = set()
    for plugin in [*services.channels.values(), *services.consoles.values()]:
        if id(plugin) not in mounted:  # a channel serving several names mounts once
            mounted.add(id(plugin))
            plugin.mount(app, services)

    async def close(_app: web.Application) -> None:
        await services.close()

    app.on_cleanup.append(close)
    return app
