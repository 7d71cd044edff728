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
import sys
import time
import traceback

from sqlalchemy import Engine, event

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


def _say(text: str) -> None:
    os.write(1, (text + "\n").encode())


def child(path: str, kill_at: int, versions: int) -> None:
    counter = 0

    def count(*_args: object) -> None:
        nonlocal counter
        counter += 1
        if counter == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    event.listen(Engine, "before_cursor_execute", count)
    event.listen(Engine, "commit", count)

    async def run() -> None:
        store = await Store.open(path)
        configs = ConfigStore(store)
        for _ in range(versions):
            head = await store.config_version()
            version = (head.version if head is not None else 0) + 1
            _say(f"begin {version}")
            applied = await configs.apply(config_text(version), actor="worker", source=f"generated {version}")
            if applied != version:
                raise AssertionError(f"applied {applied}, expected {version}")
            _say(f"applied {applied}")
        await store.close()

    asyncio.run(run())
    _say(f"statements {counter}")


def wait(pid: int, delay_ms: int) -> int:
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
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def main() -> None:
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        path, kill_at, delay_ms, versions = words[1], int(words[2]), int(words[3]), int(words[4])
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                child(path, kill_at, versions)
            except BaseException:  # noqa: BLE001 - report anything, then leave the fork
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        print(f"exit {wait(pid, delay_ms)}", flush=True)


if __name__ == "__main__":
    main()
