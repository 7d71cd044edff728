"""The outbox in the store, on SQLite and PostgreSQL: enqueued in the readings' transaction,
per-sink pending entries, stable batch ids, order, live share, supersession, expiry, and the
receiver's once-only batches."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from metercom.clock import VirtualClock
from metercom.errors import InputError
from metercom.model.obis import Obis
from metercom.model.reading import Reading
from metercom.service.store import Marker, ReceivedReading, Store
from metercom.service.store.tables import outbox, outbox_pending

from .conftest import T0, Fleet

E = Obis.parse("1-0:1.8.0*255")


async def count(store: Store, table: Any) -> int:
    return int(
        await store._run("count", lambda c: c.execute(select(func.count()).select_from(table)).scalar())
    )


async def test_nothing_is_enqueued_without_sinks(store_url: str, fleet: Callable[..., Fleet]) -> None:
    f = fleet(2)
    async with await f.open(store_url) as store:
        await f.write(store, 0)
        assert await store.outbox_backlog() == []
        assert await count(store, outbox) == 0


async def test_batches_have_stable_ids_until_confirmed(store_url: str, fleet: Callable[..., Fleet]) -> None:
    f = fleet(2)
    async with await f.open(store_url) as store:
        assert await store.register_outbox_sinks(["a", "b"]) == ["a", "b"]
        assert await store.register_outbox_sinks(["a", "b"]) == []
        written = await f.write(store, 0) + await f.write(store, 1)
        first = await store.claim_outbox_batch("a", limit=5)
        assert first is not None
        assert len(first) == 5
        assert not first.resend
        again = await store.claim_outbox_batch("a", limit=50)
        assert again is not None
        assert again.resend
        assert again.batch_id == first.batch_id
        assert again.items == first.items
        seqs = [i.seq for i in first.items]
        assert seqs == sorted(seqs)
        backlog = {b.sink: b for b in await store.outbox_backlog()}
        assert backlog["a"].pending == written
        assert backlog["a"].in_flight == 5
        assert backlog["b"].pending == written
        assert await store.confirm_outbox_batch("a", first.batch_id) == 5
        assert await store.confirm_outbox_batch("a", first.batch_id) == 0
        backlog = {b.sink: b for b in await store.outbox_backlog()}
        assert backlog["a"].pending == written - 5
        assert backlog["a"].confirmed_total == 5
        assert backlog["a"].last_confirmed_at is not None
        # b still needs them: the outbox rows stay until every sink confirmed.
        assert await count(store, outbox) == written
        nxt = await store.claim_outbox_batch("a", limit=5)
        assert nxt is not None
        assert nxt.batch_id != first.batch_id
        assert min(i.seq for i in nxt.items) > max(seqs)


async def test_drained_in_order_and_outbox_emptied(store_url: str, fleet: Callable[..., Fleet]) -> None:
    f = fleet(3)
    async with await f.open(store_url) as store:
        await store.register_outbox_sinks(["a", "b"])
        written = sum([await f.write(store, t) for t in range(4)])
        for sink in ("a", "b"):
            seen: list[int] = []
            while (batch := await store.claim_outbox_batch(sink, limit=7)) is not None:
                seen.extend(i.seq for i in batch.items)
                await store.confirm_outbox_batch(sink, batch.batch_id)
            assert seen == sorted(seen)
            assert len(seen) == written
        assert await count(store, outbox) == 0
        assert await count(store, outbox_pending) == 0
        (a, b) = await store.outbox_backlog()
        assert (a.pending, a.confirmed_total, a.oldest_enqueued_at) == (0, written, None)
        assert b.confirmed_total == written


async def test_live_share_takes_the_newest(store_url: str, fleet: Callable[..., Fleet]) -> None:
    f = fleet(5)
    async with await f.open(store_url) as store:
        await store.register_outbox_sinks(["a"])
        for t in range(5):
            await f.write(store, t)
        batch = await store.claim_outbox_batch("a", limit=10, live_share=0.3)
        assert batch is not None
        seqs = [i.seq for i in batch.items]
        assert len(seqs) == 10
        lowest = min(seqs)
        assert seqs[:7] == list(range(lowest, lowest + 7))
        assert batch.items[-1].capture_time == T0 + f.step * 4
        with pytest.raises(InputError):
            await store.claim_outbox_batch("a", limit=0)


async def test_revision_supersedes_unclaimed_value(store_url: str, fleet: Callable[..., Fleet]) -> None:
    f = fleet(1)
    async with await f.open(store_url) as store:
        await store.register_outbox_sinks(["a"])
        await store.save_readings("m000", [Reading(E, Decimal(1), "kWh", T0)])
        await store.save_readings("m000", [Reading(E, Decimal(1), "kWh", T0)])  # unchanged
        assert (await store.outbox_backlog("a"))[0].pending == 1
        await store.save_readings("m000", [Reading(E, Decimal(2), "kWh", T0)])  # revised
        (b,) = await store.outbox_backlog("a")
        assert b.pending == 1
        batch = await store.claim_outbox_batch("a", limit=10)
        assert batch is not None
        assert [(i.value, i.revision) for i in batch.items] == [(Decimal(2), 1)]
        # Revised while the old value is in flight: both go, the open batch first.
        await store.save_readings("m000", [Reading(E, Decimal(3), "kWh", T0)])
        again = await store.claim_outbox_batch("a", limit=10)
        assert again is not None
        assert again.batch_id == batch.batch_id
        await store.confirm_outbox_batch("a", batch.batch_id)
        last = await store.claim_outbox_batch("a", limit=10)
        assert last is not None
        assert [i.value for i in last.items] == [Decimal(3)]


async def test_enqueued_in_the_readings_transaction(store_url: str, fleet: Callable[..., Fleet]) -> None:
    f = fleet(1)
    async with await f.open(store_url) as store:
        await store.register_outbox_sinks(["a"])
        bad = Marker(E, T0 + timedelta(days=1))
        with pytest.raises(InputError, match="ahead"):
            await store.save_readings("m000", [Reading(E, Decimal(1), "kWh", T0)], marker=bad)
        assert await store.readings("m000") == []
        assert await count(store, outbox) == 0
        assert (await store.outbox_backlog("a"))[0].pending == 0


async def test_unsent_readings_expire(
    store_url: str, fleet: Callable[..., Fleet], vclock: VirtualClock
) -> None:
    f = fleet(2)
    async with await f.open(store_url, clock=vclock) as store:
        await store.register_outbox_sinks(["a", "b"])
        written = await f.write(store, 0)
        in_flight = await store.claim_outbox_batch("a", limit=3)
        assert in_flight is not None
        (b,) = await store.outbox_backlog("b")
        assert b.oldest_enqueued_at == vclock.now()
        vclock.advance(86400 * 10)
        assert b.age_s(vclock.now()) == pytest.approx(86400 * 10)
        assert await store.expire_outbox(timedelta(days=90)) == {}
        vclock.advance(86400 * 81)
        dropped = await store.expire_outbox(timedelta(days=90), batch_size=4)
        assert dropped == {"a": written - 3, "b": written}
        a, b = await store.outbox_backlog()
        assert (a.pending, a.in_flight, a.expired_total) == (3, 3, written - 3)
        assert (b.pending, b.expired_total) == (0, written)
        assert await count(store, outbox) == 3
        audit = await store.audit_log(action="outbox.expired")
        assert len(audit) == 1


async def test_unregister_drops_pending(store_url: str, fleet: Callable[..., Fleet]) -> None:
    f = fleet(1)
    async with await f.open(store_url) as store:
        await store.register_outbox_sinks(["a"])
        written = await f.write(store, 0)
        assert await store.unregister_outbox_sink("a", actor="tester") == written
        assert await store.outbox_backlog() == []
        assert await count(store, outbox) == 0
        with pytest.raises(InputError):
            await store.register_outbox_sinks([" bad"])


async def test_received_batches_are_stored_once(store_url: str, fleet: Callable[..., Fleet]) -> None:
    f = fleet(1)
    async with await f.open(store_url) as store:
        rows = [
            ReceivedReading("far-1", "1-0:1.8.0*255", T0, Decimal("1.50"), "kWh"),
            ReceivedReading("far-1", "1-0:1.8.0*255", T0 + timedelta(minutes=15), Decimal("1.75"), "kWh"),
            ReceivedReading("m000", "C.1.0", T0, "12345678", None, "ok"),
        ]
        first = await store.save_received_batch("b1", rows, source="node-a")
        assert not first.duplicate
        assert first.result.inserted == 3
        again = await store.save_received_batch("b1", rows, source="node-a")
        assert again.duplicate
        assert again.result.total == 0
        other = await store.save_received_batch("b2", rows[:1], source="node-a")
        assert (other.duplicate, other.result.unchanged) == (False, 1)
        stored = await store.readings("far-1")
        assert [r.value for r in stored] == [Decimal("1.50"), Decimal("1.75")]
        meters = {m.id: m for m in await store.meters()}
        assert meters["far-1"].protocol == "forwarded"
        assert meters["far-1"].line_id == "from:node-a"
        report = await store.check_integrity()
        assert report.ok, report.problems
        with pytest.raises(InputError):
            await store.save_received_batch("", rows, source="node-a")
