"""Worker for the kill -9 test of collection (run as a script, not collected by pytest).

This process imports SQLAlchemy, Alembic and metercom once and then, for every ``run`` command
read from stdin, forks a child that runs a :class:`~metercom.service.headend.HeadEnd` on a
virtual clock against simulated IEC 62056-21 meters on simulated lines, storing into one SQLite
file. The child kills itself with SIGKILL just before its ``kill_at``-th SQL statement or COMMIT
(counted across the whole child: migrations, the configuration apply, every save), or runs to
the end of its simulated period. This process never opens a store, so it is single-threaded
when it forks.

Run ``n`` simulates ``HOURS`` hour(s) starting at ``START + n days``, so every run's capture times
are its own. After each save has committed (``Collector.save`` returned), the child writes
``saved <meter> <obis> <capture time> <value>`` for every reading to stdout with one
``os.write`` (a pipe: what was written survives the kill). A reading reported here is durable.

Protocol, one line each::

    stdin:  run <db path> <run index> <kill_at or 0>    |   quit
    stdout: ready                              (once, at start)
            saved <meter> <obis> <iso time> <value>
            statements <count>                 (from a child that was not killed)
            exit <code>                        (after the child ended; -9 when killed)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from worker_process import kill_at_statement, say, serve

from metercom.clock import VirtualClock
from metercom.service.config_model import LineConfig, MeterConfig, Protocol
from metercom.service.config_store import ConfigStore
from metercom.service.headend import HeadEnd
from metercom.service.meters import Borrowed, CollectedData, LinkPool
from metercom.service.store import Store, WriteResult
from metercom.sim.iec21 import Iec21Meter, Iec21MeterConfig
from metercom.transport import LineSettings, SimulatedLine, Transport

START = datetime(2026, 3, 2, tzinfo=UTC)
HOURS = 1
METERS = {"m-1": "opt-1", "m-2": "opt-2", "m-3": "opt-2"}


def config_text() -> str:
    out = [
        f'[[lines]]\nid = "{line}"\nurl = "serial:///dev/ttyKILL{line[-1]}"\ntype = "serial"\n'
        for line in sorted(set(METERS.values()))
    ]
    for n, (meter, line) in enumerate(METERS.items()):
        out.append(
            f'[[meters]]\nid = "{meter}"\nprotocol = "iec21"\nline = "{line}"\n'
            f'address = {{ device = "{1000 + n}" }}\ngroups = ["all"]\n'
        )
    out.append('[[groups]]\nid = "all"\n')
    out.append('[[plans]]\nid = "billing"\nobjects = ["1.8.0", "2.8.0"]\n')
    out.append('[[schedules]]\nid = "fast"\ngroup = "all"\nplan = "billing"\nevery = "10m"\n')
    return "\n".join(out)


def child(args: Sequence[str]) -> None:
    path, run, kill_at = args[0], int(args[1]), int(args[2])
    statements = kill_at_statement(kill_at)
    start = START + timedelta(days=run)
    clock = VirtualClock(start, real_grace_s=0.0)

    async def main() -> None:
        lines: dict[str, SimulatedLine] = {}
        tasks = []
        for line_id in sorted(set(METERS.values())):
            line = lines[line_id] = SimulatedLine(LineSettings.parse("7E1", 300), name=line_id)
            # One simulated meter per line answers every address; the value of 1.8.0 is the run,
            # so the parent can tell a reading of this run from any other.
            registers = {"1.8.0": f"({run:07d}.1*kWh)", "2.8.0": f"({run:07d}.2*kWh)"}
            meter = Iec21Meter(Iec21MeterConfig(registers=registers))
            tasks.append(asyncio.create_task(meter.serve(line.b)))

        async def open_link(line: LineConfig, meter: MeterConfig) -> Transport:
            return Borrowed(lines[line.id].a)

        store = await Store.open(path)
        configs = ConfigStore(store)
        await configs.apply(config_text(), actor="kill-test")
        headend = HeadEnd(store, configs, links=LinkPool(open_link), stop_timeout_s=5.0)
        original = headend.collector.save

        async def save(meter: MeterConfig, data: CollectedData) -> WriteResult:
            now = clock.now()  # what Collector.save stamps readings without a time of their own
            result = await original(meter, data)
            for reading in data.readings:
                when = (reading.captured_at or now).isoformat()
                say(f"saved {meter.id} {reading.obis} {when} {reading.value}")
            return result

        headend.collector.save = save  # type: ignore[method-assign]
        await headend.start()
        assert headend.config.meter("m-1").protocol is Protocol.IEC21
        await asyncio.sleep(max(0.0, (start + timedelta(hours=HOURS) - clock.now()).total_seconds()))
        await headend.schedules.stop()
        await headend.wait_idle()
        await headend.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await store.close()

    clock.run(main())
    say(f"statements {statements()}")


if __name__ == "__main__":
    assert Path(__file__).name == "collect_worker.py"
    serve(child)
