"""The jobs the state machine writes itself (gateway/jobs.py): RQ reads them, one per outbox, timers first."""

from __future__ import annotations

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
    jobs = [Job.fetch(job_id, connection=connection, serializer=SERIALIZER) for job_id in queue.get_job_ids()]
    # One per enabled console, each for its own outbox.
    assert sorted(tuple(job.args) for job in jobs) == [(console, received.conversation_id)
                                                       for console in sorted(services.consoles)]
    job = jobs[0]
    assert job.func_name == "workers.jobs.deliver_to_console" and job.kwargs == {}
    assert job.get_status().value == "queued" and job.origin == QUEUE
    delivery = services.config.delivery
    assert job.retries_left == len(delivery.retry_intervals)
    assert job.retry_intervals == list(delivery.retry_intervals)
    assert job.timeout == int(delivery.timeout * 4 + 60) and job.result_ttl == 0


async def test_a_burst_to_one_chat_queues_one_drain_job_until_the_outbox_is_emptied(services, redis_url):
    cid = (await services.conversations.receive(inbound("first", customer="r2"))).conversation_id
    for n in range(49):
        await services.conversations.receive(inbound(f"more {n}", customer="r2"))
    assert queued_jobs(redis_url) == [("deliver_to_console", (console, cid)) for console in services.consoles]
    outbox = services.store.console_outbox("fake", cid)
    shown = []

    async def show(item: bytes, _maybe_sent: bool) -> None:
        shown.append(item)

    assert await drain(services.store, outbox, show) == 50 and len(shown) == 50
    # Emptied: the next message needs (and gets) a job of its own; a second chat gets its own too.
    await services.conversations.receive(inbound("again", customer="r2"))
    other = (await services.conversations.receive(inbound("hello", customer="r3"))).conversation_id
    assert [args for _, args in queued_jobs(redis_url) if args[0] == "fake"] == [
        ("fake", cid), ("fake", cid), ("fake", other)]


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
