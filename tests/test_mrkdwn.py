"""Slack mrkdwn: customer text escaped for Slack, agent text turned into chatgate text and back."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from agent_console.slack.mrkdwn import escape, from_chatgate, split_for_slack, to_chatgate, user_ids
from gateway.text import Span, parse, plain

EXAMPLE = "<https://example.com/x?a=1&amp;b=2|the tracking page> &amp; more"


def test_customer_mention_injection_is_harmless_text():
    shown = escape("hi <!channel> <!here> <@U123> <https://evil.example|click> & co")
    assert "<" not in shown and ">" not in shown
    assert shown == ("hi &lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt; &lt;https://evil.example|click&gt; "
                     "&amp; co")


def test_escape_leaves_markdown_characters_alone():
    assert escape("*_Jo_* [x](y) ~z~ `c`") == "*_Jo_* [x](y) ~z~ `c`"


def test_link_and_entities_become_a_readable_link():
    text = to_chatgate(EXAMPLE, {})
    assert text == "[the tracking page](https://example.com/x?a=1&b=2) & more"
    assert parse(text) == (Span("the tracking page", url="https://example.com/x?a=1&b=2"), Span(" & more"))


def test_bare_and_mailto_links():
    assert plain(parse(to_chatgate("see <https://x.com/a_b>", {}))) == "see https://x.com/a_b"
    assert parse(to_chatgate("<mailto:a@b.c|a@b.c>", {})) == (Span("a@b.c", url="mailto:a@b.c"),)
    assert plain(parse(to_chatgate("<tel:+15551234|call us>", {}))) == "call us (tel:+15551234)"


def test_mentions_become_names():
    names = {"U1": "Alice"}
    assert to_chatgate("ask <@U1> or <@U2|bob> or <@U3>", names) == "ask Alice or bob or someone"
    assert to_chatgate("<#C1|general> <#C2>", {}, {"C2": "billing"}) == "#general #billing"
    assert to_chatgate("<!here> <!channel> <!everyone>", {}) == "@here @channel @everyone"
    assert to_chatgate("<!subteam^S123|@team> on <!date^1392734382^{date}|Feb 18, 2014>", {}) == \
        "@team on Feb 18, 2014"


def test_names_with_markdown_characters_arrive_literally():
    text = to_chatgate("hello <@U1>", {"U1": "*_Jo [x](https://y)_*"})
    assert plain(parse(text)) == "hello *_Jo [x](https://y)_*"


def test_user_ids():
    assert user_ids("<@U1> hi <@W2|x> <#C1> <!here> @U3") == {"U1", "W2"}


def test_slack_styles_at_word_boundaries():
    spans = parse(to_chatgate("*bold* _it_ ~gone~ `a*b` ```pre *x*``` 2*3*4 snake_case_name", {}))
    assert Span("bold", bold=True) in spans and Span("it", italic=True) in spans
    assert Span("gone", strike=True) in spans and Span("a*b", code=True) in spans
    assert Span("pre *x*", pre=True) in spans
    assert plain(spans).endswith(" 2*3*4 snake_case_name")


def test_chatgate_markup_typed_in_slack_arrives_literally():
    typed = r"**not bold** [x](https://y.com) back\slash ~~no~~"
    slack = typed.replace("https://y.com", "<https://y.com>")  # Slack wraps URLs it sees
    text = to_chatgate(slack, {})
    assert plain(parse(text)) == r"**not bold** [x](https://y.com) back\slash ~~no~~"
    assert not any(span.bold or span.strike for span in parse(text))


def test_from_chatgate():
    assert from_chatgate("**b** _i_ ~~s~~ [the page](https://x.com/?a=1&b=2) 1 < 2 & <!here>") == \
        "*b* _i_ ~s~ <https://x.com/?a=1&amp;b=2|the page> 1 &lt; 2 &amp; &lt;!here&gt;"
    assert from_chatgate("https://x.com") == "<https://x.com>"


def test_round_trip_slack_to_chatgate_to_slack():
    slack = "*b* _i_ ~s~ `c` <https://x.com/?a=1&amp;b=2|the page> &amp; &lt;tag&gt;"
    assert from_chatgate(to_chatgate(slack, {})) == slack


def test_split_for_slack_never_cuts_an_entity():
    text = ("x" * 2990 + " <https://example.com/a|label> " + "&amp;" * 700)
    pieces = split_for_slack(text)
    assert all(len(piece) <= 3000 for piece in pieces)
    assert pieces[0] == "x" * 2990
    assert pieces[1].startswith("<https://example.com/a|label>")
    assert all(not piece.startswith(("amp;", "mp;", "p;", ";")) for piece in pieces)
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")


def test_empty_message():
    assert to_chatgate("", {}) == "" and split_for_slack("  \n ") == []


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_escaped_customer_text_has_no_slack_syntax_and_reads_back(text):
    shown = escape(text)
    assert "<" not in shown and ">" not in shown
    assert shown.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == text


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(list("ab *_~`<>&|@!#:/.\n\\[]()")), max_size=80))
def test_to_chatgate_never_raises(text):
    to_chatgate(text, {"U1": "A"})
    from_chatgate(text)
