"""Terminal output: tables, JSON and a progress line for slow links.

Progress goes to stderr and only when stderr is a terminal, so ``--json`` output on stdout
stays clean for pipes.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Sequence
from typing import TextIO

__all__ = ["Progress", "print_json", "render_table"]


def render_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Plain aligned columns; numbers right-aligned."""
    text_rows = [["" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def fmt(row: Sequence[str]) -> str:
        cells = []
        for i, cell in enumerate(row):
            numeric = cell.replace(".", "", 1).replace("-", "", 1).isdigit()
            cells.append(cell.rjust(widths[i]) if numeric else cell.ljust(widths[i]))
        return "  ".join(cells).rstrip()

    lines = [fmt(list(headers)), "  ".join("-" * w for w in widths)]
    lines.extend(fmt(row) for row in text_rows)
    return "\n".join(lines)


def print_json(data: object, out: TextIO | None = None) -> None:
    json.dump(data, out or sys.stdout, indent=2, ensure_ascii=False)
    (out or sys.stdout).write("\n")


class Progress:
    """A one-line progress indicator on stderr: ``reading 1.8.0 ... 812 bytes, 9600 Bd, 3.2 s``."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool | None = None) -> None:
        self._stream = stream or sys.stderr
        self._enabled = self._stream.isatty() if enabled is None else enabled
        self._start = time.monotonic()
        self._width = 0

    def update(self, text: str) -> None:
        if not self._enabled:
            return
        line = f"\r{text}  [{time.monotonic() - self._start:5.1f} s]"
        self._stream.write(line.ljust(self._width))
        self._width = len(line)
        self._stream.flush()

    def done(self) -> None:
        if self._enabled and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._width = 0
