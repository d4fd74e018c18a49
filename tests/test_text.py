"""chatgate text: parsing, escaping, plain text and splitting to a limit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from gateway.text import Span, escape, markup, parse, plain, split, split_spans, utf16_len


def test_styles_links_and_code():
    spans = parse("**bold** _it_ ~~gone~~ `x*y` [the page](https://example.com/a_b) see https://ex.com/q.")
    assert Span("bold", bold=True) in spans
    assert Span("it", italic=True) in spans
    assert Span("gone", strike=True) in spans
    assert Span("x*y", code=True) in spans
    assert Span("the page", url="https://example.com/a_b") in spans
    # The full stop ends the sentence, not the URL.
    assert Span("https://ex.com/q", url="https://ex.com/q") in spans
    assert plain(spans) == "bold it gone x*y the page (https://example.com/a_b) see https://ex.com/q."


def test_preformatted_block_keeps_markup_literal():
    assert parse("```\nprint(a**b)\n```") == (Span("print(a**b)", pre=True),)


@pytest.mark.parametrize("text", [
    "**unclosed", "a ** b ** c", "_ not italic_", "snake_case_name", "2*3*4", "[label](no-scheme)",
    "[x](javascript:alert(1))", "``", "```", "trailing \\", "[unclosed](x.com",
    # A bare scheme whose trailing punctuation is trimmed away is no link.
    "mailto:.", "ask mailto:!",
])
def test_unbalanced_or_unknown_markup_is_literal(text):
    assert plain(parse(text)) == text.replace("\\\\", "\\")
    assert not any(span.bold or span.italic or span.strike or span.url for span in parse(text))


def test_escapes_give_literal_characters():
    assert plain(parse(r"\*\*not bold\*\* \_x\_ \[a\](b) \\ \` \~")) == r"**not bold** _x_ [a](b) \ ` ~"


def test_names_with_markdown_characters_round_trip():
    name = "*_Jo [the] ~Boss~_* \\o/"
    assert parse(escape(name)) == (Span(name),)
    assert parse(f"Hello **{escape(name)}**") == (Span("Hello "), Span(name, bold=True))


def test_emoji_and_rtl_text_pass_through():
    text = "مرحبا **بك** 👋🏽 שלום _עולם_ 🇫🇷"
    spans = parse(text)
    assert plain(spans) == "مرحبا بك 👋🏽 שלום עולם 🇫🇷"
    assert Span("بك", bold=True) in spans and Span("עולם", italic=True) in spans


def test_link_label_equal_to_url_is_shown_once():
    assert plain(parse("[https://x.com](https://x.com)")) == "https://x.com"
    assert plain(parse("[a@b.c](mailto:a@b.c)")) == "a@b.c"


def test_markup_is_the_inverse_of_parse():
    text = "**bold _both_** and [a *label*](https://x.com/(1)) `c` ~~s~~ lit\\*"
    assert parse(markup(parse(text))) == parse(text)


def test_split_prefers_paragraph_then_line_then_sentence():
    para = "First paragraph line one.\nline two.\n\nSecond paragraph."
    assert split(para, 40) == ["First paragraph line one.\nline two.", "Second paragraph."]
    assert split("One sentence here. Another one here", 25) == ["One sentence here.", "Another one here"]
    assert split("word " * 10, 12) == ["word word", "word word", "word word", "word word", "word word"]


def test_split_hard_cut_keeps_emoji_sequences_whole():
    family = "👨‍👩‍👧"  # one visible emoji, five Python characters
    text = family * 10
    pieces = split(text, 12)
    assert "".join(pieces) == text
    assert all(len(piece) <= 12 and len(piece) % 5 == 0 for piece in pieces)


def test_split_in_utf16_units():
    text = "😀" * 3000  # 6000 UTF-16 units
    pieces = split(text, 4096, measure=utf16_len)
    assert [utf16_len(p) for p in pieces] == [4096, 1904]
    assert "".join(pieces) == text


def test_empty_and_whitespace_only_give_nothing():
    assert split("", 10) == [] and split(" \n\t ", 10) == []
    assert split_spans(parse("   "), 10, plain) == []
    assert split("short", 10) == ["short"]


def test_split_spans_keeps_markup_balanced_and_links_whole():
    spans = parse("**" + "bold words " * 30 + "** then [a link label](https://x.com) end")
    chunks = split_spans(spans, 60, markup)
    assert all(len(c) <= 60 for c in chunks)
    for chunk in chunks:
        assert chunk.count("**") % 2 == 0
    assert any("[a link label](https://x.com)" in c for c in chunks)
    assert " ".join(plain(parse(c)) for c in chunks).split() == plain(spans).split()


def test_a_single_long_span_is_split_by_text():
    chunks = split_spans((Span("x" * 250, bold=True),), 100, markup)
    assert chunks == ["**" + "x" * 96 + "**", "**" + "x" * 96 + "**", "**" + "x" * 58 + "**"]


# --- properties ---------------------------------------------------------------------------------

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)
marky = st.lists(st.sampled_from(list("ab _*~`[]()\\\n.") + ["https://x.co/", "**", "~~", "😀", "é", "\u0301"]),
                 max_size=80).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(texts, marky), st.integers(min_value=2, max_value=50))
def test_split_never_loses_characters_and_keeps_the_limit(text, limit):
    pieces = split(text, limit)
    assert all(0 < len(piece) <= limit for piece in pieces)
    assert "".join("".join(p.split()) for p in pieces) == "".join(text.split())


@settings(max_examples=300, deadline=None)
@given(st.one_of(texts, marky))
def test_escape_then_parse_gives_the_text_back(text):
    spans = parse(escape(text))
    assert "".join(span.text for span in spans) == text
    assert plain(spans) == text
    assert not any(span.bold or span.italic or span.strike or span.code or span.pre for span in spans)


@settings(max_examples=300, deadline=None)
@given(st.one_of(texts, marky))
def test_parse_never_raises_and_keeps_visible_text(text):
    spans = parse(text)
    assert all(span.text for span in spans)
    # Markup characters may disappear, letters never do.
    visible = "".join(span.text for span in spans)
    assert [ch for ch in visible if ch.isalnum()] == [ch for ch in text if ch.isalnum()] or "`" in text


def visible(spans) -> str:
    return "".join(span.text for span in spans)


@settings(max_examples=200, deadline=None)
@given(marky, st.integers(min_value=2, max_value=60))
def test_split_spans_pieces_fit_and_keep_every_character(text, limit):
    spans = parse(text)
    chunks = split_spans(spans, limit, visible)
    assert all(0 < len(c) <= limit for c in chunks)
    assert "".join("".join(c.split()) for c in chunks) == "".join(visible(spans).split())
