"""Who a request comes from, for the per-IP limits: one rule for every route (``[server] trust_forwarded_for``)."""

from __future__ import annotations

from aiohttp import web

__all__ = ["client_address"]

MAX_ADDRESS = 64


def client_address(request: web.Request, trust_forwarded_for: bool) -> str:
    """The connecting address; behind a trusted proxy, the last hop of ``X-Forwarded-For`` (the address the
    proxy itself saw; the earlier hops are whatever the client chose to send). Never trusted otherwise."""
    if trust_forwarded_for:
        hops = [hop.strip() for hop in ",".join(request.headers.getall("X-Forwarded-For", ())).split(",")]
        hops = [hop for hop in hops if hop]
        if hops:
            return hops[-1][:MAX_ADDRESS]
    return request.remote or "unknown"
