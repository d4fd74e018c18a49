"""The App Home's Slack handlers: opening Home, tabs, filters, paging, Accept, the auto-close switch.

Home clicks carry no response_url, so the answer to a click (done, or refused
and why) is a notice at the top of the agent's re-published Home. Someone who
is not an agent gets the not-on-the-team view whatever they send, and nothing
changes.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from slack_bolt.async_app import AsyncAck, AsyncApp

from typing import TYPE_CHECKING

from gateway.message import Refused
from gateway.store import MAX_OFFSET

from .mrkdwn import clip
from .cards import format_seconds
from .home import ANY
from .home_refresh import HomePublisher
from .team import agent_id

if TYPE_CHECKING:
    from gateway.services import Services

    from . import SlackConsole

__all__ = ["register_home", "HOME_ACTIONS"]

log = logging.getLogger(__name__)

HOME_ACTIONS = (
    "home_tab_inbox", "home_tab_assigned", "home_filter_channel", "home_filter_topic",
    "home_page_previous", "home_page_next", "home_open_chat", "home_auto_close", "home_auto_close_after",
)

_NO_CHANGE = object()  # a click that needs no new view (the Open chat link)


async def _from_home(body: dict) -> bool:
    """Clicks in an App Home view (a chat card's Accept is the controls' business)."""
    return body.get("container", {}).get("type") == "view" or body.get("view", {}).get("type") == "home"


def _chosen(action: dict) -> str:
    return (action.get("selected_option") or {}).get("value", "") or action.get("value", "")


def register_home(app: AsyncApp, console: "SlackConsole", services: "Services") -> HomePublisher:
    """Handle ``app_home_opened`` and the Home's actions on ``app``. Register before the card's controls."""
    publisher = HomePublisher(console, services)
    conversations, team = services.conversations, services.team

    async def handle(user: str, action: dict):
        action_id = action.get("action_id", "")
        state = await publisher.state(user)
        if action_id == "home_open_chat":
            return _NO_CHANGE  # Slack opens the link by itself
        if action_id in ("home_tab_inbox", "home_tab_assigned"):
            await publisher.save_state(user, state.switched(tab=action_id.removeprefix("home_tab_")))
            return ""
        if action_id == "home_filter_channel":
            channel = _chosen(action)
            if channel != ANY and channel not in services.channel_labels:
                return f":warning: There is no channel {channel!r}; the filter is unchanged."
            await publisher.save_state(user, state.switched(channel="" if channel == ANY else channel))
            return ""
        if action_id == "home_filter_topic":
            topic = _chosen(action)
            if topic != ANY and topic not in publisher.topics:
                return f":warning: There is no topic {topic!r}; the filter is unchanged."
            await publisher.save_state(user, state.switched(topic="" if topic == ANY else topic))
            return ""
        if action_id in ("home_page_previous", "home_page_next"):
            value = action.get("value", "")
            if not value.isdigit():
                return ":warning: That page does not exist; the list is unchanged."
            if int(value) > MAX_OFFSET:
                return (f":warning: Pages go back at most {MAX_OFFSET:,} chats; filter by channel or topic to "
                        "see older ones. The list is unchanged.")
            await publisher.save_state(user, replace(state, offset=int(value)))
            return ""
        if action_id == "accept":
            conversation_id = action.get("value", "")
            await conversations.accept(conversation_id, agent_id(team, user), via=console.name)
            conversation = await publisher.store.get(conversation_id)
            name = clip(conversation.name or conversation.customer_id, 200) if conversation else "the customer"
            return f":white_check_mark: You accepted the chat with *{name}*; it is in your Assigned tab."
        if action_id in ("home_auto_close", "home_auto_close_after"):
            return await switch_auto_close(user, action_id, action)
        return f":warning: This button is not one chatgate knows ({action_id}); nothing was changed."

    async def switch_auto_close(user: str, action_id: str, action: dict) -> str:
        current = await conversations.auto_close_setting()
        enabled, after = current.enabled, current.after
        if action_id == "home_auto_close":
            if action.get("value") not in ("on", "off"):
                return ":warning: Auto-close is switched with on or off; nothing was changed."
            enabled = action["value"] == "on"
        else:
            try:
                after = float(_chosen(action))
            except ValueError:
                return ":warning: That is not a delay in seconds; nothing was changed."
        affected = await conversations.set_auto_close(enabled, after, agent_id(team, user))
        # The other admins' Homes show the switch too.
        delay = await publisher.mark(sorted(await publisher.viewers() - {user}))
        if delay is not None:
            await conversations.console_task_later(console.name, "refresh_homes", delay=delay)
        if not enabled:
            return f":white_check_mark: Auto-close is off; {affected} resolved chat(s) stay open until someone leaves them."
        return (f":white_check_mark: Auto-close is on: resolved chats close {format_seconds(after)} after "
                f"resolve; the {affected} resolved now close {format_seconds(after)} from now.")

    async def on_home_action(ack: AsyncAck, body: dict, action: dict) -> None:
        await ack()
        user = body.get("user", {}).get("id", "")
        try:
            if not await team.is_agent(agent_id(team, user)):
                await publisher.publish(user)  # the not-on-the-team view; nothing changes
                return
            try:
                notice = await handle(user, action)
            except Refused as refusal:
                notice = f":warning: {console.refusal(refusal, services)}"
            if notice is not _NO_CHANGE:
                await publisher.publish(user, notice)
        except Exception:  # noqa: BLE001 - bolt answers 404 if a handler raises after ack()
            log.exception("App Home action %s of %s failed", action.get("action_id"), user)

    for action_id in (*HOME_ACTIONS, "accept"):
        app.action(action_id, matchers=[_from_home])(on_home_action)

    @app.event("app_home_opened")
    async def on_home_opened(event: dict) -> None:
        if event.get("tab", "home") != "home":
            return  # the Messages tab
        try:
            await publisher.opened(event.get("user", ""))
        except Exception:  # noqa: BLE001
            log.exception("publishing the App Home of %s failed", event.get("user"))

    return publisher

