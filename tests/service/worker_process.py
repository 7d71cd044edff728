"""A pre-imported worker process for the kill -9 tests (not collected by pytest).

The worker script imports the whole stack once, prints ``ready``, then reads commands on its
standard input (``run ...`` forks a child that does the work and may be killed; ``quit``).
Everything a child prints up to ``exit CODE`` is returned to the test.

Both sides live here: :class:`WorkerProcess` drives a worker from the test, and the worker
scripts (``collect_worker.py``, ``apply_worker.py``) run :func:`serve` with their own child
function, kill themselves with :func:`kill_at_statement` and report with :func:`say`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable, Sequence
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


# -- the worker side ------------------------------------------------------------------------------


def say(text: str) -> None:
    """Print a line for the test, unbuffered (a SIGKILL loses nothing already said)."""
    os.write(1, (text + "\n").encode())


def kill_at_statement(kill_at: int) -> Callable[[], int]:
    """SIGKILL this process at its ``kill_at``-th database statement or commit (any engine; 0:
    never); returns how many it has counted so far."""
    from sqlalchemy import Engine, event

    counter = 0

    def count(*_args: object) -> None:
        nonlocal counter
        counter += 1
        if counter == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    event.listen(Engine, "before_cursor_execute", count)
    event.listen(Engine, "commit", count)
    return lambda: counter


def reap(pid: int, _args: Sequence[str]) -> int:
    """Wait for a child and return its exit code (negative: the signal that killed it)."""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def serve(
    child: Callable[[Sequence[str]], None],
    wait: Callable[[int, Sequence[str]], int] = reap,
) -> None:
    """The worker's loop: ``ready``, then for each ``run ARGS...`` fork a child that calls
    ``child(ARGS)`` (a traceback and exit code 1 if it raises), ``wait`` for it and print
    ``exit CODE``; stop at ``quit`` or the end of input."""
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                child(words[1:])
            except BaseException:  # noqa: BLE001 - report anything, then leave the fork
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        print(f"exit {wait(pid, words[1:])}", flush=True)
