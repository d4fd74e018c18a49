"""Fault-injection suite: each test records a Tally; the run ends with a summary table."""

from __future__ import annotations

import pytest

from .harness import OPTIONS, Tally

TALLIES: list[Tally] = []


@pytest.fixture
def deployment(deployment, request):
    """The shared deployment fixture (tests/conftest.py), started with the fault tests' options (and a
    test's own, given as an indirect parameter: ``{"slack": {"post_rate": 1}}``)."""
    return deployment(**{**OPTIONS, **getattr(request, "param", {})})


@pytest.fixture
def tally(request):
    """A fresh Tally named after the test, shown in the summary table at the end."""
    entry = Tally(fault=request.node.name.removeprefix("test_").replace("_", " "))
    TALLIES.append(entry)
    return entry


def pytest_terminal_summary(terminalreporter):
    if not TALLIES:
        return
    write = terminalreporter.write_line
    write("")
    write("reliability summary (messages accepted by chatgate vs what reached the fake platforms)")
    header = f"{'fault injected':<48} {'sent':>6} {'delivered':>9} {'lost':>5} {'dup':>5} {'order':>6}"
    write(header)
    write("-" * len(header))
    for t in TALLIES:
        write(f"{t.fault[:48]:<48} {t.sent:>6} {t.delivered:>9} {t.lost:>5} {t.duplicated:>5} {t.out_of_order:>6}")
