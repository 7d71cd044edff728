"""Profile rows and events go through the outbox like readings (same transaction as their save,
superseded when revised), are forwarded and stored once by the receiver; the receiver forgets
batch ids after its retention."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from metercom.errors import InputError, UploadError
from metercom.service.central import CentralReceiver
from metercom.service.forward import Forwarder, ForwardPolicy, HttpSink, Upstream
from metercom.service.forward.wire import decode_batch, encode_batch, is_reading
from metercom.service.secrets import Secret
from metercom.service.store import MeterEvent, OutboxBatch, ProfileRow, Store
from metercom.service.store.outbox import EVENT, PROFILE_ROW

from .conftest import T0, Fleet

LP = "1-0:99.1.0*255"
LOG = "0-0:99.98.0*255"
SECRET = Secret("profiles", origin="test")


def rows(first: int, count: int, *, bump: int = 0) -> list[ProfileRow]:
    return [
        ProfileRow(
            T0 + timedelta(minutes=15 * n),
            {"1-0:1.8.0*255": Decimal(n * 10 + bump) / 4, "0-0:96.10.1*255": n % 3},
            units={"1-0:1.8.0*255": "kWh"},
        )
        for n in range(first, first + count)
    ]


def events(*, note: str = "") -> list[MeterEvent]:
    return [
        MeterEvent(T0, 1, LOG, "power down" + note),
        MeterEvent(T0, 2, LOG, "power up" + note, {"phase": "L1"}),
        MeterEvent(T0 + timedelta(hours=1), 40, LOG, "cover opened" + note),
    ]


async def test_profile_rows_and_events_are_enqueued_and_superseded(
    store_url: str, fleet: Callable[..., Fleet]
) -> None:
    f = fleet(1)
    async with await f.open(store_url) as store:
        await store.register_outbox_sinks(["s"])
        await f.write(store, 0)  # 4 readings
        await store.save_profile_rows("m000", LP, rows(0, 4))
        await store.save_events("m000", events())
        (backlog,) = await store.outbox_backlog()
        assert backlog.pending == 4 + 4 + 3
        # A revised profile row and a changed event (code 2 only) supersede their pending values.
        await store.save_profile_rows("m000", LP, rows(1, 1, bump=1))
        await store.save_events("m000", [MeterEvent(T0, 2, LOG, "power up, corrected", {"phase": "L1"})])
        batch = await store.claim_outbox_batch("s", limit=100)
        assert batch is not None
        kinds = [i.value_kind for i in batch.items]
        assert kinds.count(PROFILE_ROW) == 4
        assert kinds.count(EVENT) == 3
        assert sum(map(is_reading, batch.items)) == 4
        profile = {i.capture_time: i for i in batch.items if i.value_kind == PROFILE_ROW}
        assert profile[T0 + timedelta(minutes=15)].revision == 1
        assert json.loads(profile[T0 + timedelta(minutes=15)].value_text or "")["values"][
            "1-0:1.8.0*255"
        ] == [
            "decimal",
            "2.75",
        ]
        found = {json.loads(i.value_text or "")["code"]: i for i in batch.items if i.value_kind == EVENT}
        assert set(found) == {1, 2, 40}
        assert json.loads(found[2].value_text or "")["description"] == "power up, corrected"
        assert found[1].revision == 0  # code 1 at the same time was not superseded by code 2
        await store.confirm_outbox_batch("s", batch.batch_id)
        assert (await store.outbox_backlog())[0].pending == 0


async def test_a_failed_save_enqueues_nothing(store_url: str, fleet: Callable[..., Fleet]) -> None:
    f = fleet(1)
    async with await f.open(store_url) as store:
        await store.register_outbox_sinks(["s"])
        with pytest.raises(InputError):
            await store.save_events("nope", events())  # unknown meter: the transaction rolls back
        assert (await store.outbox_backlog())[0].pending == 0


class LoseFirst:
    """Loses the confirmation of the first batch (after the receiver stored it)."""

    def __init__(self, inner: HttpSink) -> None:
        self.inner = inner
        self.sent: list[OutboxBatch] = []

    @property
    def name(self) -> str:
        return self.inner.name

    async def send(self, batch: OutboxBatch) -> None:
        await self.inner.send(batch)
        self.sent.append(batch)
        if len(self.sent) == 1:
            raise UploadError("confirmation lost (injected)")

    async def close(self) -> None:
        await self.inner.close()


async def test_profile_rows_and_events_arrive_once(tmp_path: Path, fleet: Callable[..., Fleet]) -> None:
    f = fleet(2)
    async with await Store.open(tmp_path / "central.db") as central, await f.open(tmp_path / "l.db") as local:
        receiver = CentralReceiver(central, secret=SECRET)
        url = await receiver.start_http("http://127.0.0.1:0")
        sink = LoseFirst(HttpSink("central", url, source="node", secret=SECRET))
        policy = ForwardPolicy(batch_size=7, interval_s=1, retry_min_s=0.1, retry_max_s=1)
        forwarder = Forwarder(local, [Upstream(sink, policy)])  # type: ignore[list-item]
        await forwarder.register()
        await f.write(local, 0)
        for meter in f.ids:
            await local.save_profile_rows(meter, LP, rows(0, 6))
            await local.save_events(meter, events())
        await local.save_profile_rows("m001", LP, rows(2, 1, bump=5))  # a revision
        await local.save_events("m001", [MeterEvent(T0, 40, LOG, "late")])  # a new event
        async with forwarder:
            await forwarder.wait_drained(poll_s=0.5)
        assert receiver.stats.duplicates == 1  # the first batch, resent with its id
        for meter in f.ids:
            want = [
                (r.capture_time, dict(r.values), dict(r.units), r.status)
                for r in await local.profile_rows(meter, LP)
            ]
            got = [
                (r.capture_time, dict(r.values), dict(r.units), r.status)
                for r in await central.profile_rows(meter, LP)
            ]
            assert got == want
            assert all(r.revision == 0 for r in await central.profile_rows(meter, LP))
            want_ev = [
                (e.time, e.code, e.log, e.description, dict(e.data)) for e in await local.events(meter)
            ]
            got_ev = [
                (e.time, e.code, e.log, e.description, dict(e.data)) for e in await central.events(meter)
            ]
            assert sorted(got_ev, key=str) == sorted(want_ev, key=str)  # stored in arrival order
            assert {(r.obis, r.capture_time, r.value) for r in await central.readings(meter)} == {
                (r.obis, r.capture_time, r.value) for r in await local.readings(meter)
            }
        assert receiver.stats.updated == receiver.stats.unchanged == 0
        assert (await central.check_integrity()).ok
        await receiver.close()


def test_the_wire_rejects_malformed_profile_rows_and_events() -> None:
    good = {
        "format": "metercom-batch/1",
        "batch_id": "b1",
        "source": "n",
        "readings": [],
        "profile_rows": [
            {
                "meter": "m",
                "profile": LP,
                "time": T0.isoformat(),
                "values": {"1-0:1.8.0*255": ["decimal", "1.5"]},
                "units": {},
                "status": "ok",
            }
        ],
        "events": [
            {"meter": "m", "log": LOG, "time": T0.isoformat(), "code": 7, "description": "", "data": None}
        ],
    }
    decoded = decode_batch(json.dumps(good).encode())
    assert len(decoded) == 2
    assert decoded.profile_rows[0][2].values == {"1-0:1.8.0*255": Decimal("1.5")}
    assert decoded.events[0][1].code == 7
    for path, value in [
        (("profile_rows", 0, "values"), {"x": ["decimal", "1,5"]}),
        (("profile_rows", 0, "values"), {"x": "1.5"}),
        (("profile_rows", 0, "time"), "2026-01-01T00:00:00"),
        (("events", 0, "code"), "7"),
        (("events", 0, "data"), [1]),
        (("events",), {"not": "a list"}),
    ]:
        bad = json.loads(json.dumps(good))
        target = bad
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        with pytest.raises(InputError):
            decode_batch(json.dumps(bad).encode())


def test_a_batch_of_readings_only_has_no_extra_arrays() -> None:
    body = json.loads(encode_batch(OutboxBatch("s", "b", ()), source="n"))
    assert set(body) == {"format", "batch_id", "source", "readings"}


async def test_the_receiver_forgets_batch_ids_after_its_retention(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "central.db") as central:
        receiver = CentralReceiver(central, keep_batch_ids=timedelta(days=1), expire_every=timedelta(hours=1))
        await receiver.start_http("http://127.0.0.1:0")  # starts the hourly expiry

        def batch(batch_id: str, value: int) -> bytes:
            return json.dumps(
                {
                    "format": "metercom-batch/1",
                    "batch_id": batch_id,
                    "source": "n",
                    "readings": [
                        {
                            "meter": "m",
                            "obis": "1-0:1.8.0*255",
                            "time": T0.isoformat(),
                            "kind": "decimal",
                            "value": str(value),
                            "unit": "kWh",
                            "status": "ok",
                        }
                    ],
                }
            ).encode()

        assert not (await receiver.receive(batch("old", 1))).duplicate
        assert (await receiver.receive(batch("old", 1))).duplicate
        await asyncio.sleep(20 * 3600)
        assert not (await receiver.receive(batch("new", 1))).duplicate
        assert (await receiver.receive(batch("old", 1))).duplicate  # 20 h < 1 day: still known
        await asyncio.sleep(6 * 3600)
        assert receiver.stats.batch_ids_expired == 1
        again = await receiver.receive(batch("old", 1))  # forgotten: stored again, as no change
        assert not again.duplicate
        assert (again.result.inserted, again.result.unchanged) == (0, 1)
        assert (await receiver.receive(batch("new", 1))).duplicate  # the newer id is still kept
        assert len(await central.readings("m")) == 1
        await receiver.close()
