"""Group commit in the store, on SQLite and on PostgreSQL: saves queued while the writer is busy
share one transaction, each keeps its marker and its own result, and one failing save fails
alone."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event

from metercom.errors import InputError
from metercom.model.obis import Obis
from metercom.model.reading import Reading
from metercom.service.store import Marker, MeterRecord, ProfileRow, Store, WriteResult

E_IMPORT = Obis.parse("1.8.0")
LOAD = Obis.parse("1-0:99.1.0*255")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
METERS = [f"m{n}" for n in range(12)]


async def _open(url: str) -> Store:
    store = await Store.open(url)
    records = [MeterRecord(i, "dlms", "bus", f"client=1;physical={n}") for n, i in enumerate(METERS)]
    await store.apply_config_version(
        text="# test", sha256="0" * 64, source="test", actor="tester", summary="meters", meters=records
    )
    return store


def _rows(n: int) -> list[ProfileRow]:
    return [ProfileRow(T0 + timedelta(minutes=15 * i), {"1-0:1.8.0*255": Decimal(100 + i)}) for i in range(n)]


class _Writer:
    """Keeps every store worker busy until released, so the saves started meanwhile queue up."""

    def __init__(self, store: Store) -> None:
        self.release = threading.Event()
        self.started = [threading.Event() for _ in range(store._executor._max_workers)]
        self.store = store

    def _hold(self, started: threading.Event) -> None:
        started.set()
        self.release.wait(10)

    def hold(self) -> list[asyncio.Future[None]]:
        loop = asyncio.get_running_loop()
        held = [loop.run_in_executor(self.store._executor, self._hold, s) for s in self.started]
        for started in self.started:
            assert started.wait(10)
        return held


async def test_saves_queued_meanwhile_share_one_commit_and_keep_their_markers(store_url: str) -> None:
    async with await _open(store_url) as store:
        commits: list[int] = []
        event.listen(store.engine, "commit", lambda _conn: commits.append(1))
        writer = _Writer(store)
        held = writer.hold()
        saves = []
        for meter in METERS:
            rows = _rows(4)
            saves.append(
                asyncio.ensure_future(
                    store.save_profile_rows(meter, LOAD, rows, marker=Marker(LOAD, rows[-1].capture_time))
                )
            )
            reading = Reading(E_IMPORT, Decimal(7), "kWh", T0)
            saves.append(
                asyncio.ensure_future(store.save_readings(meter, [reading], marker=Marker(E_IMPORT, T0)))
            )
        for _ in range(3):
            await asyncio.sleep(0)  # every save is queued behind the busy writer
        writer.release.set()
        await asyncio.gather(*held)
        results = await asyncio.gather(*saves)
        assert len(commits) == 1  # 24 saves, one transaction
        assert results == [WriteResult(inserted=4), WriteResult(inserted=1)] * len(METERS)
        for meter in METERS:
            assert await store.marker(meter, LOAD) == T0 + timedelta(minutes=45)
            assert await store.marker(meter, E_IMPORT) == T0
            assert len(await store.profile_rows(meter, LOAD)) == 4


async def test_a_failing_save_fails_alone_and_lands_nothing(store_url: str) -> None:
    async with await _open(store_url) as store:
        writer = _Writer(store)
        held = writer.hold()
        good = [asyncio.ensure_future(store.save_profile_rows(m, LOAD, _rows(2))) for m in METERS[:3]]
        ahead = Marker(LOAD, T0 + timedelta(days=1))  # past its rows: refused
        bad = asyncio.ensure_future(store.save_profile_rows(METERS[3], LOAD, _rows(2), marker=ahead))
        unknown = asyncio.ensure_future(store.save_profile_rows("nobody", LOAD, _rows(2)))
        later = asyncio.ensure_future(store.save_profile_rows(METERS[4], LOAD, _rows(3)))
        for _ in range(3):
            await asyncio.sleep(0)
        writer.release.set()
        await asyncio.gather(*held)
        assert await asyncio.gather(*good, later) == [WriteResult(inserted=2)] * 3 + [WriteResult(inserted=3)]
        with pytest.raises(InputError, match="ahead of the newest stored profile row"):
            await bad
        with pytest.raises(InputError, match="unknown meter 'nobody'"):
            await unknown
        assert await store.profile_rows(METERS[3], LOAD) == []
        assert await store.marker(METERS[3], LOAD) is None
        assert len(await store.profile_rows(METERS[4], LOAD)) == 3


async def test_a_cancelled_caller_does_not_stop_its_save(store_url: str) -> None:
    async with await _open(store_url) as store:
        writer = _Writer(store)
        held = writer.hold()
        rows = _rows(2)
        cancelled = asyncio.ensure_future(
            store.save_profile_rows("m0", LOAD, rows, marker=Marker(LOAD, rows[-1].capture_time))
        )
        other = asyncio.ensure_future(store.save_profile_rows("m1", LOAD, rows))
        await asyncio.sleep(0)
        cancelled.cancel()
        writer.release.set()
        await asyncio.gather(*held)
        assert await other == WriteResult(inserted=2)
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        # Written all the same (the caller must assume it may have been: saving is idempotent).
        assert await store.marker("m0", LOAD) == rows[-1].capture_time


async def test_profile_times_are_the_stored_capture_times_in_range(store_url: str) -> None:
    async with await _open(store_url) as store:
        await store.save_profile_rows("m0", LOAD, _rows(6))
        times = await store.profile_times(
            "m0", LOAD, since=T0 + timedelta(minutes=15), until=T0 + timedelta(hours=1)
        )
        assert times == [T0 + timedelta(minutes=m) for m in (15, 30, 45)]
        everything: list[Any] = await store.profile_times("m0", str(LOAD))
        assert everything == [row.capture_time for row in await store.profile_rows("m0", LOAD)]
        assert await store.profile_times("m1", LOAD) == []
