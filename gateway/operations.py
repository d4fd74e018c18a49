"""The agents' operations, declared once: who may run each, what it may be refused for, what it tells.

Each entry ties a state-machine operation (``machine.lua``) to the role it
needs, the refusal codes it can answer and the event the consoles receive.
``Conversations`` runs them; each console renders the controls and the
refusals in its own words. The state table is in ``docs/conversations.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .events import EventKind
from .team import Role

__all__ = ["Operation", "OPERATIONS", "REFUSALS", "refusal_text"]

# Refusals any operation on one chat can meet.
_CHAT = ("unknown", "closed")
# Those of the controls only the assignee may use.
_ASSIGNEE = (*_CHAT, "not_accepted", "not_assignee")


@dataclass(frozen=True)
class Operation:
    name: str  # the state machine's operation and the ``Conversations`` method
    role: Role  # the least role the acting agent needs
    event: EventKind  # what the consoles are told when it succeeds
    refusals: tuple[str, ...]  # the codes it can be refused with, besides the role's
    label: str  # what the agents call it (the seed's letter and name where it has one)


OPERATIONS = {op.name: op for op in (
    Operation("accept", Role.AGENT, EventKind.ACCEPTED,
              (*_CHAT, "already_yours", "taken", "head_start", "not_in_team", "at_capacity"), "E Accept"),
    Operation("reject", Role.AGENT, EventKind.DECLINED, (*_CHAT, "not_new", "already_declined"), "F Reject"),
    Operation("resolve", Role.AGENT, EventKind.RESOLVED, (*_ASSIGNEE, "already_resolved"), "D Mark as resolved"),
    Operation("leave", Role.AGENT, EventKind.LEFT, _ASSIGNEE, "C Leave"),
    Operation("sound", Role.AGENT, EventKind.SOUND,
              (*_ASSIGNEE, "not_active", "sound_already_on", "sound_already_off"), "B Speaker"),
    Operation("reply", Role.AGENT, EventKind.REPLIED,
              (*_ASSIGNEE, "resolved", "opted_out", "empty", "outside_window", "attachment"), "Reply"),
    Operation("note", Role.AGENT, EventKind.NOTED, (*_ASSIGNEE, "empty"), "Private note"),
    Operation("redeliver", Role.AGENT, EventKind.REDELIVERING, (*_ASSIGNEE, "not_failed", "opted_out"), "Retry"),
    Operation("reassign", Role.ADMIN, EventKind.REASSIGNED,
              (*_CHAT, "reassign_new", "already_assigned", "not_agent_target", "no_target", "at_capacity"),
              "Reassign"),
    # --- issue 11 routing ---
    Operation("transfer", Role.AGENT, EventKind.TRANSFERRED,
              (*_ASSIGNEE, "not_active", "transfer_self", "not_agent_target", "no_target", "at_capacity"),
              "Transfer"),
    # --- end issue 11 routing ---
)}

# Plain sentences for every refusal code; ``{who}`` is the agent the detail names.
REFUSALS = {
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
    # --- desk (issue 11): saved replies ---
    "no_saved_reply": "There is no saved reply by that name (an admin may have deleted it).",
    "bad_saved_reply": "A saved reply needs a name, a text and only the variables {{customer_name}} and "
                       "{{agent_name}}.",
    # --- end desk ---
    # --- issue 11 routing ---
    "not_in_team": "This chat's topic ({topic}) is for its own team, and you are not on it; "
                   "it is offered to everyone if they do not take it in time.",
    "at_capacity": "{who} already has as many active chats as allowed; resolve or hand one on first.",
    "transfer_self": "This chat is already yours; pick another agent to transfer it to.",
    # --- end issue 11 routing ---
}


def refusal_text(code: str, who: str = "") -> str:
    """A plain sentence for a refusal; ``who`` is the named agent as the console shows them."""
    return REFUSALS.get(code, "Refused ({code}).").format(who=who or "another agent", code=code,
                                                          topic=who or "this topic")
