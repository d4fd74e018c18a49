"""Block Kit for the chat card (profile, state, metrics and the buttons the state allows), the
transfer modal, and the direct message to a returning customer's previous agent.

The card is shared by everyone in the channel, so its controls are those of the
chat's state (``gateway.operations.available`` with no agent); the machine refuses
whoever clicks one that is not theirs. ``CARD`` says how Slack shows each control;
any other is a plain button with its declared label.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping

from gateway.message import Conversation, State
from gateway.operations import Operation, available

from .mrkdwn import clip

__all__ = ["card", "card_text", "format_seconds", "card_controls", "head_start_dm", "SOUND_ACTIONS",
           "transfer_modal", "QUERY_ON_CARD", "query_fits", "customer_name", "CARD", "ELSEWHERE", "CardView",
           "plain_button", "shown_on_card"]

# The card shows this much of the first message (escaped); a longer one is posted whole in the thread.
QUERY_ON_CARD = 1850
CONTINUED = "\n_(continued in the thread)_"

_STATE_LABEL = {
    State.NEW: ":new: New, waiting in the Inbox",
    State.ACTIVE: ":speech_balloon: Active",
    State.RESOLVED: ":white_check_mark: Resolved, waiting for the rating",
    State.CLOSED: ":lock: Closed",
}



def _plain(text: str, limit: int) -> str:
    """plain_text (Slack shows it literally) within ``limit`` characters."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _slack_mention(agent: str) -> str:
    return f"<@{agent}>"


def format_seconds(seconds: float | None) -> str:
    """``1h 05m``, ``4m 10s``, ``12s``; an en dash for none."""
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


# B's two buttons: the action turns sound on or off; the label shows the current setting.
SOUND_ACTIONS = {"sound_on": True, "sound_off": False}


_BUTTONS = {
    "open_chat": ("Go back to chat", None),
    "sound_off": (":bell: Sound on", None),
    "sound_on": (":no_bell: Sound off", None),
    "accept": ("Accept", "primary"),
    "reject": ("Reject", "danger"),
    "resolve": ("Resolve", "primary"),
    "leave": ("Leave", None),
    "saved_reply": (":speech_balloon: Saved reply", None),  # opens a modal
}


def _button(action: str, conversation_id: str, url: str = "", label: str = "", style: str | None = None) -> dict:
    label, style = _BUTTONS.get(action, (label, style))
    button = {
        "type": "button",
        "action_id": action,
        "text": {"type": "plain_text", "text": _plain(label, 75), "emoji": True},
        "value": conversation_id,
    }
    if style:
        button["style"] = style
    if url:
        button["url"] = url
    return button


def plain_button(op: Operation, conversation_id: str) -> dict:
    """A control Slack has no way of its own to show: a button with its declared label, its name the action id."""
    return _button(op.name, conversation_id, label=op.label or op.name)


@dataclass(frozen=True)
class CardView:
    """What the card's controls show besides the chat: the assignee's sound, the thread's link."""

    sound: bool = True
    permalink: str = ""


Shows = Callable[[Conversation, CardView], list[dict]]


def _shown_as(action: str) -> Shows:
    return lambda c, view: [_button(action, c.id)]


def _users(action: str, placeholder: str) -> Shows:
    def select(c: Conversation, view: CardView) -> list[dict]:
        return [{"type": "users_select", "action_id": action,
                 "placeholder": {"type": "plain_text", "text": placeholder}}]

    return select


def _go_back(c: Conversation, view: CardView) -> list[dict]:
    # A: a link to the thread, where replies are written; without the thread's link there is nothing to offer.
    return [_button("open_chat", c.id, view.permalink)] if view.permalink else []


# Where the card's other controls go, each a ``plain_button``.
OTHERS = "*"

# How the card shows each control the chat's state offers, in the card's order: (the control, its
# elements). Reply has two ways in: A's link to the thread where replies are written, and the saved replies.
CARD: tuple[tuple[str, Shows | None], ...] = (
    ("reply", _go_back),
    # B: of its two buttons (``SOUND_ACTIONS``) the one that turns the assignee's sound the other way.
    ("sound", lambda c, view: [_button("sound_off" if view.sound else "sound_on", c.id)]),
    ("leave", _shown_as("leave")),
    ("resolve", _shown_as("resolve")),
    ("accept", _shown_as("accept")),
    ("reject", _shown_as("reject")),
    (OTHERS, None),
    ("reply", _shown_as("saved_reply")),  # opens a modal of the saved replies (the server checks who)
    # The assignee hands the chat on (a note is asked for in a modal).
    ("transfer", _users("transfer", "Transfer to…")),
    # Shared card, so everyone sees it; the server accepts it from admins only.
    ("reassign", _users("reassign", "Reassign (admins)")),
)

# Controls Slack shows somewhere other than the card's buttons, and where.
ELSEWHERE = {
    "reply": "a message in the card's thread",
    "note": "a message in the card's thread starting with note:",
    "redeliver": "the Retry button of a failure note in the thread",
}

_ON_CARD = {name for name, _ in CARD if name != OTHERS}


def shown_on_card(op: Operation) -> bool:
    """Whether Slack shows ``op``: a way of its own, or a plain button (a control with nothing to ask)."""
    return op.name in _ON_CARD or op.name in ELSEWHERE or op.asks_nothing


def card_controls(conversation: Conversation, view: CardView = CardView()) -> list[dict]:
    """The card's control elements: what ``available`` says the chat's state offers, each as ``CARD`` shows it."""
    offered = available(conversation)
    names = {op.name for op in offered}
    elements: list[dict] = []
    for name, shows in CARD:
        if name == OTHERS:
            elements += [plain_button(op, conversation.id) for op in offered
                         if op.name not in _ON_CARD and op.name not in ELSEWHERE and op.asks_nothing]
        elif name in names and shows is not None:
            elements += shows(conversation, view)
    return elements


def customer_name(conversation: Conversation, limit: int = 150) -> str:
    """The customer's name (or address) as Slack mrkdwn: escaped, so ``<!channel>`` in a name pings no one."""
    return clip(conversation.name or conversation.customer_id, limit)


def query_fits(conversation: Conversation) -> bool:
    """Whether the card shows the whole first message (else the thread gets it whole)."""
    return len(clip(conversation.query, QUERY_ON_CARD + 1)) <= QUERY_ON_CARD


def _query(conversation: Conversation) -> str:
    if not conversation.query:
        return "–"
    if query_fits(conversation):
        return clip(conversation.query, QUERY_ON_CARD)
    return clip(conversation.query, QUERY_ON_CARD) + CONTINUED


def card_text(conversation: Conversation, labels: Mapping[str, str]) -> str:
    """The notification text of the card (shown where blocks are not)."""
    label = labels.get(conversation.channel, conversation.channel)
    return f"{customer_name(conversation)} ({clip(label, 50)}): {clip(conversation.query, 150)}"


def card(conversation: Conversation, now: float | None = None, sound: bool = True, permalink: str = "",
         reassigned: tuple[str, str] | None = None, labels: Mapping[str, str] | None = None,
         who: Callable[[str], str] = _slack_mention, window: str = "") -> list[dict]:
    """The blocks of a conversation's card.

    ``sound`` is the assignee's setting for this chat, ``permalink`` the thread's
    link (for A), ``reassigned`` the (admin, agent) of the last reassignment,
    ``labels`` the channels' labels and ``who`` how an agent id is shown; ``window`` a line on the
    platform's reply window (WhatsApp's 24 hours). Every customer-supplied string is escaped and every
    text stays within Block Kit's limits, whatever its length.
    """
    labels = labels or {}
    now = time.time() if now is None else now
    c = conversation
    state = _STATE_LABEL[c.state]
    if c.assignee:
        state += f" · assigned to {who(c.assignee)}"
    elif c.previous_agent:
        state += f" · previously {who(c.previous_agent)}"
    rating = f"{c.rating}/5" if c.rating is not None else "–"
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": _plain(c.name or c.customer_id, 150)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*State:* {state}"[:3000]}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Query*\n{_query(c)}"},
                {"type": "mrkdwn", "text": f"*Phone*\n{clip(c.phone, 200) or '–'}"},
                {"type": "mrkdwn", "text": f"*Location*\n{clip(c.location, 500) or '–'}"},
                {"type": "mrkdwn", "text": f"*Channel*\n{clip(labels.get(c.channel, c.channel), 100)}"},
                {"type": "mrkdwn", "text": f"*Topic*\n{clip(c.topic, 200)}"},
                {"type": "mrkdwn", "text": f"*Rating*\n{rating}"},
            ],
        },
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"First response: {format_seconds(c.first_response)} · "
                    f"Duration: {format_seconds(c.duration(now))}, {c.message_count} messages · "
                    f"Chat #{c.id}",
                }
            ],
        },
    ]
    if window:
        blocks.insert(2, {"type": "context", "elements": [{"type": "mrkdwn", "text": window[:3000]}]})
    notes = []
    if c.declined_by:
        declined = [who(agent) for agent in c.declined_by[:20]]
        more = len(c.declined_by) - len(declined)
        notes.append("Declined by " + ", ".join(declined) + (f" and {more} more" if more > 0 else ""))
    if reassigned and c.state in (State.ACTIVE, State.RESOLVED):
        notes.append(f"Reassigned by {who(reassigned[0])} to {who(reassigned[1])}")
    if c.state is State.ACTIVE and c.assignee:
        notes.append(f"Sound {'on' if sound else 'off'} for {who(c.assignee)}")
    notes += _routing_notes(c, who)
    if notes:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(notes)[:3000]}]})
    buttons = card_controls(c, CardView(sound, permalink))
    if buttons:
        blocks.append({"type": "actions", "block_id": f"chat-{c.id}", "elements": buttons})
    return blocks


def _when(at: float) -> str:
    return time.strftime("%H:%M", time.gmtime(at))


def _routing_notes(c: Conversation, who: Callable[[str], str]) -> list[str]:
    """Escalations, the topic team, and who held the chat when (UTC)."""
    notes = []
    if c.state is State.NEW and c.team_only:
        notes.append(f"Offered to the {c.topic} team first")
    if c.escalations:
        notes.append(f":rotating_light: Escalated {c.escalations}× (waiting without Accept)")
    if len(c.holders) > 1 or (c.holders and c.holders[-1].get("to")):
        held = [f"{who(h['agent'])} {_when(h['from'])}–{_when(h['to']) if h.get('to') else 'now'}"
                for h in c.holders[-6:]]
        notes.append("Held by " + ", ".join(held) + " UTC")
    return notes


def transfer_modal(conversation_id: str, target: str, target_name: str) -> dict:
    """The modal asking the assignee for a note to go with the transfer (``views.open``)."""
    return {
        "type": "modal",
        "callback_id": "transfer_note",
        "private_metadata": f"{conversation_id}:{target}",
        "title": {"type": "plain_text", "text": "Transfer chat"},
        "submit": {"type": "plain_text", "text": "Transfer"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn",
                                         "text": f"Hand chat #{conversation_id} to {target_name}."}},
            {"type": "input", "block_id": "note", "optional": True,
             "label": {"type": "plain_text", "text": "Note for them"},
             "element": {"type": "plain_text_input", "action_id": "text", "multiline": True,
                         "max_length": 2000}},
        ],
    }


def head_start_dm(conversation: Conversation, labels: Mapping[str, str], status: str = "") -> list[dict]:
    """The direct message to a returning customer's previous agent: profile, query, E and F.

    With a ``status`` (accepted, declined, offered to everyone) the buttons are gone.
    """
    c = conversation
    blocks: list[dict] = [
        {"type": "section", "text": {"type": "mrkdwn", "text":
            f":wave: Your previous customer *{customer_name(c)}* is back "
            f"({clip(labels.get(c.channel, c.channel), 100)}):\n>{clip(c.query, 1000) or '–'}"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text":
            f"Phone: {clip(c.phone, 200) or '–'} · Location: {clip(c.location, 500) or '–'} · "
            f"Topic: {clip(c.topic, 200)} · Chat #{c.id}"}]},
    ]
    if status:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": status}]})
    else:
        blocks.append({"type": "actions", "block_id": f"dm-{c.id}",
                       "elements": [_button("accept", c.id), _button("reject", c.id)]})
    return blocks
