"""What the Slack console remembers in its refs (``Store.set_ref``), for retention to forget with a chat."""

from __future__ import annotations

from gateway.refs import CONVERSATION, FILE, SEQ, Forget, Refs, by_conversation, either, ref

from .config import SlackConfig

__all__ = ["slack_refs"]

# By conversation id: the card's ts, its channel when not ``slack.channel``, its permalink, who
# reassigned it to whom, that the thread caught up, the head start DM ("<channel>:<ts>"), and the
# last customer message relayed to the thread.
BY_CONVERSATION = ("slack-card", "slack-channel", "slack-permalink", "slack-reassigned", "slack-caught-up",
                   "slack-dm", "slack-relayed")


def slack_refs(config: SlackConfig) -> Refs:
    """Per message, in each thread it went to (the card's, the head start DM's, or ``console`` for one
    written in another console): the parts of a long text posted (``slack-posted``) and each file
    uploaded (``slack-file``). The thread -> chat map (``slack-thread``, ``<channel>:<ts>``) names the
    card's channel, else one of the configured ones. Each agent's App Home state (``slack-home``)
    is about no one chat."""
    thread = either(ref("slack-card"), ref("slack-dm", after=":"), "console")
    return Refs(forget=(
        *by_conversation(*BY_CONVERSATION),
        Forget("slack-posted", (CONVERSATION, SEQ, thread)),
        Forget("slack-file", (CONVERSATION, SEQ, thread, FILE)),
        Forget("slack-thread", (either(ref("slack-channel"), *sorted(config.card_channels())), ref("slack-card")),
               only_if=(CONVERSATION,)),
    ), kept=("slack-home",))
