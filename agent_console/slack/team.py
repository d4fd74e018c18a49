"""Who is an agent or an admin: Slack user ids from the config, or user group members."""

from __future__ import annotations

import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from gateway.config import SlackConfig

__all__ = ["Team"]

# User group membership is looked up again after this many seconds.
GROUP_CACHE_SECONDS = 300.0


class Team:
    """Answers "may this Slack user work chats / administer chatgate?"."""

    def __init__(self, config: SlackConfig, client: AsyncWebClient):
        self.config = config
        self.client = client
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}

    async def _members(self, group: str) -> frozenset[str]:
        cached = self._groups.get(group)
        if cached and time.monotonic() - cached[0] < GROUP_CACHE_SECONDS:
            return cached[1]
        try:
            reply = await self.client.usergroups_users_list(usergroup=group)
            members = frozenset(reply.get("users", []))
        except SlackApiError:
            # Keep the last known members rather than locking everyone out.
            members = cached[1] if cached else frozenset()
        self._groups[group] = (time.monotonic(), members)
        return members

    async def is_admin(self, user: str) -> bool:
        if user in self.config.admins:
            return True
        return bool(self.config.admin_group) and user in await self._members(self.config.admin_group)

    async def is_agent(self, user: str) -> bool:
        """Admins are agents too; with no agents configured, everyone is."""
        if not self.config.agents and not self.config.agent_group:
            return True
        if user in self.config.agents or await self.is_admin(user):
            return True
        return bool(self.config.agent_group) and user in await self._members(self.config.agent_group)
