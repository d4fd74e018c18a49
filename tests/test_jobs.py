"""The jobs the state machine writes itself (gateway/jobs.py): RQ reads them, one per outbox, timers first."""

from __future__ import annotations

import asyncio
import math

import redis as redis_sync
from rq import Queue
from rq.job import Job

from gateway.jobs import QUEUE, SERIALIZER, TIMERS_QUEUE
from tests.conftest import pending_timers, queued_jobs
from tests.test_machine import inbound
from workers.outbox import drain


async def test_rq_reads_the_drain_job_the_state_machine_wrote(services, redis_url):
    received = await services.conversations.receive(inbound("Where is my parcel?", customer="r1"))
    connection = redis_sync.Redis.from_url(redis_url)
    queue = Queue(QUEUE, connection=connection, serializer=SERIALIZER)
    [job] = [Job.fetch(job_id, connection=connection, serializer=SERIALIZER) for job_id in queue.get_job_ids()]
    assert job.func_name == "workers.jobs.drain_ready" and tuple(job.args) == ("ready",) and job.kwargs == {}
    assert job.get_status().value == "queued" and job.origin == QUEUE
    assert job.timeout == int(services.config.delivery.timeout * 4 + 60) and job.result_ttl == 0
    assert job.retries_left is None  # a failed outbox gets a job of its own, with the retries
    # Each enabled console's outbox is on the ready list, once.
    assert await ready_list(services) == sorted(services.store.console_outbox(console, received.conversation_id)
                                                for console in services.consoles)


async def ready_list(services) -> list[str]:
    return sorted(raw.decode() for raw in await services.store.redis.lrange(services.store.key("ready"), 0, -1))


async def test_a_burst_lists_each_outbox_once_until_it_is_emptied(services, redis_url):
    cid = (await services.conversations.receive(inbound("first", customer="r2"))).conversation_id
    for n in range(49):
        await services.conversations.receive(inbound(f"more {n}", customer="r2"))
    outbox = services.store.console_outbox("fake", cid)
    assert await ready_list(services) == sorted(services.store.console_outbox(c, cid) for c in services.consoles)
    assert queued_jobs(redis_url) == [("drain_ready", ("ready",))]  # one, however many messages
    shown = []

    async def show(item: bytes, _maybe_sent: bool) -> None:
        shown.append(item)

    await services.store.redis.lrem(services.store.key("ready"), 0, outbox)  # as a drainer takes it
    assert await drain(services.store, outbox, show) == 50 and len(shown) == 50
    # Emptied: the next message lists it again; a second chat's outboxes are listed too.
    await services.conversations.receive(inbound("again", customer="r2"))
    other = (await services.conversations.receive(inbound("hello", customer="r3"))).conversation_id
    listed = await ready_list(services)
    assert outbox in listed and services.store.console_outbox("fake", other) in listed
    assert queued_jobs(redis_url) == [("drain_ready", ("ready",))]  # still queued, not started: no second


async def test_a_drainer_serves_many_outboxes_at_once_and_hands_a_failing_one_to_a_retry(services):
    from workers import ready

    for n in range(30):
        await services.conversations.receive(inbound("hi", customer=f"d{n}"))
    failing = services.store.console_outbox("fake", "7")
    drained, retried, in_flight, most = [], [], 0, 0

    async def drain_outbox(_services, outbox: str) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)  # a platform's answer: the other lanes go on meanwhile
        in_flight -= 1
        if outbox == failing:
            raise RuntimeError("Slack is down")
        drained.append(outbox)

    async def retry_later(_services, outbox: str) -> None:
        retried.append(outbox)

    drainers = []

    async def queue_drainer() -> None:
        drainers.append(1)

    count = await ready.drain_ready(services, drain_outbox, retry_later, queue_drainer, budget=60, lanes=8)
    assert count == 30 * len(services.consoles) and retried == [failing] and failing not in drained
    assert most == 8 and await ready_list(services) == []
    # More were ready than one drainer takes at once: one more drainer was asked for, to share them.
    assert drainers == [1]


async def test_timers_get_one_wake_up_per_due_second_on_a_queue_of_their_own(make_services, clock, redis_url):
    services = make_services('[conversation]\nauto_close_after = "90s"\n')
    connection = redis_sync.Redis.from_url(redis_url)
    ids = []
    for n in range(3):
        cid = (await services.conversations.receive(inbound("hi", customer=f"t{n}"))).conversation_id
        await services.conversations.accept(cid, "U1")
        await services.conversations.resolve(cid, "U1")
        ids.append(cid)
    due = clock.now + 90
    assert {subject: when for (kind, subject), (_, when) in pending_timers(redis_url).items()
            if kind == "auto_close"} == {cid: due for cid in ids}
    scheduled = Queue(TIMERS_QUEUE, connection=connection, serializer=SERIALIZER).scheduled_job_registry
    [wake_up] = scheduled.get_job_ids()
    assert connection.zscore(scheduled.key, wake_up) == math.ceil(due)
    job = Job.fetch(wake_up, connection=connection, serializer=SERIALIZER)
    assert job.func_name == "workers.jobs.fire_timers" and job.origin == TIMERS_QUEUE
    # Fired (as the wake-up job does): all three close, in one round trip, once.
    clock.advance(90)
    due_now = await services.store.due_timers(clock.now)
    assert await services.conversations.fire(due_now) == 3
    assert await services.conversations.fire(due_now) == 0
    assert [(await services.store.get(cid)).state.value for cid in ids] == ["closed"] * 3
    assert not pending_timers(redis_url)


async def test_an_outbox_its_platform_paces_comes_back_when_a_token_is_due(services, redis_url, clock):
    from gateway.pacing import Paced
    from workers import ready

    cid = (await services.conversations.receive(inbound("hi", customer="p1"))).conversation_id
    paced = services.store.console_outbox("fake", cid)

    async def drain_outbox(_services, outbox: str) -> None:
        if outbox == paced:
            raise Paced("slack-post:C1", 2.5)

    async def retry_later(_services, outbox: str) -> None:
        raise AssertionError("pacing is not a failure")

    async def queue_drainer() -> None:
        pass

    await ready.drain_ready(services, drain_outbox, retry_later, queue_drainer, budget=60)
    assert await ready_list(services) == []
    # Back shortly before its turn (a timer fires up to TIMER_SLACK late).
    assert pending_timers(redis_url)[("ready", paced)] == ("", clock.now + 2.5 - ready.TIMER_SLACK)
    # Due: back on the ready list, with a drainer queued for it.
    await services.store.redis.delete(services.store.key("drainer"))
    clock.advance(2.5)
    assert await services.conversations.fire(await services.store.due_timers(clock.now)) == 1
    assert await ready_list(services) == [paced]
    assert ("drain_ready", ("ready",)) in queued_jobs(redis_url)
