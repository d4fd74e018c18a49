"""chatgate text: the core's format for agent messages, and splitting text to a length limit.

A small Markdown subset: ``**bold**``, ``_italic_``, ``~~strike~~``, ```code```,
a `````preformatted````` block, ``[label](url)``, bare http(s)/mailto URLs, and
backslash escapes (``\\*`` ``\\_`` ``\\~`` ``\\``` ``\\[`` ``\\]`` ``\\\\``) for literal
characters. Parsing is tolerant: anything that does not form markup is literal
text, and ``parse`` never raises. Platforms render the ``Span`` tuple it returns
in their own format (``channels.render``, ``agent_console.slack.mrkdwn``).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass, replace
from itertools import groupby
from typing import Callable, Iterable, Sequence

__all__ = ["Span", "parse", "plain", "escape", "markup", "render_with", "split", "split_spans", "utf16_len"]

ESCAPABLE = "*_~`[]\\"
MAX_URL = 4096
STYLES = ("bold", "italic", "strike")
# Only these schemes become links: a javascript: or data: URL must never be clickable.
_LINK_URL = re.compile(r"(?:https?://|mailto:)\S+", re.I)
_BARE_URL = re.compile(r"(?:https?://|mailto:)[^\s<>]+", re.I)
_SCHEME = re.compile(r"(?:https?://|mailto:)", re.I)
# Trailing characters that end a sentence rather than a bare URL ("see https://x.com.").
_URL_TRAIL = ".,;:!?'\"*_~]\\"
_LINK_TARGET = re.compile(r"[^\s()]*(?:\([^\s()]*\)[^\s()]*)*\)")
_UNESCAPE = re.compile(r"\\([*_~`\[\]\\])")


@dataclass(frozen=True)
class Span:
    """A run of text with one set of styles; ``url`` is set when the run is (part of) a link label."""

    text: str
    bold: bool = False
    italic: bool = False
    strike: bool = False
    code: bool = False
    pre: bool = False
    url: str = ""


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, as Telegram (and JavaScript) count it."""
    return len(text.encode("utf-16-le")) // 2


def escape(text: str) -> str:
    """Literal text as chatgate text: ``parse(escape(s))`` reads back ``s`` with no styling."""
    return "".join("\\" + ch if ch in ESCAPABLE else ch for ch in text)


# --- parsing ------------------------------------------------------------------------------------

_MARKERS = {"**": "bold", "~~": "strike", "_": "italic"}


class _Parser:
    def __init__(self, text: str):
        self.s = text
        self.out: list[Span] = []
        # A character preceded by an odd run of backslashes is escaped (literal).
        self.escaped = [False] * len(text)
        run = 0
        for i, ch in enumerate(text):
            self.escaped[i] = run % 2 == 1
            run = run + 1 if ch == "\\" else 0
        # Closing positions of each marker, found once so that many unbalanced openers stay linear-ish.
        self.closers = {m: [i for i in self._occurrences(m) if self._closes(m, i)] for m in _MARKERS}

    def _occurrences(self, marker: str) -> Iterable[int]:
        i = self.s.find(marker)
        while i != -1:
            yield i
            i = self.s.find(marker, i + 1)

    def _closes(self, marker: str, i: int) -> bool:
        s = self.s
        if self.escaped[i] or i == 0 or s[i - 1].isspace():
            return False
        after = i + len(marker)
        # Underscores inside words (snake_case) are not emphasis.
        return marker != "_" or after >= len(s) or not s[after].isalnum()

    def _opens(self, marker: str, i: int, hi: int) -> bool:
        s = self.s
        after = i + len(marker)
        if after >= hi or s[after].isspace():
            return False
        return marker != "_" or i == 0 or not s[i - 1].isalnum()

    def _close(self, marker: str, lo: int, hi: int) -> int | None:
        positions = self.closers[marker]
        k = bisect.bisect_left(positions, lo + 1)  # non-empty content
        if k < len(positions) and positions[k] + len(marker) <= hi:
            return positions[k]
        return None

    def inline(self, lo: int, hi: int, style: dict, in_link: bool) -> None:
        s, i = self.s, lo
        buf: list[str] = []

        def flush() -> None:
            if buf:
                self.out.append(Span("".join(buf), **style))
                buf.clear()

        while i < hi:
            ch = s[i]
            if ch == "\\" and i + 1 < hi and s[i + 1] in ESCAPABLE:
                buf.append(s[i + 1])
                i += 2
                continue
            if ch == "`":
                if s.startswith("```", i):
                    j = s.find("```", i + 3, hi)
                    if j > i + 3:
                        flush()
                        body = s[i + 3:j]
                        # The newlines right inside the fences belong to the fences.
                        body = body[1:] if body.startswith("\n") else body
                        body = body[:-1] if body.endswith("\n") else body
                        if body:
                            self.out.append(Span(body, pre=True, url=style.get("url", "")))
                        i = j + 3
                        continue
                j = s.find("`", i + 1, hi)
                if j > i + 1:
                    flush()
                    self.out.append(Span(s[i + 1:j], code=True, **style))
                    i = j + 1
                    continue
                run = len(s[i:hi]) - len(s[i:hi].lstrip("`"))
                buf.append(s[i:i + run])
                i += run
                continue
            marker = "**" if s.startswith("**", i) else "~~" if s.startswith("~~", i) else "_" if ch == "_" else ""
            if marker:
                name = _MARKERS[marker]
                if not style.get(name) and self._opens(marker, i, hi):
                    closer = self._close(marker, i + len(marker), hi)
                    if closer is not None:
                        flush()
                        self.inline(i + len(marker), closer, {**style, name: True}, in_link)
                        i = closer + len(marker)
                        continue
                buf.append(marker)
                i += len(marker)
                continue
            if ch == "[" and not in_link:
                end = self._link(i, hi)
                if end:
                    j, k, url = end
                    flush()
                    if j > i + 1:
                        self.inline(i + 1, j, {**style, "url": url}, True)
                    else:
                        self.out.append(Span(url, **{**style, "url": url}))
                    i = k + 1
                    continue
            if ch in "hHmM" and not in_link and (i == 0 or not s[i - 1].isalnum()):
                found = _BARE_URL.match(s, i, hi)
                if found:
                    raw = found.group()
                    while raw and (raw[-1] in _URL_TRAIL or (raw[-1] == ")" and raw.count("(") < raw.count(")"))):
                        raw = raw[:-1]
                    # Trimming may eat into the scheme ("mailto:." loses its colon): then it is no link.
                    scheme = _SCHEME.match(raw)
                    if scheme is not None and len(raw) > scheme.end():
                        flush()
                        url = _UNESCAPE.sub(r"\1", raw)
                        self.out.append(Span(url, **{**style, "url": url}))
                        i += len(raw)
                        continue
            buf.append(ch)
            i += 1
        flush()

    def _link(self, i: int, hi: int) -> tuple[int, int, str] | None:
        """``(label end, url end, url)`` of a ``[label](url)`` starting at ``i``, or None."""
        s = self.s
        j = i + 1
        while True:
            j = s.find("]", j, hi)
            if j == -1:
                return None
            if not self.escaped[j]:
                break
            j += 1
        if j + 1 >= hi or s[j + 1] != "(":
            return None
        # A URL has no whitespace and a sane length; one level of balanced parentheses (Wikipedia) is kept.
        found = _LINK_TARGET.match(s, j + 2, min(hi, j + 2 + MAX_URL))
        if not found:
            return None
        k = found.end() - 1
        url = _UNESCAPE.sub(r"\1", s[j + 2:k])
        return (j, k, url) if _LINK_URL.fullmatch(url) else None


def _merge(spans: Iterable[Span]) -> tuple[Span, ...]:
    merged: list[Span] = []
    for span in spans:
        if not span.text:
            continue
        if merged and replace(merged[-1], text="") == replace(span, text=""):
            merged[-1] = replace(merged[-1], text=merged[-1].text + span.text)
        else:
            merged.append(span)
    return tuple(merged)


def parse(text: str) -> tuple[Span, ...]:
    """The spans of chatgate ``text``; unbalanced or unknown markup is kept as literal text."""
    parser = _Parser(text)
    parser.inline(0, len(text), {}, False)
    return _merge(parser.out)


def _link_text(label: str, url: str) -> str:
    """``label (url)``, or one of them when they say the same thing."""
    address = url[7:] if url.lower().startswith("mailto:") else url
    if not label.strip() or label == url:
        return url
    return label if label == address else f"{label} ({url})"


def plain(spans: Iterable[Span]) -> str:
    """Readable plain text with no markup; links as ``label (url)``."""
    out = []
    for url, group in groupby(spans, key=lambda span: span.url):
        label = "".join(span.text for span in group)
        out.append(_link_text(label, url) if url else label)
    return "".join(out)


# --- rendering with paired markers --------------------------------------------------------------

def render_with(spans: Iterable[Span], *, marks: dict[str, tuple[str, str]], escape: Callable[[str], str],
                code: Callable[[str], str | None], pre: Callable[[str], str | None],
                link: Callable[[str, str, str], str]) -> str:
    """Render spans in a format with paired style markers (chatgate, Slack mrkdwn, WhatsApp).

    ``marks`` maps "bold", "italic", "strike" to (open, close); ``code``/``pre`` wrap a
    raw text or return None when the format cannot hold it (it is then escaped text);
    ``link(rendered_label, url, label_text)`` renders a link. Markers are placed next
    to the text they style, never next to whitespace, since most formats ignore
    ``* bold *``.
    """
    out = []
    for url, grouped in groupby(spans, key=lambda span: span.url):
        group = list(grouped)
        body = _styled(group, marks, escape, code, pre)
        out.append(link(body, url, "".join(span.text for span in group)) if url else body)
    return "".join(out)


def _styled(spans, marks, escape, code, pre) -> str:
    parts: list[str] = []
    stack: list[str] = []

    def close_to(depth: int) -> None:
        if len(stack) <= depth:
            return
        done = "".join(parts)
        kept = done.rstrip()
        closers = "".join(marks[name][1] for name in reversed(stack[depth:]))
        parts[:] = [kept, closers, done[len(kept):]]
        del stack[depth:]

    for span in spans:
        if not span.text.strip():
            parts.append(span.text)  # whitespace keeps whatever style is open
            continue
        if span.pre:
            wanted: list[str] = []
        else:
            wanted = [name for name in STYLES if getattr(span, name) and name in marks]
        keep = 0
        while keep < len(stack) and stack[keep] in wanted:
            keep += 1
        close_to(keep)
        if span.pre:
            body = pre(span.text)
        elif span.code:
            body = code(span.text)
        else:
            body = None
        body = escape(span.text) if body is None else body
        new = [name for name in wanted if name not in stack]
        lead = len(body) - len(body.lstrip()) if new else 0
        parts.append(body[:lead] + "".join(marks[name][0] for name in new) + body[lead:])
        stack.extend(new)
    close_to(0)
    return "".join(parts)


def _code(text: str) -> str | None:
    return f"`{text}`" if "`" not in text else None


def _pre(text: str) -> str | None:
    return f"```{text}```" if "```" not in text and not text.endswith("`") and text.strip() else None


def _balanced(url: str) -> bool:
    depth = 0
    for ch in url:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def _url(url: str) -> str:
    # Characters that would end or change the (url) part are percent-encoded; balanced
    # parentheses (Wikipedia links) parse as they are.
    url = url.replace("\\", "%5C").replace(" ", "%20")
    return url if _balanced(url) else url.replace("(", "%28").replace(")", "%29")


def markup(spans: Iterable[Span]) -> str:
    """chatgate text for ``spans``: the inverse of ``parse`` (styles, links, literal characters escaped)."""
    return render_with(spans, marks={"bold": ("**", "**"), "italic": ("_", "_"), "strike": ("~~", "~~")},
                       escape=escape, code=_code, pre=_pre,
                       link=lambda body, url, label: f"[{body}]({_url(url)})")


# --- splitting ----------------------------------------------------------------------------------

_PARAGRAPH = re.compile(r"\n[ \t]*\n")
_SENTENCE = re.compile(r"[.!?…](?=\s)|[。！？]")
_JOINERS = {"\u200d", "\ufe0e", "\ufe0f", "\u20e3"}


def _regional(ch: str) -> bool:
    return "\U0001f1e6" <= ch <= "\U0001f1ff"


def _inside_cluster(t: str, c: int) -> bool:
    """Whether cutting before ``t[c]`` would split what a reader sees as one character."""
    if c <= 0 or c >= len(t):
        return False
    ch, before = t[c], t[c - 1]
    if ch in _JOINERS or before == "\u200d" or unicodedata.category(ch) in ("Mn", "Me", "Mc"):
        return True  # joiners, variation selectors and combining marks belong to the character before
    if "\U0001f3fb" <= ch <= "\U0001f3ff" or "\U000e0020" <= ch <= "\U000e007f":  # skin tones, flag tags
        return True
    if before == "\r" and ch == "\n":
        return True
    if _regional(ch) and _regional(before):
        run, k = 0, c - 1
        while k >= 0 and _regional(t[k]):
            run, k = run + 1, k - 1
        return run % 2 == 1  # flags are pairs
    return False


def _best_cut(t: str, a: int, b: int, avoid: Callable[[int], bool]) -> int:
    """Where to end a piece that may run from ``a`` up to ``b``: the most natural break in its second half."""
    half = a + (b - a) // 2
    candidates: list[Callable[[], Iterable[int]]] = [
        lambda: (m.start() for m in _PARAGRAPH.finditer(t, half, b)),
        lambda: (i for i in range(half, b) if t[i] == "\n"),
        lambda: (m.end() for m in _SENTENCE.finditer(t, half, min(b + 1, len(t))) if m.end() <= b),
        lambda: (i for i in range(half, b) if t[i].isspace()),
    ]
    for find in candidates:
        good = [c for c in find() if a < c <= b and not avoid(c)]
        if good:
            return max(good)
    cut = b
    while cut > a + 1 and _inside_cluster(t, cut):
        cut -= 1
    moved = cut
    while moved > a and avoid(moved):
        moved -= 1
    return moved if moved > a else cut


def _ranges(t: str, fits: Callable[[int, int], bool], avoid: Callable[[int], bool]) -> list[tuple[int, int]]:
    """``(start, end)`` of each piece: whitespace at the cuts dropped, every other character kept in order."""
    n, out = len(t), []
    a = len(t) - len(t.lstrip())
    while a < n:
        e = len(t.rstrip())
        if fits(a, e):
            out.append((a, e))
            break
        # Gallop then bisect for the longest prefix that fits: cheap even for long texts.
        lo, step = a, 64
        while lo + step < e and fits(a, lo + step):
            lo, step = lo + step, step * 2
        hi = min(e, lo + step)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if fits(a, mid):
                lo = mid
            else:
                hi = mid
        b = lo
        if b == a:  # not even one character fits: send one anyway rather than loop forever
            b = a + 1
            while b < n and _inside_cluster(t, b):
                b += 1
            cut = b
        else:
            cut = _best_cut(t, a, b, avoid)
        end = len(t[:cut].rstrip())
        if end > a:
            out.append((a, end))
        a = cut + len(t[cut:]) - len(t[cut:].lstrip()) if cut < n else n
    return out


def _never(_: int) -> bool:
    return False


def split(text: str, limit: int, measure: Callable[[str], int] = len,
          keep: Sequence[tuple[int, int]] = ()) -> list[str]:
    """``text`` in ordered pieces with ``measure(piece) <= limit`` (use ``utf16_len`` for Telegram).

    Cuts at a blank line, else a line break, a sentence end, a space, and only then
    anywhere (never inside a character or an emoji sequence). Only the whitespace
    at a cut is dropped; nothing is truncated. ``keep``: (start, end) ranges not to
    cut inside when there is another way. Empty or whitespace-only text gives [].
    """
    starts = sorted(keep)

    def avoid(p: int) -> bool:
        k = bisect.bisect_right(starts, (p, len(text) + 1)) - 1
        return k >= 0 and starts[k][0] < p < starts[k][1]

    def fits(a: int, b: int) -> bool:
        return measure(text[a:b]) <= limit

    return [text[a:b] for a, b in _ranges(text, fits, avoid if starts else _never)]


def split_spans(spans: Iterable[Span], limit: int, render: Callable[[Sequence[Span]], str],
                measure: Callable[[str], int] = len) -> list[str]:
    """Render ``spans`` in ordered chunks with ``measure(render(chunk)) <= limit``.

    Each chunk is rendered on its own, so its markup is balanced; cuts prefer the
    same natural breaks as ``split`` and avoid the inside of a link.
    """
    spans = [span for span in spans if span.text]
    t = "".join(span.text for span in spans)
    offsets, at = [], 0
    for span in spans:
        offsets.append(at)
        at += len(span.text)
    links = []
    for url, grouped in groupby(range(len(spans)), key=lambda k: spans[k].url):
        group = list(grouped)
        if url:
            links.append((offsets[group[0]], offsets[group[-1]] + len(spans[group[-1]].text)))

    def cut(a: int, b: int) -> list[Span]:
        k = max(bisect.bisect_right(offsets, a) - 1, 0)
        out = []
        while k < len(spans) and offsets[k] < b:
            start = offsets[k]
            out.append(replace(spans[k], text=spans[k].text[max(a - start, 0):b - start]))
            k += 1
        return [span for span in out if span.text]

    def avoid(p: int) -> bool:
        k = bisect.bisect_right(links, (p, len(t) + 1)) - 1
        return k >= 0 and links[k][0] < p < links[k][1]

    def fits(a: int, b: int) -> bool:
        return measure(render(cut(a, b))) <= limit

    return [render(cut(a, b)) for a, b in _ranges(t, fits, avoid)]
