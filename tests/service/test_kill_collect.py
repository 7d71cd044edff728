"""kill -9 at 100 random points during collection, then restart: no reading lost, none duplicated.

A worker process (``collect_worker.py``) forks children that each run the head-end for one
simulated hour (three IEC 62056-21 meters on two simulated serial lines, a read every ten
minutes) into one SQLite file. Each child kills itself with SIGKILL just before a seeded random
SQL statement or COMMIT: inside the migrations of the first run, inside a configuration apply,
between a reading's upsert and its marker, at a commit. The next child restarts on the same
file. After every kill the store is checked, and at the end of all of them:

* every reading a child reported as durable (after its save committed) is stored exactly once,
  with the value the simulated meter sent in that run;
* no natural key appears twice, and nothing is stored that no run could have read;
* every marker points at a stored reading, and the store's integrity check passes.

Seeded and reproducible: the kill points depend only on ``SEED`` and the calibrated statement
count of a run.
"""

from __future__ import annotations

import random
import sqlite3
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from worker_process import WorkerProcess

from metercom.clock import VirtualClock
from metercom.service.store import Store

WORKER = Path(__file__).with_name("collect_worker.py")
SEED = 20260321
KILLS = 100
METERS = ("m-1", "m-2", "m-3")


class Worker(WorkerProcess):
    def __init__(self) -> None:
        super().__init__(WORKER)

    def run(self, path: Path, run: int, *, kill_at: int = 0) -> tuple[list[str], int]:
        return self.command(path, run, kill_at)


@pytest.fixture
def worker() -> Iterator[Worker]:
    w = Worker()
    try:
        yield w
    finally:
        w.close()


Key = tuple[str, str, datetime]


def durable(lines: list[str]) -> dict[Key, Decimal]:
    out: dict[Key, Decimal] = {}
    for line in lines:
        word, *rest = line.split()
        if word == "saved":
            meter, obis, when, value = rest
            out[(meter, obis, datetime.fromisoformat(when))] = Decimal(value)
    return out


def raw_duplicates(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT meter_id, obis, capture_time, count(*) FROM readings "
            "GROUP BY meter_id, obis, capture_time HAVING count(*) > 1"
        ).fetchall()


async def check_store(path: Path, reported: dict[Key, Decimal], runs: int) -> int:
    async with await Store.open(path) as store:
        report = await store.check_integrity()
        assert report.ok, report.problems
        stored: dict[Key, Decimal] = {}
        for meter in METERS:
            for row in await store.readings(meter):
                key = (meter, row.obis, row.capture_time)
                assert key not in stored, f"duplicate {key}"
                assert row.revision == 0, f"{key} was rewritten"
                assert isinstance(row.value, Decimal)
                stored[key] = row.value
            markers = await store.markers(meter)
            for obj, when in markers.items():
                assert (meter, obj, when) in stored, f"marker {meter} {obj} at {when} has no reading"
        lost = [key for key in reported if key not in stored]
        assert not lost, f"{len(lost)} durable readings lost, first {lost[:3]}"
        for key, value in reported.items():
            assert stored[key] == value, (key, stored[key], value)
        for (_, obis, _), value in stored.items():
            run = int(value)  # the integral part is the run that read it
            assert 0 <= run <= runs
            assert value - run == (Decimal("0.1") if obis.endswith(":1.8.0*255") else Decimal("0.2"))
        return len(stored)


def test_collection_survives_kill_9_at_100_random_points(tmp_path: Path, worker: Worker) -> None:
    rng = random.Random(SEED)
    # Calibrate: the statements of a run on a fresh file (migrations included), and of a restart.
    lines, code = worker.run(tmp_path / "scratch.db", 0)
    assert code == 0, lines
    fresh = int(lines[-1].split()[1])
    lines, code = worker.run(tmp_path / "scratch.db", 1)
    assert code == 0, lines
    statements = int(lines[-1].split()[1])
    reads = len(durable(lines))
    assert reads >= 2 * len(METERS) * 5, reads  # 2 objects x 3 meters x 5-6 fires in 1 h
    assert statements > 100

    db = tmp_path / "collect.db"
    reported: dict[Key, Decimal] = {}
    killed = saves_before_kill = 0
    # The first kill lands anywhere in a fresh file's run (migrations included), the rest in restarts;
    # a restart's statement count varies a little with what the last kill left, so the points stay
    # in the first 90 % of the calibrated run, where every restart still is.
    points = [rng.randint(1, fresh)] + [rng.randint(1, statements * 9 // 10) for _ in range(KILLS - 1)]
    for run, point in enumerate(points):
        lines, code = worker.run(db, run, kill_at=point)
        reported |= durable(lines)
        if code == -9:
            killed += 1
            saves_before_kill += bool(durable(lines))
        else:
            assert code == 0, lines
        if run % 10 == 9:  # a full check now and then; the final one checks everything
            VirtualClock().run(check_store(db, reported, run))
    # One last run without a kill: the head-end restarts on whatever the kills left.
    lines, code = worker.run(db, KILLS)
    assert code == 0, lines
    reported |= durable(lines)
    total = VirtualClock().run(check_store(db, reported, KILLS))
    assert not raw_duplicates(db)
    assert killed >= KILLS * 95 // 100, killed
    assert saves_before_kill >= KILLS // 2, saves_before_kill
    assert total >= len(reported)
    per_run = Counter(int(v) for v in reported.values())
    assert per_run[KILLS] >= 2 * len(METERS) * 5  # the clean last run stored what it read
