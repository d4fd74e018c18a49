"""The Inbox's indexes (the machine's Inbox leaves, declined lists, queue) against a naive reading of the whole
Inbox, after random operations; the one-time rebuild for data that predates them; the benchmark runs."""

from __future__ import annotations

import random

import pytest
import redis as redis_sync
import redis.asyncio as aioredis

from bench import inbox_page
from bench.inbox_page import ingest_args
from gateway.store import Store

CHANNELS = ("telegram", "sms", "whatsapp")
TOPICS = ("", "billing", "delivery", "tech")
ROUTED = ("billing", "tech")
AGENTS = ("ann", "bob", "cat")


class World:
    """Drives the state machine directly with a coarse clock (many equal scores) and reads Redis naively."""

    def __init__(self, store: Store, plain: redis_sync.Redis, seed: int):
        self.store, self.plain, self.rng = store, plain, random.Random(seed)
        self.now = 1_767_225_600.0
        self.customers = 0
        self.welcome = True  # new chats get their queue position (which completes a pending rebuild)

    async def run(self, op: str, **args: str) -> dict:
        self.now += self.rng.choice((0, 0, 1, 2.5))
        return await self.store.run(op, self.now, "", args)

    def ids(self, key: str) -> list[str]:
        return [i.decode() for i in self.plain.zrevrange(self.store.key(key), 0, -1)]

    def conv(self, conversation_id: str) -> dict[str, str]:
        """One chat's hash, decoded."""
        raw = self.plain.hgetall(self.store.key("conv", conversation_id))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def all_ids(self) -> list[str]:
        return [str(i) for i in range(1, int(self.plain.get(self.store.key("next_id")) or 0) + 1)]

    def snapshot(self) -> dict[str, tuple[dict[str, str], set[str]]]:
        """Every chat, with who declined it, in one round trip."""
        ids = self.all_ids()
        pipe = self.plain.pipeline(transaction=False)
        for conversation_id in ids:
            pipe.hgetall(self.store.key("conv", conversation_id))
            pipe.smembers(self.store.key("declined", conversation_id))
        replies = pipe.execute()
        return {conversation_id: ({k.decode(): v.decode() for k, v in raw.items()}, {a.decode() for a in declined})
                for conversation_id, raw, declined in zip(ids, replies[::2], replies[1::2])}

    async def step(self) -> None:
        rng = self.rng
        choice = rng.choice(("create", "create", "create", "write", "reject", "reject", "accept", "leave",
                             "open", "close"))
        states = [(i, conv["state"]) for i, (conv, _) in self.snapshot().items()]
        waiting, active = [i for i, s in states if s == "new"], [i for i, s in states if s == "active"]
        if choice == "create" or (choice == "write" and not self.customers):
            self.customers += 1
            topic = rng.choice(TOPICS)
            reply = await self.run("ingest", **ingest_args(rng.choice(CHANNELS), f"c{self.customers}", topic,
                                                          topic in ROUTED and rng.random() < 0.7))
            if self.welcome and rng.random() < 0.5:  # the queue position, as the welcome tells it
                told = await self.run("welcome", conversation=reply["id"], away="", template="{position}")
                assert told["position"] == self.queue().index(reply["id"]) + 1
        elif choice == "write":  # a customer writes again: a waiting chat moves up, a closed one starts anew
            conv = self.conv(rng.choice(self.all_ids()))
            await self.run("ingest", **ingest_args(conv["channel"], conv["customer_id"], conv["topic"], False))
        elif choice == "reject" and waiting:
            await self.run("reject", conversation=rng.choice(waiting), agent=rng.choice(AGENTS))
        elif choice == "accept" and waiting:
            await self.run("accept", conversation=rng.choice(waiting), agent=rng.choice(AGENTS), serves="1")
        elif choice == "leave" and active:
            chosen = rng.choice(active)
            await self.run("leave", conversation=chosen, agent=self.conv(chosen)["assignee"])
        elif choice == "open" and waiting:
            await self.run("open_to_all", conversation=rng.choice(waiting))
        elif choice == "close" and active:
            chosen = rng.choice(active)
            agent = self.conv(chosen)["assignee"]
            await self.run("resolve", conversation=chosen, agent=agent, question="How did we do?")
            await self.run("leave", conversation=chosen, agent=agent)

    # -- the naive reading: the whole Inbox, chat by chat (what the old _FILTER did) --

    def inbox_for(self, agent: str, channel: str, topic: str, served, chats) -> list[str]:
        found = []
        for conversation_id in self.ids("inbox"):
            conv, decliners = chats[conversation_id]
            declined = agent in decliners
            hidden_by_team = served is not None and conv.get("team_only") == "1" and conv["topic"] not in served
            if ((not channel or conv["channel"] == channel) and (not topic or conv["topic"] == topic)
                    and not declined and not hidden_by_team):
                found.append(conversation_id)
        return found

    def queue(self) -> list[str]:
        chats = self.snapshot()
        return sorted(self.ids("inbox"), key=lambda i: (float(chats[i][0]["created_at"]), int(i)))

    def check_indexes(self) -> None:
        """Each waiting chat in exactly its leaf, with its Inbox score; the declined lists and the queue."""
        inbox = dict(self.plain.zrange(self.store.key("inbox"), 0, -1, withscores=True))
        chats = self.snapshot()
        in_leaves = {}
        for leaf in self.plain.hkeys(self.store.key("inbox", "leaves")):
            for member, score in self.plain.zrange(leaf, 0, -1, withscores=True):
                conv = chats[member.decode()][0]
                kind = "team" if conv.get("team_only") == "1" else "open"
                assert leaf.decode() == self.store.key("inbox", kind, conv["channel"], conv["topic"])
                assert member not in in_leaves
                in_leaves[member] = score
        assert in_leaves == inbox
        queue = self.plain.zrange(self.store.key("inbox", "queue"), 0, -1, withscores=True)
        assert dict(queue) == {m: float(chats[m.decode()][0]["created_at"]) for m in inbox}
        for agent in AGENTS:
            expected = {m for m in inbox if agent in chats[m.decode()][1]}
            assert self.plain.smembers(self.store.key("inbox", "declined", agent)) == expected

    async def check_pages(self, rounds: int) -> None:
        rng, chats = self.rng, self.snapshot()
        for _ in range(rounds):
            agent = rng.choice(("", *AGENTS))
            channel, topic = rng.choice(("", "", *CHANNELS)), rng.choice(("", "", *TOPICS[1:]))
            served = rng.choice((None, (), ("billing",), ROUTED))
            offset, limit = rng.choice((0, 0, 1, 3, 7)), rng.choice((1, 3, 20))
            expected = self.inbox_for(agent, channel, topic, served, chats)
            page = await self.store.inbox_for(agent, channel, topic, offset, limit, served=served)
            what = (agent, channel, topic, served, offset, limit)
            assert [c.id for c in page.conversations] == expected[offset:offset + limit], what
            assert page.total == len(expected), what
            assert page.has_more == (offset + limit < len(expected)), what
            if agent:  # Assigned, filtered the same way
                assigned = [i for i in self.ids(f"assigned:{agent}")
                            if (not channel or chats[i][0]["channel"] == channel)
                            and (not topic or chats[i][0]["topic"] == topic)]
                page = await self.store.assigned_for(agent, channel, topic, offset, limit)
                assert [c.id for c in page.conversations] == assigned[offset:offset + limit], what
                assert page.total == len(assigned), what


@pytest.fixture
async def world(redis_url):
    store = Store(aioredis.Redis.from_url(redis_url))
    plain = redis_sync.Redis.from_url(redis_url)
    yield lambda seed: World(store, plain, seed)
    await store.redis.aclose()
    plain.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_pages_match_a_naive_reading_of_the_whole_inbox(world, seed):
    w = world(seed)
    for n in range(160):
        await w.step()
        if n % 20 == 19:
            w.check_indexes()
            await w.check_pages(25)
    assert len(w.all_ids()) > 40  # enough chats, and the ids pass 9 (equal scores order "9" after "10")


async def test_queue_positions_still_come_in_queue_order(world):
    w = world(4)
    # Twelve chats created at the same time: the queue orders them by id, not by name ("10" after "9").
    ids = [(await w.store.run("ingest", w.now, "", ingest_args("sms", f"q{i}", "", False)))["id"]
           for i in range(12)]
    for conversation_id in reversed(ids):
        await w.run("welcome", conversation=conversation_id, away="", template="#{position}")
    assert [w.conv(i)["queue_told"] for i in ids] == [str(n) for n in range(1, 13)]
    for conversation_id in ids[:4]:
        await w.run("accept", conversation=conversation_id, agent="ann", serves="1")
    told = await w.run("queue_positions", step="3", template="#{position}")
    assert len(told["told"]) == 8
    assert [w.conv(i)["queue_told"] for i in ids[4:]] == [str(n) for n in range(1, 9)]


def forget_indexes(w: World) -> None:
    """What a deployment from before the indexes holds: the Inbox and the chats' own declined sets."""
    index_keys = [*w.plain.hkeys(w.store.key("inbox", "leaves")), w.store.key("inbox", "leaves"),
                  w.store.key("inbox", "queue"), w.store.key("inbox", "indexed"),
                  *[w.store.key("inbox", "declined", agent) for agent in AGENTS]]
    w.plain.delete(*index_keys)


async def test_chats_waiting_before_the_upgrade_get_their_indexes(world, redis_url):
    w = world(5)
    for _ in range(60):
        await w.step()
    forget_indexes(w)
    w.store = Store(aioredis.Redis.from_url(redis_url))  # a new process: its first page builds them
    await w.check_pages(10)
    w.check_indexes()
    assert await w.store.rebuild_indexes() == w.plain.zcard(w.store.key("inbox"))  # again, by hand
    w.check_indexes()
    await w.store.redis.aclose()


@pytest.mark.parametrize("seed", [7, 8])
async def test_the_rebuild_goes_by_steps_while_chats_come_move_and_leave(world, seed):
    w = world(seed)
    for _ in range(100):
        await w.step()
    forget_indexes(w)
    w.welcome = False  # a welcome would finish the rebuild in one step
    steps = 0
    while not (await w.store.run("rebuild_indexes", w.now, "", {"restart": "1" if steps == 4 else "0", "count": "3"}))["done"]:
        steps += 1
        for _ in range(2):
            await w.step()
    assert steps > 8
    w.check_indexes()
    await w.check_pages(15)


def test_the_benchmark_runs(redis_url):
    inbox_page.main(["--sizes", "30,80", "--reads", "3", "--redis-url", redis_url])
