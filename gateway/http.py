"""Small pieces every web route of chatgate shares: the Content-Type gate and the one JSON body reader."""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any, Literal

from aiohttp import web

from .redis_text import LONE_SURROGATE, writable

__all__ = ["accepting", "BadBody", "MAX_DEPTH", "parse_json", "read_body", "read_json", "read_json_object",
           "has_lone_surrogate", "scrub", "INVALID_CHARACTER"]


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


# -- the JSON body reader ---------------------------------------------------------------------

# Deeper than any body chatgate or a platform sends (a Telegram update is about 5 levels), far below
# where json's recursive parser would run out of stack.
MAX_DEPTH = 32
INVALID_CHARACTER = "The text contains an invalid character (a lone UTF-16 surrogate, as in \"\\udfff\")."

Surrogates = Literal["refuse", "replace"]


class BadBody(Exception):
    """A request body chatgate will not read: ``status`` (400, or 413 for size), a ``code`` and a plain ``reason``.

    Each endpoint answers it in its own JSON shape.
    """

    def __init__(self, status: int, code: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason


# A JSON string, or from an opening quote to the end when it is never closed (linear: no retries inside it).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1
_SURROGATE = LONE_SURROGATE


def _depth(raw: bytes) -> int:
    """How deep ``raw``'s arrays and objects nest (brackets inside strings do not count).

    Over any prefix json can parse this is exactly its nesting, so json.loads never recurses deeper.
    """
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def has_lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (which no UTF-8 encoder, Redis's client included, can write)."""
    return _SURROGATE.search(text) is not None


def scrub(value: Any) -> Any:
    """``value`` with each lone surrogate in its strings (dict keys too) replaced by U+FFFD; the same
    object when there is none."""
    if isinstance(value, str):
        return writable(value)
    if isinstance(value, list):
        items = [scrub(item) for item in value]
        return items if any(a is not b for a, b in zip(items, value)) else value
    if isinstance(value, dict):
        pairs = [(scrub(k), scrub(v)) for k, v in value.items()]
        changed = any(k is not k0 or v is not v0 for (k, v), (k0, v0) in zip(pairs, value.items()))
        return dict(pairs) if changed else value
    return value


def _surrogate_in(value: Any) -> bool:
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, list):
        return any(_surrogate_in(item) for item in value)
    if isinstance(value, dict):
        return any(_surrogate_in(k) or _surrogate_in(v) for k, v in value.items())
    return False


def parse_json(raw: bytes, max_depth: int = MAX_DEPTH, surrogates: Surrogates = "refuse") -> Any:
    """``raw`` as JSON; ``BadBody`` (400) when it is not UTF-8, not JSON or nested deeper than ``max_depth``.

    A lone surrogate (JSON's ``"\\udfff"``) cannot be stored: ``surrogates="refuse"`` (chatgate's own
    endpoints) answers 400, ``"replace"`` (a platform's text, which a 400 would only make it retry)
    puts U+FFFD in its place.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadBody(400, "not_utf8", "The body is not valid UTF-8.") from None
    # Counting is cheap; only a body with many brackets is scanned for how deep they nest.
    if raw.count(b"[") + raw.count(b"{") > max_depth and _depth(raw) > max_depth:
        raise BadBody(400, "too_deep", f"The JSON is nested more than {max_depth} levels deep.")
    try:
        value = json.loads(text)
    except RecursionError:  # not reached after the depth check; kept as a guard
        raise BadBody(400, "too_deep", f"The JSON is nested more than {max_depth} levels deep.") from None
    except ValueError as exc:
        raise BadBody(400, "bad_json", f"The body is not valid JSON ({exc}).") from None
    # A lone surrogate can only come from a \uD800-\uDFFF escape: most bodies skip the walk.
    if (b"\\ud" in raw or b"\\uD" in raw) and _surrogate_in(value):
        if surrogates == "refuse":
            raise BadBody(400, "invalid_character", INVALID_CHARACTER)
        value = scrub(value)
    return value


def _too_large(max_bytes: int | None) -> BadBody:
    limit = f" than {max_bytes:,} bytes" if max_bytes else " than this server accepts"
    return BadBody(413, "too_large", f"The body is larger{limit}.")


async def read_body(request: web.Request, max_bytes: int | None = None) -> bytes:
    """The request's body, at most ``max_bytes`` (None: the app's ``client_max_size``); ``BadBody`` 413 over it,
    refused by Content-Length before anything is read when it says so."""
    if max_bytes is None:
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _too_large(None) from None
    if request.content_length is not None and request.content_length > max_bytes:
        raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(max_bytes + 1 - size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)


async def read_json(request: web.Request, max_bytes: int | None = None, max_depth: int = MAX_DEPTH,
                    surrogates: Surrogates = "refuse") -> Any:
    """The request's JSON body, any value (``read_body`` then ``parse_json``); ``BadBody`` says why not."""
    return parse_json(await read_body(request, max_bytes), max_depth, surrogates)


async def read_json_object(request: web.Request, max_bytes: int | None = None, max_depth: int = MAX_DEPTH,
                           surrogates: Surrogates = "refuse", allow_empty: bool = False) -> dict:
    """The request's JSON object body (``allow_empty``: {} for an empty one); ``BadBody`` otherwise."""
    raw = await read_body(request, max_bytes)
    if allow_empty and not raw.strip():
        return {}
    value = parse_json(raw, max_depth, surrogates)
    if not isinstance(value, dict):
        raise BadBody(400, "not_object", "The body must be a JSON object.")
    return value
