"""Block Kit for the chat card: profile, state, metrics and the buttons the state allows."""

from __future__ import annotations

import time

from gateway.message import Conversation, State

__all__ = ["card", "card_text", "format_seconds", "controls"]

_STATE_LABEL = {
    State.NEW: ":new: New, waiting in the Inbox",
    State.ACTIVE: ":speech_balloon: Active",
    State.RESOLVED: ":white_check_mark: Resolved, waiting for the rating",
    State.CLOSED: ":lock: Closed",
}

_CHANNEL_LABEL = {"telegram": "Telegram", "sms": "SMS", "whatsapp": "WhatsApp", "webchat": "Web chat"}


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


def controls(conversation: Conversation) -> list[str]:
    """The action ids a state offers (the server enforces the same rules)."""
    return {
        State.NEW: ["accept", "reject"],
        State.ACTIVE: ["resolve", "leave"],
        State.RESOLVED: ["leave"],
        State.CLOSED: [],
    }[conversation.state]


_BUTTONS = {
    "accept": ("Accept", "primary"),
    "reject": ("Reject", "danger"),
    "resolve": ("Resolve", "primary"),
    "leave": ("Leave", None),
}


def card_text(conversation: Conversation) -> str:
    """The notification text of the card (shown where blocks are not)."""
    return f"{conversation.name or conversation.customer_id} ({_CHANNEL_LABEL.get(conversation.channel, conversation.channel)}): {conversation.query[:150]}"


def card(conversation: Conversation, now: float | None = None) -> list[dict]:
    """The blocks of a conversation's card."""
    now = time.time() if now is None else now
    c = conversation
    state = _STATE_LABEL[c.state]
    if c.assignee:
        state += f" · assigned to <@{c.assignee}>"
    elif c.previous_agent:
        state += f" · previously <@{c.previous_agent}>"
    rating = f"{c.rating}/5" if c.rating is not None else "–"
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{c.name or c.customer_id}"[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*State:* {state}"}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Query*\n{c.query[:1000] or '–'}"},
                {"type": "mrkdwn", "text": f"*Phone*\n{c.phone or '–'}"},
                {"type": "mrkdwn", "text": f"*Location*\n{c.location or '–'}"},
                {"type": "mrkdwn", "text": f"*Channel*\n{_CHANNEL_LABEL.get(c.channel, c.channel)}"},
                {"type": "mrkdwn", "text": f"*Topic*\n{c.topic}"},
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
    if c.declined_by:
        declined = ", ".join(f"<@{agent}>" for agent in c.declined_by)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"Declined by {declined}"}]})
    buttons = []
    for action in controls(c):
        label, style = _BUTTONS[action]
        button = {
            "type": "button",
            "action_id": action,
            "text": {"type": "plain_text", "text": label},
            "value": c.id,
        }
        if style:
            button["style"] = style
        buttons.append(button)
    if buttons:
        blocks.append({"type": "actions", "block_id": f"chat-{c.id}", "elements": buttons})
    return blocks
