"""The store under concurrency and virtual time, on SQLite and PostgreSQL.

* A PostgreSQL transaction that loses an insert race (another transaction inserted the same new
  natural key and committed while ours was between its look-up and its insert) is run again and
  becomes a no-op, as on SQLite, instead of failing with a unique violation. The collector lets
  the next read of a meter start while the previous one is still being saved, so this happens
  within one head-end. The race is made deterministic: a second connection holds the key
  uncommitted until the store's insert is seen waiting for it.
* A store call takes no virtual time: the clock is held while the job runs in its thread, so a
  pending timer neither fires nor moves the clock meanwhile.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import insert, text

from headend_support import store_with_meters
from metercom.clock import VirtualClock
from metercom.model.obis import Obis
from metercom.model.reading import Reading
from metercom.service.store import Marker, MeterRecord, Store, WriteResult
from metercom.service.store.tables import readings
from metercom.service.store.types import encode_value

T0 = datetime(2026, 1, 1, tzinfo=UTC)
E_IMPORT = Obis.parse("1.8.0")


def open_with_meter(url: str) -> Awaitable[Store]:
    return store_with_meters(url, MeterRecord("m1", "dlms", "bus", "client=1;physical=1"))


def wait_until_blocked_by(admin: psycopg.Connection[tuple[object, ...]], blocker_pid: int) -> None:
    """Poll (no sleep) until some backend waits for a lock ``blocker_pid`` holds; 30 s at most."""
    deadline = time.monotonic() + 30.0
    query = "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))"
    while time.monotonic() < deadline:
        row = admin.execute(query, (blocker_pid,)).fetchone()
        if row is not None and row[0]:
            return
    raise AssertionError("the store's insert never waited for the competing transaction")


async def test_a_lost_insert_race_on_postgresql_is_run_again(pg_url: str) -> None:
    async with await open_with_meter(pg_url) as store:
        value = Decimal("12.5")
        kind, exact, number = encode_value(value)
        competing = {
            "meter_id": "m1",
            "obis": str(E_IMPORT),
            "capture_time": T0,
            "value_kind": kind,
            "value_text": exact,
            "value_num": number,
            "unit": "kWh",
            "status": "ok",
            "received_at": T0,
            "revision": 0,
        }
        admin_url = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
        with store.engine.connect() as blocker, psycopg.connect(admin_url, autocommit=True) as admin:
            tx = blocker.begin()
            blocker.execute(insert(readings).values(**competing))
            blocker_pid = blocker.execute(text("SELECT pg_backend_pid()")).scalar_one()
            saving = asyncio.create_task(
                store.save_readings("m1", [Reading(E_IMPORT, value, "kWh", T0)], marker=Marker(E_IMPORT, T0))
            )
            await asyncio.sleep(0)  # let the task hand its job to the store's thread
            wait_until_blocked_by(admin, blocker_pid)
            tx.commit()
        assert await saving == WriteResult(unchanged=1)
        [stored] = await store.readings("m1", obis=E_IMPORT)
        assert (stored.value, stored.revision) == (value, 0)
        assert await store.marker("m1", E_IMPORT) == T0
        assert (await store.check_integrity()).ok


async def test_a_store_call_takes_no_virtual_time(store_url: str, vclock: VirtualClock) -> None:
    async with await open_with_meter(store_url) as store:
        loop = asyncio.get_running_loop()
        start = loop.time()
        fired: list[float] = []
        loop.call_later(0.001, lambda: fired.append(loop.time()))
        rows = [Reading(E_IMPORT, Decimal(n), "kWh", T0 + timedelta(minutes=15 * n)) for n in range(200)]
        assert await store.save_readings("m1", rows) == WriteResult(inserted=200)
        assert len(await store.readings("m1", obis=E_IMPORT)) == 200
        assert loop.time() == start  # without the hold the clock jumps to the timer at once
        assert fired == []
        await asyncio.sleep(0.002)
        assert fired == [pytest.approx(start + 0.001)]


async def test_close_waits_for_the_jobs_still_running(store_url: str) -> None:
    store = await open_with_meter(store_url)
    # writes handed to the store's threads and not waited for before the store is closed
    writes = [asyncio.create_task(store.audit(actor="t", action="close.race")) for _ in range(8)]
    await asyncio.sleep(0)
    await store.close()
    await asyncio.gather(*writes)
    del store
    # a connection checked out while the pool was disposed would be collected here unclosed,
    # and its ResourceWarning fail the test (warnings are errors)
    gc.collect()
    async with await Store.open(store_url) as again:
        assert len(await again.audit_log(action="close.race")) == 8  # each job ran to its end
