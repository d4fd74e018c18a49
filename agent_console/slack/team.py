"""Slack identities of the core's agents, and Slack user groups as a source of roles.

A Slack user is the agent whose ``[[agents]]`` entry links them (``slack = "U…"``);
otherwise their agent id is their Slack user id (members of ``slack.agent_group``,
or anyone when nobody is configured). Rights are checked by the core's ``Team``.
"""

from __future__ import annotations

import re
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from gateway.team import Role, Team

from .config import SlackConfig

__all__ = ["SlackGroups", "agent_id", "slack_user", "mention"]

# User group membership is looked up again after this many seconds.
GROUP_CACHE_SECONDS = 300.0

_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")


def agent_id(team: Team, user: str) -> str:
    """The chatgate agent id of a Slack user."""
    agent = team.by_identity("slack", user)
    return agent.id if agent is not None else user


def slack_user(team: Team, agent: str) -> str:
    """The Slack user of an agent id, or "" for an agent without one (a web-only agent)."""
    configured = team.agent(agent)
    if configured is not None:
        return configured.identities.get("slack", "")
    return agent if _SLACK_USER.match(agent) else ""


def mention(team: Team, agent: str) -> str:
    """How a message names an agent: a Slack mention, or their name in bold."""
    user = slack_user(team, agent)
    return f"<@{user}>" if user else f"*{team.name(agent)}*"


class SlackGroups:
    """Roles from Slack user groups (``slack.agent_group``, ``slack.admin_group``), cached."""

    def __init__(self, config: SlackConfig, client: AsyncWebClient):
        self.config = config
        self.client = client
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}

    @property
    def declares_members(self) -> bool:
        return bool(self.config.agent_group or self.config.admin_group)

    async def _members(self, group: str) -> frozenset[str]:
        cached = self._groups.get(group)
        if cached and time.monotonic() - cached[0] < GROUP_CACHE_SECONDS:
            return cached[1]
        try:
            reply = await self.client.usergroups_users_list(usergroup=group)
            members: frozenset[str] = frozenset(reply.get("users", []))
        except SlackApiError:
            # Keep the last known members rather than locking everyone out.
            members = cached[1] if cached else frozenset()
        self._groups[group] = (time.monotonic(), members)
        return members

    async def role(self, agent: str) -> Role:
        """The role a group grants ``agent`` (an agent id that is a Slack user id)."""
        if not _SLACK_USER.match(agent):
            return Role.NONE
        if self.config.admin_group and agent in await self._members(self.config.admin_group):
            return Role.ADMIN
        if self.config.agent_group and agent in await self._members(self.config.agent_group):
            return Role.AGENT
        return Role.NONE
