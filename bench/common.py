"""Shared benchmark helpers: timing loops and the side-by-side ratio report.

Every benchmark measures ours and the peers' code in the same process and run, so a ratio is
meaningful on any machine even when the absolute numbers are not.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Comparison", "ops_per_second", "report"]


def ops_per_second(fn: Callable[[], object], *, min_time_s: float = 0.2, repeats: int = 5) -> float:
    """Median operations per second of ``fn`` over ``repeats`` timed batches."""
    batch = 1
    while True:  # size a batch to take about min_time_s
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time_s / 4:
            break
        batch *= 4
    batch = max(1, int(batch * min_time_s / max(elapsed, 1e-9)))
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        rates.append(batch / (time.perf_counter() - start))
    return statistics.median(rates)


@dataclass(frozen=True)
class Comparison:
    """Our rate against one peer's on the same operation; ``target`` is the ratio we promise."""

    operation: str
    unit: str
    ours: float
    peer: str
    theirs: float | None
    target: float | None = None

    @property
    def ratio(self) -> float | None:
        return None if not self.theirs else self.ours / self.theirs

    @property
    def verdict(self) -> str:
        if self.target is None or self.ratio is None:
            return ""
        return "ok" if self.ratio >= self.target else "BELOW TARGET"


def report(title: str, rows: list[Comparison]) -> str:
    lines = [title, "-" * len(title)]
    for row in rows:
        theirs = f"{row.theirs:,.0f}" if row.theirs else "n/a"
        ratio = f"{row.ratio:.2f}x" if row.ratio else "n/a"
        target = f" (target {row.target:g}x: {row.verdict})" if row.target else ""
        lines.append(
            f"{row.operation}: ours {row.ours:,.0f} {row.unit} | {row.peer} {theirs} | ratio {ratio}{target}"
        )
    return "\n".join(lines)
