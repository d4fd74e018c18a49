"""What every benchmark prints: the machine and date, percentiles, a Markdown table."""

from __future__ import annotations

import os
import platform
from datetime import date

__all__ = ["machine", "percentile", "table"]


def machine() -> str:
    return f"{os.cpu_count()} cores, {platform.platform()}, {date.today()}"


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def table(rows: list[tuple[str, str]]) -> str:
    """A two-column Markdown table (measure, result)."""
    width = max(len(name) for name, _ in rows)
    head = [f"| {'measure'.ljust(width)} | result |", f"| {'-' * width} | --- |"]
    return "\n".join(head + [f"| {name.ljust(width)} | {value} |" for name, value in rows])
