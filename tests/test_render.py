"""chatgate text on each customer platform: Telegram HTML, WhatsApp, SMS, in pieces within the limits."""

from __future__ import annotations

from html.parser import HTMLParser

from hypothesis import given, settings, strategies as st

from agent_console.slack.mrkdwn import to_chatgate
from channels.render import (sms_chunks, telegram_chunks, telegram_html, telegram_visible_len, whatsapp,
                             whatsapp_chunks)
from gateway.text import escape, parse, utf16_len

EXAMPLE = to_chatgate("<https://example.com/x?a=1&amp;b=2|the tracking page> &amp; more", {})


class TagChecker(HTMLParser):
    """Records whether tags are balanced and only Telegram's."""

    ALLOWED = {"b", "i", "s", "code", "pre", "a"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.ok = True
        self.text = ""

    def handle_starttag(self, tag, attrs):
        self.ok &= tag in self.ALLOWED and (tag != "a" or [k for k, _ in attrs] == ["href"])
        self.stack.append(tag)

    def handle_endtag(self, tag):
        self.ok &= bool(self.stack) and self.stack.pop() == tag

    def handle_data(self, data):
        self.text += data


def well_formed(html: str) -> TagChecker:
    checker = TagChecker()
    checker.feed(html)
    checker.close()
    assert checker.ok and not checker.stack, html
    return checker


def test_tracking_link_on_each_platform():
    assert telegram_chunks(EXAMPLE) == ['<a href="https://example.com/x?a=1&amp;b=2">the tracking page</a> &amp; more']
    assert whatsapp_chunks(EXAMPLE) == ["the tracking page (https://example.com/x?a=1&b=2) & more"]
    assert sms_chunks(EXAMPLE) == ["the tracking page (https://example.com/x?a=1&b=2) & more"]


def test_styles_on_each_platform():
    text = "**bold** _it_ ~~s~~ `code` ```\nblock <x>\n``` [site](https://x.com/?q=\"1\")"
    html = telegram_chunks(text)[0]
    assert html == ('<b>bold</b> <i>it</i> <s>s</s> <code>code</code> <pre>block &lt;x&gt;</pre> '
                    '<a href="https://x.com/?q=&quot;1&quot;">site</a>')
    assert whatsapp(parse(text)) == '*bold* _it_ ~s~ ```code``` ```block <x>``` site (https://x.com/?q="1")'
    assert sms_chunks(text) == ['bold it s code block <x> site (https://x.com/?q="1")']


def test_whatsapp_markers_hug_the_text():
    assert whatsapp(parse("**bold words **and")) == "**bold words **and"  # not bold: closer after a space
    assert whatsapp(parse("**a _b_ c** d")) == "*a _b_ c* d"


def test_customer_sees_literal_markdown_characters_in_names():
    text = "Hi " + escape("*_Jo [x]_*") + ", thanks"
    assert telegram_chunks(text) == ["Hi *_Jo [x]_*, thanks"]
    assert sms_chunks(text) == ["Hi *_Jo [x]_*, thanks"]


def test_emoji_and_rtl_text():
    text = "مرحبا **بك** 👋🏽 שלום 🇫🇷"
    assert telegram_chunks(text) == ["مرحبا <b>بك</b> 👋🏽 שלום 🇫🇷"]
    assert whatsapp_chunks(text) == ["مرحبا *بك* 👋🏽 שלום 🇫🇷"]


def test_long_agent_reply_splits_into_ordered_telegram_pieces():
    words = [f"w{i}" for i in range(2000)]
    text = " ".join(f"**{w}** & <b>" if i % 50 == 0 else w for i, w in enumerate(words))
    text = (text + " ") * 2  # over 10,000 characters
    assert len(text) > 10_000
    pieces = telegram_chunks(text)
    assert len(pieces) >= 3
    visible = []
    for piece in pieces:
        checker = well_formed(piece)
        assert 0 < utf16_len(checker.text) <= 4096
        visible.append(checker.text)
    whole = "".join(span.text for span in parse(text))
    assert " ".join(visible).split() == whole.split()  # every word, in order


def test_long_reply_for_twilio():
    text = ("A sentence of words. " * 200).strip()
    for chunks in (sms_chunks(text), whatsapp_chunks(text)):
        assert all(len(c) <= 1600 for c in chunks)
        assert all(c.endswith(".") for c in chunks)  # cut at sentence ends
        assert " ".join(chunks) == text


def test_emoji_count_as_two_telegram_units():
    pieces = telegram_chunks("😀" * 5000)
    assert [telegram_visible_len(p) for p in pieces] == [4096, 4096, 1808]


def test_empty_or_whitespace_gives_nothing_to_send():
    assert telegram_chunks("") == [] and telegram_chunks("  \n ") == []
    assert sms_chunks("\n\n") == [] and whatsapp_chunks("") == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("ab <>&\"*_~`[]()\\\n") + ["**", "~~", "https://x.co/?a=1&b=\"2\"", "😀"]),
                max_size=80).map("".join), st.integers(min_value=20, max_value=200))
def test_telegram_html_is_always_well_formed_and_within_limit(text, limit):
    assert well_formed(telegram_html(parse(text))).text == "".join(span.text for span in parse(text))
    for piece in telegram_chunks(text, limit):
        assert telegram_visible_len(piece) <= limit
        well_formed(piece)
