"""Slack's text format (mrkdwn) to and from chatgate text, and escaping customer text for Slack.

Slack delivers an agent's message with ``&<>`` escaped, links and mentions as
``<target|label>`` and ``*bold*``/``_italic_``/``~strike~`` markers that count only
at word boundaries. Customer text shown in Slack must be escaped, so that
``<!channel>`` typed by a customer notifies no one.
"""

from __future__ import annotations

import bisect
import re
from typing import Mapping

from gateway import text as chatgate
from gateway.text import Span

__all__ = ["SECTION_LIMIT", "escape", "clip", "to_chatgate", "user_ids", "from_chatgate", "split_for_slack"]

# Slack: 3,000 characters per section text, 40,000 per message text, 50 blocks per message.
SECTION_LIMIT = 3000

_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_SPECIAL = {"here": "@here", "channel": "@channel", "everyone": "@everyone"}
_LINKABLE = re.compile(r"(?:https?://|mailto:)\S+", re.I)


def escape(text: str) -> str:
    """Literal text for Slack (``&<>`` escaped, nothing else): no mention, link or command can come of it."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def user_ids(mrkdwn: str) -> set[str]:
    """The ids of the users mentioned in ``mrkdwn`` (to look their names up before ``to_chatgate``)."""
    return set(_USER.findall(mrkdwn))


class _Slack:
    """A tolerant parser of Slack message text into chatgate spans."""

    def __init__(self, s: str, users: Mapping[str, str], channels: Mapping[str, str]):
        self.s, self.users, self.channels = s, users, channels
        self.out: list[Span] = []
        self.newlines = [i for i, ch in enumerate(s) if ch == "\n"]
        self.closers = {m: [i for i, ch in enumerate(s) if ch == m and self._closes(i)] for m in "*_~"}

    def _closes(self, i: int) -> bool:
        s = self.s
        return (i > 0 and not s[i - 1].isspace() and not self._doubled(i)
                and (i + 1 >= len(s) or not s[i + 1].isalnum()))

    def _doubled(self, i: int) -> bool:
        # Slack shows "**" or "__" literally: only a single marker character styles text.
        s = self.s
        return (i > 0 and s[i - 1] == s[i]) or (i + 1 < len(s) and s[i + 1] == s[i])

    def _close(self, marker: str, i: int, hi: int) -> int | None:
        positions = self.closers[marker]
        k = bisect.bisect_left(positions, i + 2)
        if k == len(positions) or positions[k] >= hi:
            return None
        j = positions[k]
        # Slack's bold, italic and strike end at the end of a line.
        line = bisect.bisect_left(self.newlines, i)
        return j if line == len(self.newlines) or self.newlines[line] > j else None

    def entity(self, body: str) -> tuple[str, str]:
        """(text, url) for the inside of ``<...>``."""
        target, _, label = body.partition("|")
        label = _unescape(label)
        if target.startswith("@"):
            return self.users.get(target[1:]) or label.lstrip("@") or "someone", ""
        if target.startswith("#"):
            return "#" + (self.channels.get(target[1:]) or label.lstrip("#") or "channel"), ""
        if target.startswith("!"):
            command = target[1:]
            if command in _SPECIAL:
                return _SPECIAL[command], ""
            if command.startswith("subteam^"):
                return label if label.startswith("@") else "@" + (label or "team"), ""
            return label, ""  # dates and anything newer: Slack's own fallback text
        url = _unescape(target)
        label = label or url
        if _LINKABLE.fullmatch(url):
            return label, url
        return (label if label == url else f"{label} ({url})"), ""

    def plain(self, s: str) -> str:
        """Text inside code: entities shown as their text, no styles."""
        def one(match: re.Match) -> str:
            text, url = self.entity(match.group(1))
            return text if not url or text == url else f"{text} ({url})"
        return _unescape(re.sub(r"<([^<>]*)>", one, s))

    def inline(self, lo: int, hi: int, style: dict) -> None:
        s, i = self.s, lo
        buf: list[str] = []

        def flush() -> None:
            if buf:
                self.out.append(Span(_unescape("".join(buf)), **style))
                buf.clear()

        while i < hi:
            ch = s[i]
            if ch == "`":
                if s.startswith("```", i):
                    j = s.find("```", i + 3, hi)
                    if j > i + 3:
                        flush()
                        self.out.append(Span(self.plain(s[i + 3:j]).strip("\n"), pre=True))
                        i = j + 3
                        continue
                j = s.find("`", i + 1, hi)
                if j > i + 1:
                    flush()
                    self.out.append(Span(self.plain(s[i + 1:j]), code=True, **style))
                    i = j + 1
                    continue
            elif ch == "<":
                j = s.find(">", i + 1, hi)
                if j != -1 and "<" not in s[i + 1:j]:
                    flush()
                    text, url = self.entity(s[i + 1:j])
                    self.out.append(Span(text, **{**style, "url": url} if url else style))
                    i = j + 1
                    continue
            elif ch in "*_~":
                name = {"*": "bold", "_": "italic", "~": "strike"}[ch]
                opens = ((i == 0 or not s[i - 1].isalnum()) and i + 1 < hi and not s[i + 1].isspace()
                         and not self._doubled(i))
                closer = self._close(ch, i, hi) if opens and not style.get(name) else None
                if closer is not None:
                    flush()
                    self.inline(i + 1, closer, {**style, name: True})
                    i = closer + 1
                    continue
            buf.append(ch)
            i += 1
        flush()


def to_chatgate(mrkdwn: str, user_names: Mapping[str, str], channel_names: Mapping[str, str] | None = None) -> str:
    """chatgate text for an agent's Slack message text (as the Events API delivers it).

    Mentions become names (``user_names``: id -> name, else Slack's label, else
    "someone"), ``<url|label>`` a link, ``<!here>`` plain "@here"; anything that
    would be markup in chatgate text but is literal in Slack is escaped.
    """
    parser = _Slack(mrkdwn, user_names, channel_names or {})
    parser.inline(0, len(mrkdwn), {})
    return chatgate.markup(parser.out)


def _slack_link(body: str, url: str, label: str) -> str:
    target = escape(url).replace("|", "%7C")
    return f"<{target}>" if label == url else f"<{target}|{body}>"


def from_chatgate(text: str) -> str:
    """Slack mrkdwn for chatgate ``text`` (e.g. an agent's reply from another console)."""
    return chatgate.render_with(
        chatgate.parse(text), marks={"bold": ("*", "*"), "italic": ("_", "_"), "strike": ("~", "~")},
        escape=escape, code=lambda t: f"`{escape(t)}`" if "`" not in t else None,
        pre=lambda t: f"```{escape(t)}```" if "```" not in t else None, link=_slack_link)


def split_for_slack(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """mrkdwn ``text`` in ordered pieces for section blocks, never cutting inside ``<...>`` or ``&amp;``."""
    keep = [m.span() for m in re.finditer(r"<[^<>]*>|&(?:amp|lt|gt);", text)]
    return chatgate.split(text, limit, measure=chatgate.utf16_len, keep=keep)


def clip(text: str, limit: int, more: str = "…") -> str:
    """``escape(text)`` within ``limit`` characters: cut (never inside ``&amp;``) and ended with ``more`` if too long."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    room = max(0, limit - len(more))
    out, used = [], 0
    for ch in text:
        piece = escape(ch)
        if used + len(piece) > room:
            break
        out.append(piece)
        used += len(piece)
    return "".join(out) + more
