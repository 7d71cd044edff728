"""kill -9 during configuration apply leaves entirely the old or entirely the new version.

A worker process (``apply_worker.py``) forks children that apply versions to one SQLite file
in a loop; each child is killed with SIGKILL at a seeded random point: before its N-th SQL
statement or COMMIT (so inside migrations, inside the apply transaction, between them), or
after a random real-time delay. After every kill the file is opened and checked: the schema
is either absent or complete, the integrity check passes, versions are 1..n without gaps,
the newest version's text and the meters table match exactly that version, every version a
child reported as applied is there, and none that was never begun.
"""

from __future__ import annotations

import hashlib
import importlib.util
import random
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from worker_process import WorkerProcess

from metercom.clock import VirtualClock
from metercom.service.store import Store
from metercom.service.store.migrate import head_revision
from metercom.service.store.tables import VERSION_TABLE, metadata

WORKER = Path(__file__).with_name("apply_worker.py")
SEED = 20260101
STATEMENT_KILLS = 15
TIMED_KILLS = 5


def _load_config_text() -> Callable[[int], str]:
    spec = importlib.util.spec_from_file_location("metercom_apply_worker", WORKER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    func: Callable[[int], str] = module.config_text
    return func


config_text = _load_config_text()


class Worker(WorkerProcess):
    def __init__(self) -> None:
        super().__init__(WORKER)

    def run(
        self, path: Path, *, kill_at: int = 0, delay_ms: int = 0, versions: int = 3
    ) -> tuple[list[str], int]:
        return self.command(path, kill_at, delay_ms, versions)


@pytest.fixture
def worker() -> Iterator[Worker]:
    w = Worker()
    try:
        yield w
    finally:
        w.close()


def schema_state(path: Path) -> str:
    """``"empty"`` or ``"complete"``; anything in between fails the test."""
    if not path.exists():
        return "empty"
    with sqlite3.connect(path) as raw:
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return "empty"
        expected = {t.name for t in metadata.sorted_tables} | {VERSION_TABLE}
        assert tables == expected, f"half-migrated schema: {sorted(tables)}"
        rows = raw.execute(f"SELECT version_num FROM {VERSION_TABLE}")  # noqa: S608 - a constant
        assert [r[0] for r in rows] == [head_revision()]
    return "complete"


async def check_store(path: Path, acknowledged: int, begun: int) -> int:
    async with await Store.open(path) as store:
        report = await store.check_integrity()
        assert report.ok, report.problems
        versions = [v.version for v in await store.config_versions(limit=10_000)]
        assert versions == list(range(len(versions), 0, -1)), versions
        latest = versions[0] if versions else 0
        assert acknowledged <= latest <= begun, (acknowledged, latest, begun)
        if latest == 0:
            assert await store.meters() == []
            return 0
        stored = await store.config_version(latest)
        assert stored is not None
        expected_text = config_text(latest)
        assert stored.text == expected_text
        assert stored.sha256 == hashlib.sha256(expected_text.encode()).hexdigest()
        meters = {m.id: m for m in await store.meters()}
        count = 3 + (latest * 7) % 17
        active = {i for i, m in meters.items() if m.active}
        assert active == {f"m{i:03d}" for i in range(count)}
        for i in range(count):
            meter = meters[f"m{i:03d}"]
            assert meter.tariff == f"T{latest}"
            assert meter.address == f"client=1;logical=1;physical={(i + latest) % 200 + 1}"
        applied = await store.audit_log(action="config.apply", limit=10_000)
        assert [a.subject for a in applied] == [f"config version {v}" for v in range(1, latest + 1)]
        return latest


def test_apply_survives_kill_9_at_random_points(tmp_path: Path, worker: Worker) -> None:
    rng = random.Random(SEED)
    # Calibrate: statements of the migrations alone, and of a run applying 3 versions.
    migration_lines, code = worker.run(tmp_path / "scratch.db", versions=0)
    assert code == 0, migration_lines
    warm_lines, code = worker.run(tmp_path / "scratch.db")
    assert code == 0, warm_lines
    migration = int(migration_lines[-1].split()[1])
    warm = int(warm_lines[-1].split()[1])
    assert migration > 10
    assert warm > 30

    db = tmp_path / "fleet.db"
    # The first kill lands inside the migrations of the empty file; the rest anywhere.
    plan = [("statement", rng.randint(1, warm)) for _ in range(STATEMENT_KILLS - 1)]
    plan += [("timed", rng.randint(1, 40)) for _ in range(TIMED_KILLS)]
    rng.shuffle(plan)
    plan.insert(0, ("statement", rng.randint(2, migration - 1)))
    acknowledged = begun = 0
    killed = killed_mid_apply = 0
    killed_in_migration = False
    for index, (kind, point) in enumerate(plan):
        if kind == "statement":
            lines, code = worker.run(db, kill_at=point)
        else:
            lines, code = worker.run(db, delay_ms=point, versions=200)
        for line in lines:
            word, _, number = line.partition(" ")
            if word == "applied":
                acknowledged = max(acknowledged, int(number))
            elif word == "begin":
                begun = max(begun, int(number))
        if code == -9:
            killed += 1
            if lines and lines[-1].startswith("begin"):
                killed_mid_apply += 1
        else:
            assert code == 0, lines
        state = schema_state(db)
        if index == 0:
            killed_in_migration = code == -9 and not lines and state == "empty"
        latest = VirtualClock().run(check_store(db, acknowledged, begun))
        assert state == "complete" or latest == 0
    assert killed >= STATEMENT_KILLS, (killed, plan)
    assert killed_in_migration
    assert killed_mid_apply >= STATEMENT_KILLS // 2, killed_mid_apply
    assert acknowledged >= 3
