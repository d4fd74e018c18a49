"""Publishing agents' App Home views, and refreshing them when chats change, within Slack's limits.

- Agents who opened their Home are remembered (a Redis set) and refreshed when a
  chat their Home may show changes (``changed``, called by the workers).
- Per-agent debounce: a change makes each affected agent *due* at
  ``max(now, last publish + slack.home_refresh_interval)``; a burst of changes
  before that moment coalesces into one publish, which renders the latest data.
- Workspace pace: publishes take slots ``1 / slack.home_publishes_per_second``
  apart, shared by every process through Redis (``views.publish`` is Tier 4,
  about 100 a minute).
- One *pump* RQ job at a time (a Redis key guards it) publishes what is due and
  schedules itself again for the next due agent or the next free slot. Within
  one run it waits for at most ``home_publishes_per_second`` slots (under a
  second in all), so a backlog holds a worker briefly and RQ's one-second
  scheduler tick does not cap the pace at one a second.

An agent's own clicks on their Home are answered at once, but their publishes
take a slot too, so the pump then waits.
"""

from __future__ import annotations

import asyncio
import logging
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from typing import TYPE_CHECKING, Sequence

from gateway.events import AgentEvent, EventKind
from gateway.message import State
from gateway.redis_text import as_text
from gateway.store import MAX_OFFSET, Store
from gateway.topics import DEFAULT_TOPIC

from .deliver import card_channel
from .home import PAGE_SIZE, HomeState, home_view, not_on_team_view
from .team import agent_id, mention, slack_user

if TYPE_CHECKING:
    from gateway.services import Services

    from . import SlackConsole

__all__ = ["HomePublisher", "EVERYONE_EVENTS"]

log = logging.getLogger(__name__)

# Events that change what every agent's Home shows (the Inbox, or the team figures).
EVERYONE_EVENTS = frozenset({EventKind.CREATED, EventKind.ACCEPTED, EventKind.LEFT, EventKind.FIRST_RESPONSE,
                             EventKind.RATED, EventKind.OFFERED, EventKind.REASSIGNED,
                             # the Inbox's topic teams, and who has room
                             EventKind.OPENED_TO_ALL, EventKind.TRANSFERRED, EventKind.RESOLVED, EventKind.CLOSED})

# The pump's guard outlives a crashed worker by at most this long.
PUMP_TTL = 60

# Take a publish slot: '0' if taken, else the seconds until the next one is free.
# With ARGV[3] == '1' (an agent's own click) the slot is taken anyway, pushing the pump back.
_SLOT = """
local free = tonumber(redis.call('GET', KEYS[1]) or '0')
local now, spacing = tonumber(ARGV[1]), tonumber(ARGV[2])
if free > now and ARGV[3] ~= '1' then return tostring(free - now) end
if free < now then free = now end
-- Clicks push the pump back by at most a second, however many there are.
redis.call('SET', KEYS[1], tostring(math.min(free + spacing, now + 1)), 'PX', 60000)
return '0'
"""

class HomePublisher:
    """Renders an agent's Home from the store and publishes it; keeps the refresh bookkeeping."""

    def __init__(self, console: "SlackConsole", services: "Services"):
        self.config = console.config
        self.conversations = services.conversations
        self.store: Store = services.store
        self.web: AsyncWebClient = console.web
        self.team = services.team
        self.labels = services.channel_labels
        names = [name for name, _ in self.conversations.topics.rules] + [DEFAULT_TOPIC]
        self.topics = tuple(dict.fromkeys(names))
        self._slot = self.store.redis.register_script(_SLOT)

    def _key(self, name: str) -> str:
        return self.store.key("home", name)

    # -- what each agent looks at -------------------------------------------

    async def state(self, user: str) -> HomeState:
        return HomeState.from_json(await self.store.get_ref("slack-home", user))

    async def save_state(self, user: str, state: HomeState) -> None:
        await self.store.set_ref("slack-home", user, state.to_json())

    # -- publishing ------------------------------------------------------------

    async def opened(self, user: str) -> None:
        """``app_home_opened``: remember an agent as a viewer and show their Home."""
        if await self.team.is_agent(agent_id(self.team, user)):
            await self.store.redis.sadd(self._key("viewers"), user)
        await self.publish(user)

    async def publish(self, user: str, notice: str = "", own_click: bool = True) -> None:
        """Render ``user``'s Home now and publish it (non-agents get the not-on-the-team view)."""
        now = time.time()
        if own_click:
            await self._slot(keys=[self._key("next_slot")], args=[repr(now), repr(self._spacing), "1"])
        await self.store.redis.zrem(self._key("due"), user)
        await self.store.redis.hset(self._key("published"), user, repr(now))
        if not await self.team.is_agent(agent_id(self.team, user)):
            await self.store.redis.srem(self._key("viewers"), user)
            admins = [mention(self.team, admin.id) for admin in self.team.admins()]
            await self.web.views_publish(user_id=user, view=not_on_team_view(admins))
            return
        await self.web.views_publish(user_id=user, view=await self.render(user, notice))

    async def render(self, user: str, notice: str = "") -> dict:
        """The Home view of ``user`` as of now."""
        state = await self.state(user)
        agent = agent_id(self.team, user)
        now = self.conversations.clock()
        # The Inbox shows the topics this agent serves.
        served = await self.conversations.routes.served_topics(agent) if state.tab == "inbox" else None

        async def listing(*args):
            if state.tab == "inbox":
                return await self.store.inbox_for(*args, served=served)
            return await self.store.assigned_for(*args)

        page = await listing(agent, state.channel, state.topic, state.offset, PAGE_SIZE)
        if not page.conversations and state.offset and page.total:
            # The list shrank under this page: show its last page instead.
            last = min((page.total - 1) // PAGE_SIZE * PAGE_SIZE, MAX_OFFSET // PAGE_SIZE * PAGE_SIZE)
            state = HomeState(state.tab, state.channel, state.topic, last)
            await self.save_state(user, state)
            page = await listing(agent, state.channel, state.topic, state.offset, PAGE_SIZE)
        figures = await self.store.figures(now)
        links = await self._links([c.id for c in page.conversations])
        auto_close = await self.conversations.auto_close_setting() if await self.team.is_admin(agent) else None
        return home_view(state, page, figures, links, self.topics, now, auto_close, notice, self.labels,
                         room=await self.room())

    async def room(self) -> list[tuple[str, int, int]]:
        """Each configured agent's (name as shown, active chats, capacity; 0 unlimited)."""
        agents = list(self.team.agents)
        routes = self.conversations.routes
        if not any(routes.capacity(agent) for agent in agents):
            return []  # no capacity configured: nothing to show
        counts = await self.store.active_counts(agents)
        return [(mention(self.team, agent), counts.get(agent, 0), routes.capacity(agent)) for agent in agents]

    async def _links(self, conversation_ids: list[str]) -> dict[str, str]:
        """Permalinks of the chats' cards (their threads): asked of Slack once each, then kept."""
        links = await self.store.get_refs("slack-permalink", conversation_ids)
        missing = [c for c in conversation_ids if c not in links]
        for conversation_id, ts in (await self.store.get_refs("slack-card", missing)).items():
            try:
                channel = await card_channel(self.store, self.config, conversation_id)
                reply = await self.web.chat_getPermalink(channel=channel, message_ts=ts)
            except Exception as exc:  # noqa: BLE001 - a missing link must not cost the agent their Home
                log.warning("no permalink for chat %s: %s", conversation_id, exc)
                continue
            if reply.get("permalink"):
                links[conversation_id] = reply["permalink"]
                await self.store.set_ref("slack-permalink", conversation_id, reply["permalink"])
        return links

    # -- refreshing on change ----------------------------------------------------

    @property
    def _spacing(self) -> float:
        return 1.0 / self.config.home_publishes_per_second

    async def viewers(self) -> set[str]:
        return {as_text(v) for v in await self.store.redis.smembers(self._key("viewers"))}

    async def changed(self, conversation_id: str, events: Sequence[AgentEvent]) -> float | None:
        """A chat changed: mark the viewers whose Home may show it. Seconds until the pump
        should run if the caller must schedule it, else None (a pump is already on its way)."""
        viewers = await self.viewers()
        if not viewers:
            return None
        conversation = await self.store.get(conversation_id)
        if conversation is None or conversation.state is State.NEW or any(e.kind in EVERYONE_EVENTS for e in events):
            targets = viewers
        else:
            involved = {conversation.assignee} | {e.by for e in events} | {e.to for e in events}
            targets = viewers & {slack_user(self.team, agent) for agent in involved if agent}
        return await self.mark(sorted(targets))

    async def mark(self, users: list[str]) -> float | None:
        """Make ``users`` due for a refresh (debounced); see ``changed`` for the result."""
        if not users:
            return None
        now = time.time()
        last = await self.store.redis.hmget(self._key("published"), users)
        due = {user: max(now, float(at or 0) + self.config.home_refresh_interval) for user, at in zip(users, last)}
        # NX: an agent already due keeps their (earlier) time; that publish covers this change too.
        await self.store.redis.zadd(self._key("due"), due, nx=True)
        return await self._claim_pump(now)

    async def _claim_pump(self, now: float) -> float | None:
        if not await self.store.redis.set(self._key("pump"), "1", nx=True, ex=PUMP_TTL):
            return None
        first = await self.store.redis.zrange(self._key("due"), 0, 0, withscores=True)
        return max(0.0, float(first[0][1]) - now) if first else 0.0

    async def pump(self) -> float | None:
        """Publish every due Home the pace allows; seconds until the next run, or None when done."""
        redis = self.store.redis
        published = 0
        while True:
            now = time.time()
            due = await redis.zrangebyscore(self._key("due"), "-inf", now, start=0, num=1)
            if not due:
                following = await redis.zrange(self._key("due"), 0, 0, withscores=True)
                if following:
                    await redis.expire(self._key("pump"), PUMP_TTL)
                    return max(0.0, float(following[0][1]) - now)
                await redis.delete(self._key("pump"))
                # A change marked between the look above and the delete found the pump
                # taken and left its scheduling to us: look once more.
                if await redis.zcard(self._key("due")) and await self._claim_pump(now) is not None:
                    continue
                return None
            wait = float(await self._slot(keys=[self._key("next_slot")], args=[repr(now), repr(self._spacing), "0"]))
            if wait > 0:
                if wait < 1.0 and published < self.config.home_publishes_per_second:
                    # RQ's scheduler ticks once a second: wait for a slot within this
                    # second here (the worker is held less than a second), later ones there.
                    await asyncio.sleep(wait)
                    continue
                await redis.expire(self._key("pump"), PUMP_TTL)
                return wait
            user = as_text(due[0])
            if not await redis.zrem(self._key("due"), user):
                continue  # an agent's own click published it meanwhile
            published += 1
            try:
                await self.publish(user, own_click=False)
            except SlackApiError as exc:
                response = exc.response
                if response is not None and response.status_code == 429:
                    retry_after = float(response.headers.get("Retry-After", 1) or 1)
                    await redis.zadd(self._key("due"), {user: time.time() + retry_after})
                    await redis.expire(self._key("pump"), PUMP_TTL)
                    return retry_after
                # Anything else (user gone, app uninstalled): drop them until they open Home again.
                log.warning("Home of %s not refreshed: %s", user, response.get("error") if response else exc)
                await redis.srem(self._key("viewers"), user)
            except Exception:  # noqa: BLE001 - one agent's failure must not stop the others
                log.exception("Home of %s not refreshed", user)
