"""Routing by topic and capacity: who is offered a chat, who may take one more.

A topic (``[[topics]]``) may name its team: agent ids (``agents``) and/or a
group (``group``, a Slack user group whose members a console vouches for). While
that team has someone, only they may accept its chats (until the chat is
offered to everyone after ``routing.topic_fallback_after``); their Inbox shows
only the topics they serve. Capacity is ``routing.max_active_per_agent``, or an
agent's own ``max_active``. The state machine enforces both, atomically; this
only works out the arguments it needs.
"""

from __future__ import annotations

from .config import RoutingConfig, TopicRule
from .team import Team

__all__ = ["Routing"]


class Routing:
    def __init__(self, topics: tuple[TopicRule, ...], team: Team, config: RoutingConfig = RoutingConfig()):
        self.rules = {rule.name: rule for rule in topics}
        self.team = team
        self.config = config

    def rule(self, topic: str) -> TopicRule | None:
        return self.rules.get(topic)

    def routed(self, topic: str) -> bool:
        """Whether the topic names a team at all."""
        rule = self.rules.get(topic)
        return bool(rule and (rule.agents or rule.group))

    async def _group(self, group: str) -> frozenset[str]:
        members: set[str] = set()
        for source in self.team.sources:
            members |= await source.group_members(group)
        return frozenset(members)

    async def members(self, topic: str) -> frozenset[str]:
        """The agent ids of the topic's team (empty: everyone serves it)."""
        rule = self.rules.get(topic)
        if rule is None:
            return frozenset()
        members = {agent for agent in rule.agents if await self.team.is_agent(agent)}
        if rule.group:
            members |= await self._group(rule.group)
        return frozenset(members)

    async def team_has_someone(self, topic: str) -> bool:
        return self.routed(topic) and bool(await self.members(topic))

    async def serves(self, agent: str, topic: str) -> bool:
        """Whether ``agent`` is on the topic's team (everyone serves a topic without one)."""
        if not self.routed(topic):
            return True
        return agent in await self.members(topic)

    async def served_topics(self, agent: str) -> tuple[str, ...] | None:
        """The routed topics ``agent`` serves; None when no topic has a team (the Inbox shows everything)."""
        routed = [name for name in self.rules if self.routed(name)]
        if not routed:
            return None
        return tuple([name for name in routed if agent in await self.members(name)])

    def capacity(self, agent: str) -> int:
        """Active chats ``agent`` may hold at once; 0 = unlimited."""
        configured = self.team.agent(agent)
        if configured is not None and configured.max_active is not None:
            return configured.max_active
        return self.config.max_active_per_agent
