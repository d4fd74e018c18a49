"""Agents and roles: who may work chats and who may administer chatgate.

An agent has a chatgate id. Agents are listed in the config (``[[agents]]``);
a console maps its own identities to these ids (a Slack user id, a web login).
Every console is a ``RoleSource``: it may vouch for members of its own groups
(Slack user groups). ``Conversations`` checks every right here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol, Sequence

__all__ = ["Role", "Agent", "RoleSource", "Team"]


class Role(IntEnum):
    NONE = 0
    AGENT = 1
    ADMIN = 2  # admins are agents too


@dataclass(frozen=True)
class Agent:
    """An agent as configured: id, display name, admin or not, and console identities."""

    id: str
    name: str = ""
    admin: bool = False
    # Console name -> that console's identity of this agent, e.g. {"slack": "U0123ABCD"}.
    identities: dict[str, str] = field(default_factory=dict)
    password_hash: str = ""
    # Active chats this agent may hold at once; None: ``routing.max_active_per_agent``.
    max_active: int | None = None

    @property
    def display_name(self) -> str:
        return self.name or self.id


class RoleSource(Protocol):
    """What the team asks each console: roles and groups of its own (Slack user groups, say).
    ``gateway.ports.Console`` is one; it is named by shape here because the ports import this module."""

    async def role(self, agent_id: str) -> Role:
        """The role this source grants ``agent_id``; ``Role.NONE`` if none."""

    async def group_members(self, group: str) -> frozenset[str]:
        """The agent ids of the members of ``group`` (the console maps its own identities); empty
        when it knows no such group."""


class Team:
    """The one place that answers "may this agent work chats / administer?"."""

    def __init__(self, agents: Sequence[Agent] = (), sources: Sequence[RoleSource] = (), open_team: bool = False):
        self.agents = {agent.id: agent for agent in agents}
        self.sources = tuple(sources)
        # With nobody configured anywhere, whoever a console lets in is an agent.
        self.open = open_team

    def agent(self, agent_id: str) -> Agent | None:
        return self.agents.get(agent_id)

    def by_identity(self, console: str, identity: str) -> Agent | None:
        """The configured agent linked to ``identity`` in ``console``, if any."""
        for agent in self.agents.values():
            if agent.identities.get(console) == identity:
                return agent
        return None

    def name(self, agent_id: str) -> str:
        agent = self.agents.get(agent_id)
        return agent.display_name if agent else agent_id

    async def role(self, agent_id: str) -> Role:
        if not agent_id:
            return Role.NONE
        agent = self.agents.get(agent_id)
        best = Role.NONE
        if agent is not None:
            best = Role.ADMIN if agent.admin else Role.AGENT
        for source in self.sources:
            if best is Role.ADMIN:
                break
            best = max(best, await source.role(agent_id))
        if best is Role.NONE and self.open:
            return Role.AGENT
        return best

    async def is_agent(self, agent_id: str) -> bool:
        return await self.role(agent_id) >= Role.AGENT

    async def is_admin(self, agent_id: str) -> bool:
        return await self.role(agent_id) >= Role.ADMIN

    def admins(self) -> list[Agent]:
        return [agent for agent in self.agents.values() if agent.admin]
