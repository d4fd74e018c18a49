"""The core's refusals in the web console's words, naming agents by their display names."""

from __future__ import annotations

from typing import Callable

__all__ = ["refusal_text"]


def refusal_text(code: str, detail: str, name: Callable[[str], str]) -> str:
    """A plain sentence for the agent whose action was refused; ``name`` maps agent ids to names."""
    who = name(detail) if detail else "another agent"
    return {
        "unknown": "This chat does not exist (any more).",
        "closed": "This chat is closed; nothing can change it now.",
        "not_accepted": "Accept this chat first (E): its other controls work only after you accept it.",
        "not_assignee": f"Only the agent who accepted this chat ({who}) can do that.",
        "already_yours": "You have already accepted this chat.",
        "taken": f"Too late: {who} has already accepted this chat.",
        "not_new": f"This chat is no longer waiting in the Inbox: {who} has accepted it.",
        "already_declined": "You have already rejected this chat.",
        "already_resolved": "This chat is already resolved.",
        "resolved": "This chat is resolved, so your message was not sent. It reopens when the customer writes again.",
        "stale": "This chat is no longer resolved.",
        "not_failed": "That message is not failed any more (it was sent, or a retry is under way).",
        "not_admin": "Only a chatgate admin can do that; ask one of the admins.",
        "not_agent": "You are not on the support team in chatgate, so you cannot work on chats. Ask an admin.",
        "not_agent_target": f"{who} is not an agent in chatgate, so the chat cannot be given to them.",
        "bad_delay": "The auto-close delay must be more than zero seconds.",
        "not_active": "That works only while the chat is active.",
        "sound_already_on": "The speaker is already on for you in this chat.",
        "sound_already_off": "The speaker is already off for you in this chat.",
        "reassign_new": "This chat is waiting in the Inbox; only an accepted chat can be reassigned.",
        "already_assigned": f"This chat is already assigned to {who}.",
        "opted_out": "The customer has opted out of messages on this channel (for SMS: they texted STOP), so your "
        "message was not sent. It can be sent once they opt back in (for SMS: they text START).",
        "head_start": f"This returning customer's previous agent ({who}) gets the first chance at this chat; "
        "it reaches the Inbox shortly.",
        # issue 11 routing
        "not_in_team": f"This chat is for the {detail or 'topic'} team, and you are not on it; it is offered to "
        "everyone if they do not take it in time.",
        "at_capacity": f"{who} already has as many active chats as allowed; resolve or hand one on first.",
        "transfer_self": "This chat is already yours; choose another agent.",
        "no_target": "Choose the agent to give this chat to.",
    }.get(code, f"That was refused ({code}).")
