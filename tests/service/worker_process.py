"""A pre-imported worker process for the kill -9 tests (not collected by pytest).

The worker script imports the whole stack once, prints ``ready``, then reads commands on its
standard input (``run ...`` forks a child that does the work and may be killed; ``quit``).
Everything a child prints up to ``exit CODE`` is returned to the test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


class WorkerProcess:
    def __init__(self, script: Path) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our own worker script
            [sys.executable, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self.read() == "ready"

    def read(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the worker process died"
        return line.strip()

    def command(self, *words: object) -> tuple[list[str], int]:
        """Send ``run`` with ``words``; the child's output lines and its exit code."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(" ".join(["run", *map(str, words)]) + "\n")
        self.proc.stdin.flush()
        lines: list[str] = []
        while not (line := self.read()).startswith("exit "):
            lines.append(line)
        return lines, int(line.split()[1])

    def close(self) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)
        self.proc.stdin.close()
        self.proc.stdout.close()
