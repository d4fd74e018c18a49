"""What a channel or console keeps about a conversation in its refs, declared by the plugin itself.

A plugin remembers small things with ``Store.set_ref(kind, name, value)``, one Redis hash per kind:
a card's message id, the parts of a long message already sent. When retention removes a closed
conversation, every field naming it must go too, and only the plugin knows how it names them; so
each plugin declares its kinds (``refs(config) -> Refs``) and retention forgets them without knowing
any platform.

A field's name is made of parts joined by ":":

- ``CONVERSATION``: the conversation's id;
- ``SEQ``: each message's number in the history (a field per message);
- ``FILE``: each file's index in that message (0, 1, …);
- a string: itself;
- ``ref(kind, *name)``: the value of another ref about the conversation (nothing when it has none),
  ``split`` into several at a separator, or only what comes ``after`` a separator;
- ``either(*parts)``: each of them.

A field with ``only_if`` belongs to a reverse map (a platform's id -> the conversation): it is deleted
only while its value still names the conversation, so one reused since stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Union

__all__ = ["CONVERSATION", "SEQ", "FILE", "Ref", "Either", "Forget", "Refs", "ref", "either", "by_conversation",
           "by_message", "encode"]


@dataclass(frozen=True)
class _Each:
    """A part that stands for the conversation's id, each message's seq or each file's index."""

    what: str


CONVERSATION = _Each("id")
SEQ = _Each("seq")
FILE = _Each("file")


@dataclass(frozen=True)
class Ref:
    """A part: the value of another ref about the conversation (see ``ref``)."""

    kind: str
    name: tuple["Part", ...]
    split: str = ""
    after: str = ""


@dataclass(frozen=True)
class Either:
    """A part: each of several."""

    parts: tuple["Part", ...]


Part = Union[_Each, Ref, Either, str]


def ref(kind: str, *name: Part, split: str = "", after: str = "") -> Ref:
    """The value of the ref ``kind`` named ``name`` (the conversation's id when not given)."""
    return Ref(kind, name or (CONVERSATION,), split, after)


def either(*parts: Part) -> Either:
    return Either(parts)


@dataclass(frozen=True)
class Forget:
    """The fields of one kind that name a conversation, and when they may go."""

    kind: str
    name: tuple[Part, ...]
    only_if: tuple[Part, ...] = ()

    def per_message(self) -> bool:
        return any(_per_message(part) for part in (*self.name, *self.only_if))


@dataclass(frozen=True)
class Refs:
    """One plugin's declaration: what retention forgets with a conversation, and the kinds it keeps
    on purpose (``kept``: about no one conversation, like an agent's view)."""

    forget: tuple[Forget, ...] = ()
    kept: tuple[str, ...] = ()

    def kinds(self) -> set[str]:
        return {f.kind for f in self.forget} | set(self.kept)


def by_conversation(*kinds: str) -> tuple[Forget, ...]:
    """Kinds whose field is the conversation's id."""
    return tuple(Forget(kind, (CONVERSATION,)) for kind in kinds)


def by_message(*kinds: str) -> tuple[Forget, ...]:
    """Kinds whose field is ``<conversation id>:<seq>``, one per message."""
    return tuple(Forget(kind, (CONVERSATION, SEQ)) for kind in kinds)


def _per_message(part: Part) -> bool:
    if isinstance(part, _Each):
        return part in (SEQ, FILE)
    if isinstance(part, Ref):
        return any(_per_message(p) for p in part.name)
    if isinstance(part, Either):
        return any(_per_message(p) for p in part.parts)
    return False


def _encoded(part: Part) -> list:
    if isinstance(part, _Each):
        return [part.what]
    if isinstance(part, Ref):
        return ["ref", part.kind, [_encoded(p) for p in part.name], part.split, part.after]
    if isinstance(part, Either):
        return ["either", [_encoded(p) for p in part.parts]]
    return ["text", part]


def encode(declarations: Iterable[Refs]) -> list[dict]:
    """Every field to forget, as retention's Lua script reads it (JSON)."""
    return [{"kind": f.kind, "name": [_encoded(p) for p in f.name], "only_if": [_encoded(p) for p in f.only_if],
             "per_message": f.per_message()} for refs in declarations for f in refs.forget]
