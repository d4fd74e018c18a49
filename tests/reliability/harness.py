"""The fault-injection deployment's options (``tests/conftest.py`` builds it) and the checks of
what reached the fake platforms."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis as redis_sync
from tests.support import keys

# The store's keys (``Store.key``) under the default prefix, for this module's plain Redis clients.
KEY = keys()


@dataclass
class Tally:
    """What one fault scenario sent and what arrived."""

    fault: str
    sent: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, expected: list[str], arrived: list[str]) -> None:
        """Compare one stream (one chat, one direction): what was accepted vs what arrived, in order.

        Expected texts are unique tokens; an arrived text counts for the token it contains
        (Slack posts decorate the customer's words with their name).
        """
        self.sent += len(expected)
        wanted = set(expected)
        relevant = [next((e for e in expected if e in text), None) for text in arrived]
        relevant = [text for text in relevant if text is not None]
        self.delivered += len(set(relevant))
        self.lost += len(wanted - set(relevant))
        self.duplicated += len(relevant) - len(set(relevant))
        first_seen = list(dict.fromkeys(relevant))
        in_order = [text for text in expected if text in set(first_seen)]
        self.out_of_order += sum(1 for a, b in zip(first_seen, in_order) if a != b)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.out_of_order)


# The deployment the fault tests break: two web processes, two workers, patient retries.
OPTIONS = dict(webs=2, workers=2, delivery={"retry_intervals": [0.5, 1, 1, 2, 2, 3], "timeout": "10s",
                                           "recovery_after": "2s"})


def check_conversations(store: redis_sync.Redis) -> list[str]:
    """Every conversation in exactly one state, in exactly the list that state means, with
    at most one assignee. Returns the inconsistencies found (empty when all is well)."""
    problems = []
    inbox = {m.decode() for m in store.zrange(KEY("inbox"), 0, -1)}
    closed = {m.decode() for m in store.zrange(KEY("closed"), 0, -1)}
    assigned: dict[str, set[str]] = {}
    for key in store.scan_iter(KEY("assigned", "*")):
        agent = key.decode().rsplit(":", 1)[1]
        for member in store.zrange(key, 0, -1):
            assigned.setdefault(member.decode(), set()).add(agent)
    for key in store.scan_iter(KEY("conv", "*")):
        conv = {k.decode(): v.decode() for k, v in store.hgetall(key).items()}
        cid, state, assignee = conv["id"], conv["state"], conv.get("assignee", "")
        holders = assigned.get(cid, set())
        lists = {"inbox"} if cid in inbox else set()
        if cid in closed:
            lists.add("closed")
        if holders:
            lists.add("assigned")
        expected = {"new": {"inbox"}, "active": {"assigned"}, "resolved": {"assigned"}, "closed": {"closed"}}[state]
        if lists != expected:
            problems.append(f"chat {cid} is {state} but in {sorted(lists)}")
        if state in ("active", "resolved") and holders != {assignee}:
            problems.append(f"chat {cid} is {state} for {assignee!r} but in the Assigned lists of {sorted(holders)}")
        if state == "new" and assignee:
            problems.append(f"chat {cid} is new but assigned to {assignee}")
    return problems
