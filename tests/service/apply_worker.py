"""Worker for the kill -9 test of configuration apply (run as a script, not collected by pytest).

Importing SQLAlchemy, Alembic and metercom takes seconds on a busy machine, so this process
imports them once and then, for every ``run`` command read from stdin, forks a child that
applies configuration versions to a SQLite file in a loop. The child is killed with SIGKILL
either by itself, just before its ``kill_at``-th SQL statement or COMMIT (counted across the
whole child, migrations included), or by this process after ``delay_ms`` of real time. This
process is single-threaded when it forks (no store is ever opened here).

Protocol, one line each::

    stdin:  run <db path> <kill_at or 0> <delay_ms or 0> <versions>    |   quit
    stdout: ready                      (once, at start)
            begin <n> / applied <n>    (from the child, around applying version n)
            statements <count>         (from a child that was not killed)
            exit <code>                (after the child ended; -9 when killed)

Version ``n`` always has the text :func:`config_text(n) <config_text>`, so the test can check
that the stored version is complete.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Sequence

from worker_process import kill_at_statement, reap, say, serve

from metercom.service.config_store import ConfigStore
from metercom.service.store import Store


def config_text(version: int) -> str:
    """The configuration applied as version ``version``: 3..19 meters, all changed each time."""
    count = 3 + (version * 7) % 17
    out = ["[[lines]]", 'id = "bus"', 'url = "/dev/ttyUSB0"', 'type = "rs485"', ""]
    for i in range(count):
        out += [
            "[[meters]]",
            f'id = "m{i:03d}"',
            'protocol = "dlms"',
            'line = "bus"',
            f"address = {{ client = 1, physical = {(i + version) % 200 + 1} }}",
            f'tariff = "T{version}"',
            "",
        ]
    return "\n".join(out)


def child(args: Sequence[str]) -> None:
    path, kill_at, versions = args[0], int(args[1]), int(args[3])
    statements = kill_at_statement(kill_at)

    async def run() -> None:
        store = await Store.open(path)
        configs = ConfigStore(store)
        for _ in range(versions):
            head = await store.config_version()
            version = (head.version if head is not None else 0) + 1
            say(f"begin {version}")
            applied = await configs.apply(config_text(version), actor="worker", source=f"generated {version}")
            if applied != version:
                raise AssertionError(f"applied {applied}, expected {version}")
            say(f"applied {applied}")
        await store.close()

    asyncio.run(run())
    say(f"statements {statements()}")


def wait(pid: int, args: Sequence[str]) -> int:
    """Reap the child, killing it first once ``delay_ms`` (``args[2]``) of real time passed."""
    delay_ms = int(args[2])
    if delay_ms > 0:
        deadline = time.monotonic() + delay_ms / 1000
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() >= deadline:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.0005)
    return reap(pid, args)


if __name__ == "__main__":
    serve(child, wait)
