"""Every refusal of the core as a plain sentence: one catalogue, shared by every console.

A sentence may name an agent (``{who}``) or the chat's topic (``{topic}``): the
console fills them in its own way (a Slack mention, a display name). A console
that needs other words for its surface passes its own templates for those codes
(``render``'s ``templates``); it never copies this catalogue.
"""

from __future__ import annotations

from typing import Callable, Mapping

__all__ = ["REFUSALS", "refusal_text", "render"]

REFUSALS: dict[str, str] = {
    "unknown": "This chat does not exist (any more).",
    "closed": "This chat is closed; nothing can change it now.",
    "not_accepted": "Accept this chat first: its controls work only after accept.",
    "not_assignee": "Only the agent who accepted this chat ({who}) can do that.",
    "already_yours": "You have already accepted this chat.",
    "taken": "Too late: {who} has already accepted this chat.",
    "head_start": "This returning customer's chat is offered to their previous agent ({who}) first; "
                  "it is offered to everyone if they do not take it.",
    "not_new": "This chat is no longer waiting: {who} has accepted it.",
    "already_declined": "You have already declined this chat.",
    "already_resolved": "This chat is already resolved.",
    "resolved": "This chat is resolved, so your message was not sent. It reopens when the customer writes again.",
    "stale": "This chat is no longer resolved.",
    "not_failed": "That message is not failed any more (it was sent, or a retry is under way).",
    "not_admin": "Only a chatgate admin can do that; ask one of the admins.",
    "not_agent": "You are not on the support team in chatgate, so you cannot work on chats. "
                 "Ask an admin to add you.",
    "not_agent_target": "{who} is not on the support team, so cannot take chats.",
    "no_target": "Pick the agent who should take this chat.",
    "bad_delay": "The auto-close delay must be more than zero seconds.",
    "not_active": "That works only while the chat is active.",
    "sound_already_on": "Sound is already on for you in this chat.",
    "sound_already_off": "Sound is already off for you in this chat.",
    "reassign_new": "This chat is waiting in the Inbox; only an accepted chat can be reassigned.",
    "already_assigned": "This chat is already assigned to {who}.",
    "opted_out": "The customer has opted out of messages on this channel (for SMS: they texted STOP), "
                 "so your message was not sent. It can be sent once they opt back in (for SMS: they text START).",
    "empty": "The message is empty, so nothing was sent.",
    "attachment": "The customer's platform cannot take that file, so nothing was sent.",
    "outside_window": "The customer last wrote too long ago: their channel allows free-form replies only within "
                      "a window after their last message (WhatsApp: 24 hours), and no approved template is "
                      "configured for it (twilio.whatsapp_template_sid), so your message was not sent. "
                      "It can be sent once the customer writes again.",
    "no_saved_reply": "There is no saved reply by that name (an admin may have deleted it).",
    "bad_saved_reply": "A saved reply needs a name, a text and only the variables {{customer_name}} and "
                       "{{agent_name}}.",
    "not_in_team": "This chat's topic ({topic}) is for its own team, and you are not on it; "
                   "it is offered to everyone if they do not take it in time.",
    "at_capacity": "{who} already has as many active chats as allowed; resolve or hand one on first.",
    "transfer_self": "This chat is already yours; pick another agent to transfer it to.",
}


def render(code: str, detail: str = "", who: Callable[[str], str] = str,
           templates: Mapping[str, str] | None = None) -> str:
    """The sentence for ``code``; ``detail`` is what the refusal names (an agent id, or the topic for
    ``not_in_team``), shown through ``who``; ``templates`` are a console's own words for some codes."""
    template = (templates or {}).get(code) or REFUSALS.get(code, "Refused ({code}).")
    named = who(detail) if detail else "another agent"
    return template.format(who=named, topic=detail or "this topic", code=code)


def refusal_text(code: str, who: str = "") -> str:
    """The plain sentence for a refusal; ``who`` is the named agent (or topic) as it should read."""
    return render(code, who)
