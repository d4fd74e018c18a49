"""Redis replies as text.

redis-py types reply values as ``bytes | str`` (which one depends on the client's
``decode_responses``; chatgate's clients leave it off and get bytes), and a command whose reply
takes several shapes (``ZRANGE`` with or without scores) as the union of them all.
"""

from __future__ import annotations

import re

__all__ = ["as_text", "scored", "stream_entries", "LONE_SURROGATE", "writable"]

# A UTF-16 surrogate code point; in a Python str one always stands alone (a pair is one code point).
# No UTF-8 encoder, the Redis client's included, can write it.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def writable(text: str) -> str:
    """``text`` as Redis can store it: each lone surrogate replaced by U+FFFD (``text`` itself when none)."""
    return LONE_SURROGATE.sub("\ufffd", text) if LONE_SURROGATE.search(text) else text


def as_text(value: object) -> str:
    """A reply value that is a string (a key's value, a hash field, a set member, a stream id) as text."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    raise TypeError(f"a Redis string was expected, not {type(value).__name__}")


def stream_entries(reply: object) -> list[tuple[str, dict[str, str]]]:
    """The entries of an ``XREAD`` reply (``[[stream, [(id, {field: value}), …]], …]``; none when it
    timed out), every stream's in turn, as (id, fields) text."""
    if not reply:
        return []
    if not isinstance(reply, (list, tuple)):
        raise TypeError(f"an XREAD reply in RESP2 form was expected, not {type(reply).__name__}")
    return [(as_text(stream_id), {as_text(name): as_text(value) for name, value in fields.items()})
            for _stream, entries in reply for stream_id, fields in entries]


def scored(reply: object) -> list[tuple[str, float]]:
    """A sorted-set reply ``WITHSCORES`` (``ZRANGE``, ``ZRANGEBYSCORE``) as (member, score) pairs."""
    if not isinstance(reply, (list, tuple)):
        raise TypeError(f"a list of (member, score) pairs was expected, not {type(reply).__name__}")
    return [(as_text(member), float(score)) for member, score in reply]
