"""The load benchmark's fast variant: 5 s at 20 webhooks/s through one web and two worker processes.

Runs the same code as ``bench/load.py --seconds 5 --rate 20`` (its own Redis,
fakes and processes) and checks that every webhook was answered and every
message reached Slack exactly once, in order per customer.
"""

from __future__ import annotations

import re

from bench.load import Sent, check, main, run


def test_five_seconds_of_webhooks_lose_nothing(capsys):
    summary = run(seconds=5, rate=20, customers=40, drain_timeout=120)
    print(summary.table())
    print(summary.window_table())
    sent = summary.requests
    assert sent == 100 + len(summary.probes) and summary.probes  # the load, and new customers during it
    assert summary.answered_2xx == sent and summary.non_2xx == 0 and summary.errors == 0
    assert summary.stored == sent
    assert (summary.delivered, summary.lost, summary.duplicated, summary.out_of_order) == (sent, 0, 0, 0)
    assert sum(len(latencies) for _, latencies in summary.windows) == sent and summary.backlog
    assert summary.ok


def test_the_check_counts_lost_duplicated_and_reordered_messages():
    """The benchmark's verdict is not vacuous: each kind of fault is counted."""
    sent = [Sent(number, customer=number % 2, status=200) for number in range(6)]
    sent.append(Sent(6, customer=0, status=503))  # refused: the platform retries it, not expected
    copies = {0: [0, 4, 2, 2], 1: [1, 3]}  # 4 before 2, 2 twice; customer 1 lost 5
    assert check(sent, copies) == (6, 1, 1, 1)


def test_the_command_line_exits_zero_when_nothing_is_lost(capsys):
    assert main(["--seconds", "2", "--rate", "10", "--customers", "5"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\| lost +\| 0 \|", out) and re.search(r"\| result +\| OK \|", out), out
