"""The benchmarks' fast variants, so they keep working: each runs its real code for a few seconds.

No figure is asserted (performance is measured by the benchmarks themselves,
see bench/RESULTS.md); what is asserted is that each run did its whole job.
"""

from __future__ import annotations

from bench import auto_close, deliveries, ingest, pacing


def test_deliveries_sends_every_reply_and_runs_the_empty_job_reference():
    result = deliveries.run(customers=200, workers=2)
    print(deliveries.table(result))
    assert result["sent"] == 200 and result["sends_per_second"] > 0 and result["empty_per_second"] > 0


def test_ingest_stores_every_answered_webhook_and_measures_bare_aiohttp_too():
    results = ingest.run(seconds=2, connections=8)
    print(ingest.table(results))
    for name in ("bare aiohttp", "telegram", "twilio sms"):
        assert results[name]["rate"] > 0 and results[name]["bad"] == 0, name
    for name in ("telegram", "twilio sms"):
        # Every answered webhook was stored (a request still in flight when the load stopped may be too).
        assert results[name]["stored"] >= results[name]["requests"] > 0, name


def test_auto_close_closes_every_chat_under_a_backlog():
    result = auto_close.run(chats=100, after=2, workers=2)
    print(auto_close.table(result))
    assert result["closed"] == 100 and len(result["late"]) == 100


def test_pacing_posts_and_sends_everything_with_the_fakes_enforcing_the_same_limits():
    result = pacing.run(chats=6, slack_rate=4.0, replies=12, telegram_rate=10.0)
    print(pacing.table(result))
    assert (result["cards"], result["sent"]) == (6, 12)
    assert result["slack_429"] == 0 and result["telegram_429"] == 0  # paced before the platform has to say so
