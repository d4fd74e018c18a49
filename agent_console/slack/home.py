"""Block Kit for the App Home: team figures, who has room, Inbox / Assigned tabs, filters, paging,
auto-close.

Pure functions from core types to a ``views.publish`` view; reading the data and
publishing it is ``home_refresh.py``'s job.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

from gateway.message import Conversation, State
from gateway.operations import available
from gateway.store import MAX_OFFSET, AutoClose, Figures, Page

from typing import Mapping

from .cards import format_seconds
from .mrkdwn import clip

__all__ = [
    "HomeState", "PAGE_SIZE", "AUTO_CLOSE_CHOICES", "ANY",
    "home_view", "not_on_team_view", "row_actions",
]

PAGE_SIZE = 10
ANY = "any"  # the filter option "all channels" / "all topics"

AUTO_CLOSE_CHOICES = (5 * 60, 15 * 60, 30 * 60, 60 * 60)  # seconds, offered to admins

_STATE = {
    State.NEW: ":new: New",
    State.ACTIVE: ":large_green_circle: *Active chat*",
    State.RESOLVED: ":white_check_mark: Resolved",
    State.CLOSED: ":lock: Closed",
}


@dataclass(frozen=True)
class HomeState:
    """What an agent is looking at: tab, filters and page; kept per user so refreshes keep it."""

    tab: str = "inbox"  # "inbox" or "assigned"
    channel: str = ""  # empty: every channel
    topic: str = ""  # empty: every topic
    offset: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | None) -> "HomeState":
        if not raw:
            return cls()
        data = json.loads(raw)
        tab = data.get("tab") if data.get("tab") in ("inbox", "assigned") else "inbox"
        # Never deeper than the store pages (MAX_OFFSET): a state saved before the bound, say.
        return cls(tab=tab, channel=str(data.get("channel") or ""), topic=str(data.get("topic") or ""),
                   offset=min(MAX_OFFSET, max(0, int(data.get("offset") or 0))))

    def switched(self, **changes) -> "HomeState":
        """A new tab or filter starts again at the first page."""
        return replace(self, offset=0, **changes)


def _text(text: str) -> dict:
    return {"type": "mrkdwn", "text": text}


def _plain(text: str) -> dict:
    return {"type": "plain_text", "text": text[:75], "emoji": True}


def _option(label: str, value: str) -> dict:
    return {"text": _plain(label), "value": value}


def _button(action_id: str, label: str, value: str = "", style: str | None = None, url: str = "") -> dict:
    button = {"type": "button", "action_id": action_id, "text": _plain(label)}
    if value:
        button["value"] = value
    if style:
        button["style"] = style
    if url:
        button["url"] = url
    return button


def _select(action_id: str, placeholder: str, options: list[dict], selected: str) -> dict:
    select = {"type": "static_select", "action_id": action_id, "placeholder": _plain(placeholder),
              "options": options}
    chosen = next((o for o in options if o["value"] == selected), None)
    if chosen:
        select["initial_option"] = chosen
    return select


def _figures(figures: Figures) -> dict:
    rating = "–"
    if figures.average_rating is not None:
        plural = "s" if figures.ratings != 1 else ""
        rating = f"{figures.average_rating:.1f}/5 ({figures.ratings} rating{plural})"
    return {"type": "section", "block_id": "home-figures", "fields": [
        _text(f"*Chats waiting*\n{figures.waiting}"),
        _text(f"*Median first response today*\n{format_seconds(figures.median_first_response)}"),
        _text(f"*Average rating this week*\n{rating}"),
    ]}


def _auto_close(setting: AutoClose) -> list[dict]:
    minutes = {seconds: f"{seconds // 60} minutes" for seconds in AUTO_CLOSE_CHOICES}
    choices = [_option(label, str(seconds)) for seconds, label in minutes.items()]
    current = str(int(setting.after)) if float(setting.after).is_integer() else repr(setting.after)
    if not any(o["value"] == current for o in choices):
        choices.insert(0, _option(format_seconds(setting.after), current))
    state = f"on, {format_seconds(setting.after)} after resolve" if setting.enabled else "off"
    toggle = ("off", "Turn auto-close off", "danger") if setting.enabled else ("on", "Turn auto-close on", "primary")
    return [
        {"type": "section", "block_id": "home-auto-close",
         "text": _text(f"*Auto-close of resolved chats (admins):* {state}")},
        {"type": "actions", "block_id": "home-auto-close-controls", "elements": [
            _button("home_auto_close", toggle[1], toggle[0], toggle[2]),
            _select("home_auto_close_after", "Close after", choices, current),
        ]},
    ]


def _tabs(state: HomeState, topics: tuple[str, ...], labels: Mapping[str, str]) -> dict:
    channels = [_option("All channels", ANY)] + [_option(label, name) for name, label in labels.items()]
    topic_options = [_option("All topics", ANY)] + [_option(name, name) for name in topics]
    return {"type": "actions", "block_id": "home-tabs", "elements": [
        _button("home_tab_inbox", "Inbox", "inbox", "primary" if state.tab == "inbox" else None),
        _button("home_tab_assigned", "Assigned to me", "assigned", "primary" if state.tab == "assigned" else None),
        _select("home_filter_channel", "Channel", channels, state.channel or ANY),
        _select("home_filter_topic", "Topic", topic_options[:100], state.topic or ANY),
    ]}


def row_actions(conversation: Conversation, tab: str, link: str | None) -> list[dict]:
    """Open chat (a link to the chat's thread) and, in the Inbox, Accept."""
    elements = []
    if link:
        elements.append(_button("home_open_chat", "Open chat", conversation.id, url=link))
    if tab == "inbox" and any(op.name == "accept" for op in available(conversation)):
        # Same action id and value as the card's Accept: the same core operation.
        elements.append(_button("accept", "Accept", conversation.id, "primary"))
    return elements


def _row(conversation: Conversation, tab: str, link: str | None, now: float, labels: Mapping[str, str]) -> list[dict]:
    c = conversation
    rating = f"{c.rating}/5" if c.rating is not None else "–"
    plural = "s" if c.message_count != 1 else ""
    # Customer text is escaped (no mention can come of it) and clipped: the row stays within Block Kit's limits.
    headline = f"*{clip(c.name or c.customer_id, 200)}* · {_STATE[c.state]}"
    if c.query:
        headline += f"\n{clip(' '.join(c.query.split()), 300)}"
    if not link:
        headline += "\n(the chat's thread is not posted yet)"
    if c.undelivered:
        plural_failed = "s" if c.undelivered != 1 else ""
        headline += (f"\n:warning: {c.undelivered} message{plural_failed} not delivered to the customer: "
                     "see the thread (Retry is there)")
    blocks = [{"type": "section", "block_id": f"home-row-{c.id}", "text": _text(headline), "fields": [
        _text(f"*First Response*\n{format_seconds(c.first_response)}"),
        _text(f"*Duration*\n{format_seconds(c.duration(now))} · {c.message_count} message{plural}"),
        _text(f"*Rating*\n{rating}"),
        _text(f"*Channel*\n{clip(labels.get(c.channel, c.channel), 100)}"),
        _text(f"*Topic*\n{clip(c.topic or 'general', 200)}"),
    ]}]
    elements = row_actions(c, tab, link)
    if elements:
        blocks.append({"type": "actions", "block_id": f"home-row-actions-{c.id}", "elements": elements})
    blocks.append({"type": "divider"})
    return blocks


def _paging(page: Page) -> list[dict]:
    buttons = []
    if page.offset > 0:
        buttons.append(_button("home_page_previous", "Previous", str(max(0, page.offset - page.limit))))
    if page.has_more and page.offset + page.limit <= MAX_OFFSET:
        buttons.append(_button("home_page_next", "Next", str(page.offset + page.limit)))
    blocks = [{"type": "actions", "block_id": "home-paging", "elements": buttons}] if buttons else []
    if page.has_more and page.offset + page.limit > MAX_OFFSET:
        blocks.append({"type": "context", "block_id": "home-paging-end", "elements": [_text(
            f"Pages go back {MAX_OFFSET + page.limit:,} chats; filter by channel or topic to see older ones.")]})
    return blocks


def home_view(state: HomeState, page: Page, figures: Figures, links: dict[str, str], topics: tuple[str, ...],
              now: float, auto_close: AutoClose | None = None, notice: str = "",
              labels: Mapping[str, str] | None = None, room: list[tuple[str, int, int]] | None = None) -> dict:
    """The Home tab of one agent; ``auto_close`` only for admins, ``notice`` answers the agent's last click,
    ``labels`` are the enabled channels' labels (for the filter)."""
    labels = labels or {}
    title = "Inbox" if state.tab == "inbox" else "Assigned to me"
    blocks: list[dict] = [{"type": "header", "text": _plain(f"Support · {title}")}]
    if notice:
        blocks.append({"type": "section", "block_id": "home-notice", "text": _text(notice)})
    blocks.append(_figures(figures))
    if room:
        blocks.append(_room(room))
    if auto_close is not None:
        blocks += _auto_close(auto_close)
    blocks += [{"type": "divider"}, _tabs(state, topics, labels)]
    filters = [f for f in (labels.get(state.channel, state.channel), state.topic) if f]
    where = f" · filtered: {', '.join(filters)}" if filters else ""
    if page.conversations:
        first = page.offset + 1
        last = page.offset + len(page.conversations)
        summary = f"{first}–{last} of {page.total}, most recent activity first{where}"
    else:
        empty = "No chats waiting" if state.tab == "inbox" else "No chats assigned to you"
        summary = f"{empty}{where}." if not page.total else f"Nothing on this page ({page.total} in all){where}."
    blocks.append({"type": "context", "block_id": "home-summary", "elements": [_text(summary)]})
    for conversation in page.conversations:
        blocks += _row(conversation, state.tab, links.get(conversation.id), now, labels)
    blocks += _paging(page)
    return {"type": "home", "blocks": blocks[:100]}


def _room(room: list[tuple[str, int, int]]) -> dict:
    """Who has room for another chat (active chats / capacity)."""
    parts = []
    for who, active, capacity in room[:40]:
        if capacity:
            mark = ":large_green_circle:" if active < capacity else ":red_circle:"
            parts.append(f"{mark} {who} {active}/{capacity}")
        else:
            parts.append(f":large_green_circle: {who} {active}")
    return {"type": "context", "block_id": "home-room",
            "elements": [_text(("*Room (active chats / most allowed):* " + " · ".join(parts))[:2900])]}


def not_on_team_view(admins: list[str]) -> dict:
    """The Home of someone who is not an agent: what this is and whom to ask (admins as shown in Slack)."""
    if admins:
        ask = "Ask " + ", ".join(admins) + " to add you to the support team."
    else:
        ask = "Ask your Slack workspace admin to add you to the support team in chatgate's configuration."
    return {"type": "home", "blocks": [
        {"type": "header", "text": _plain("You are not on the support team")},
        {"type": "section", "block_id": "home-not-agent", "text": _text(
            "This Home shows the support Inbox and assigned chats to support agents only. " + ask)},
    ]}
