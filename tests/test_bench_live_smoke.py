"""``bench/live_streams.py``'s fast variant (as tests/test_bench_smoke.py for the others): five seconds
with no stream (the reference), then on a hundred streams. No figure is asserted; what is asserted is that the run did its whole job."""

from __future__ import annotations

from bench import live_streams


def test_live_streams_reach_every_stream_under_webhook_load():
    steps = live_streams.run(seconds=5, max_streams=100)
    print(live_streams.table(steps))
    reference, step = steps
    assert reference.open_at_end == 0 and reference.webhooks >= 400 and reference.webhooks_bad == 0
    assert step.open_at_end == 100 and (step.console, step.chat) == (50, 50)
    assert step.webhooks >= 400 and step.webhooks_bad == 0
    assert step.events >= 400 and step.fewest_streams == 50  # every console stream got every event
    assert step.replies_arrived == step.replies > 0
