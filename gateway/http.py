"""Small pieces every web route of chatgate shares."""

from __future__ import annotations

from aiohttp import web

__all__ = ["accepting"]


def accepting(content_type: str, handler):
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
