"""Saved replies: team-wide answers with variables, from the config and from admins at run time.

The config's ``[[saved_replies]]`` are the defaults; admins add, edit and delete
replies at run time (``Conversations.save_reply`` / ``delete_reply``), kept in one
Redis hash (``{prefix}:saved_replies``, by lower-cased name). A run-time entry
overrides the config's reply of the same name; deleting a configured one leaves a
tombstone, so it stays deleted until an admin saves it again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Sequence

from .config import SAVED_REPLY_VARIABLES, SavedReplyConfig
from .message import Refused
from .redis_text import writable

__all__ = ["SavedReply", "SavedReplies", "fill", "check", "search"]

_VARIABLE = re.compile(r"\{([a-z_]+)\}")
MAX_NAME = 60
MAX_TEXT = 4000


@dataclass(frozen=True)
class SavedReply:
    name: str
    text: str
    source: str = "config"  # "config" or "team" (saved at run time)
    by: str = ""  # the admin who saved it last
    at: float = 0.0


def fill(text: str, customer_name: str, agent_name: str) -> str:
    """The reply with its variables filled in (unknown ones are left as written)."""
    values = {"customer_name": customer_name, "agent_name": agent_name}
    return _VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def check(name: str, text: str) -> None:
    """Refuse (``bad_saved_reply``) a name or text an admin may not save."""
    if not name.strip() or len(name.strip()) > MAX_NAME:
        raise Refused("bad_saved_reply", reason=f"A saved reply needs a name of 1-{MAX_NAME} characters.")
    if not text.strip() or len(text) > MAX_TEXT:
        raise Refused("bad_saved_reply", reason=f"A saved reply needs a text of 1-{MAX_TEXT} characters.")
    unknown = sorted(set(_VARIABLE.findall(text)) - set(SAVED_REPLY_VARIABLES))
    if unknown:
        raise Refused("bad_saved_reply", reason=f"{{{unknown[0]}}} is not a variable chatgate knows; use "
                      + " or ".join("{" + v + "}" for v in SAVED_REPLY_VARIABLES) + ".")


def search(replies: Sequence[SavedReply], query: str) -> list[SavedReply]:
    """Replies matching every word of ``query`` in their name or text; name matches first, then by name."""
    words = query.lower().split()
    if not words:
        return sorted(replies, key=lambda r: r.name.lower())
    found = [r for r in replies if all(w in f"{r.name}\n{r.text}".lower() for w in words)]
    return sorted(found, key=lambda r: (not all(w in r.name.lower() for w in words), r.name.lower()))


class SavedReplies:
    """The team's saved replies as they apply now: the config's, with the admins' changes over them."""

    def __init__(self, redis, key: str, configured: Sequence[SavedReplyConfig] = ()):
        self.redis = redis
        self.key = key
        self.configured = {r.name.lower(): SavedReply(r.name, r.text) for r in configured}

    async def all(self) -> list[SavedReply]:
        replies = dict(self.configured)
        for name, raw in (await self.redis.hgetall(self.key)).items():
            entry = json.loads(raw)
            name = name.decode() if isinstance(name, bytes) else name
            if entry.get("deleted"):
                replies.pop(name, None)
            else:
                replies[name] = SavedReply(entry["name"], entry["text"], "team", entry.get("by", ""),
                                           float(entry.get("at") or 0))
        return sorted(replies.values(), key=lambda r: r.name.lower())

    async def get(self, name: str) -> SavedReply | None:
        name = writable(name)
        raw = await self.redis.hget(self.key, name.strip().lower())
        if raw is not None:
            entry = json.loads(raw)
            if entry.get("deleted"):
                return None
            return SavedReply(entry["name"], entry["text"], "team", entry.get("by", ""), float(entry.get("at") or 0))
        return self.configured.get(name.strip().lower())

    async def save(self, name: str, text: str, by: str, at: float) -> SavedReply:
        name, text = writable(name), writable(text)  # a lone surrogate cannot be a hash field: U+FFFD
        check(name, text)
        reply = SavedReply(name.strip(), text, "team", by, at)
        await self.redis.hset(self.key, reply.name.lower(),
                              json.dumps({"name": reply.name, "text": text, "by": by, "at": at}))
        return reply

    async def delete(self, name: str, by: str, at: float) -> None:
        name = writable(name)
        if await self.get(name) is None:
            raise Refused("no_saved_reply", reason=f"There is no saved reply called “{name.strip()}”.")
        lower = name.strip().lower()
        if lower in self.configured:
            await self.redis.hset(self.key, lower, json.dumps({"name": name.strip(), "deleted": True, "by": by,
                                                               "at": at}))
        else:
            await self.redis.hdel(self.key, lower)
