# ruff: noqa: ARG002
"""HeadEnd end to end: simulated IEC 62056-21 meters on simulated lines, a real store (SQLite and PostgreSQL),
schedules on virtual time, a link cut for hours, live reload and a clean stop."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from metercom.clock import VirtualClock
from metercom.service.collector import RetryPolicy
from metercom.service.config_model import LineConfig, MeterConfig
from metercom.service.config_store import ConfigStore
from metercom.service.headend import HeadEnd
from metercom.service.meters import Borrowed, LinkPool
from metercom.service.store import Store
from metercom.sim.iec21 import Iec21Meter, Iec21MeterConfig
from metercom.transport import LineSettings, SimulatedLine, Transport

START = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture
def vclock() -> VirtualClock:
    # The store works in a thread in real time: give it a little real time before the clock jumps
    # to the next timer, or a configuration apply would take "hours" of virtual time.
    return VirtualClock(START, real_grace_s=0.005)


def fleet(meters: dict[str, str], *, every: str = "1h", lines: tuple[str, ...] = ("opt-1", "opt-2")) -> str:
    """A configuration: IEC meters (id -> line), one group, a billing plan, one interval schedule."""
    text = ['[service]\nname = "test"\n']
    for n, line in enumerate(lines):
        text.append(f'[[lines]]\nid = "{line}"\nurl = "serial:///dev/ttyTEST{n}"\ntype = "serial"\n')
    for n, (meter, line) in enumerate(meters.items()):
        text.append(
            f'[[meters]]\nid = "{meter}"\nprotocol = "iec21"\nline = "{line}"\n'
            f'address = {{ device = "{1000 + n}" }}\ngroups = ["all"]\n'
        )
    text.append('[[groups]]\nid = "all"\n')
    text.append('[[plans]]\nid = "billing"\nobjects = ["1.8.0", "2.8.0"]\n')
    text.append(f'[[schedules]]\nid = "hourly"\ngroup = "all"\nplan = "billing"\nevery = "{every}"\n')
    return "\n".join(text)


class SimFleet:
    """One simulated line per configured line id, each with one simulated meter answering every address."""

    def __init__(self) -> None:
        self.lines: dict[str, SimulatedLine] = {}
        self.meters: dict[str, Iec21Meter] = {}
        self.tasks: list[asyncio.Task[None]] = []

    def add(self, line_id: str) -> SimulatedLine:
        line = SimulatedLine(LineSettings.parse("7E1", 300), name=line_id)
        meter = Iec21Meter(Iec21MeterConfig())
        self.lines[line_id], self.meters[line_id] = line, meter
        self.tasks.append(asyncio.create_task(meter.serve(line.b)))
        return line

    async def open(self, line: LineConfig, meter: MeterConfig) -> Transport:
        return Borrowed(self.lines[line.id].a)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def until(clock: VirtualClock, hours: float) -> None:
    """Sleep until ``hours`` after START (store work runs in real time and may move the clock)."""
    await asyncio.sleep(max(0.0, (START + timedelta(hours=hours) - clock.now()).total_seconds()))


async def make(
    store_url: str, text: str, sims: SimFleet, **options: object
) -> tuple[Store, ConfigStore, HeadEnd]:
    store = await Store.open(store_url)
    configs = ConfigStore(store)
    await configs.apply(text, actor="test")
    headend = HeadEnd(store, configs, links=LinkPool(sims.open), **options)  # type: ignore[arg-type]
    return store, configs, headend


async def test_simulated_day_with_a_cut_link_stores_every_read_once(
    store_url: str, vclock: VirtualClock
) -> None:
    sims = SimFleet()
    for line in ("opt-1", "opt-2"):
        sims.add(line)
    text = fleet({"m-1": "opt-1", "m-2": "opt-2"})
    store, _, headend = await make(store_url, text, sims, retry=RetryPolicy(transport_retries=2))
    await headend.start()

    async def outage() -> None:
        await until(vclock, 5.5)  # 05:30 .. 09:30: fires at 06, 07, 08, 09 are lost
        sims.lines["opt-2"].cut()
        await until(vclock, 9.5)
        sims.lines["opt-2"].restore()

    cut = asyncio.create_task(outage())
    await until(vclock, 23.9)
    await cut
    # The store works in a thread in real time; while it does, the virtual clock may jump to the
    # next timer, so stop the schedules before waiting for the last reads to be stored.
    await headend.schedules.stop()
    await headend.wait_idle()
    status = {s.meter_id: s for s in headend.status()}
    await headend.stop()

    for meter_id, expected in (("m-1", 23), ("m-2", 19)):
        rows = await store.readings(meter_id, obis="1-0:1.8.0*255")
        assert len(rows) == expected, meter_id
        assert len({r.capture_time for r in rows}) == expected  # once each
        hours = Counter(r.capture_time.hour for r in rows)
        assert all(n == 1 for n in hours.values())
        assert status[meter_id].reads_ok == expected
    down = [r.capture_time.hour for r in await store.readings("m-2", obis="1-0:2.8.0*255")]
    assert not {6, 7, 8, 9} & set(down)
    assert status["m-2"].available
    assert status["m-2"].consecutive_failures == 0
    markers = await store.markers("m-1")
    newest = (await store.readings("m-1", obis="1-0:1.8.0*255"))[-1].capture_time
    assert markers["1-0:1.8.0*255"] == newest
    assert (await store.check_integrity()).ok
    await sims.close()
    await store.close()


async def test_two_meters_on_one_serial_line_never_overlap(store_url: str, vclock: VirtualClock) -> None:
    sims = SimFleet()
    line = sims.add("opt-1")
    text = fleet({"m-1": "opt-1", "m-2": "opt-1", "m-3": "opt-1"}, lines=("opt-1",))
    store, _, headend = await make(store_url, text, sims)
    writes: list[tuple[float, bytes]] = []
    original = line.a.write

    async def spy(data: bytes) -> None:
        writes.append((asyncio.get_running_loop().time(), data))
        await original(data)

    line.a.write = spy  # type: ignore[method-assign]
    await headend.start()
    await until(vclock, 2.9)
    await headend.schedules.stop()
    await headend.wait_idle()
    lines = {s.line_id: s for s in headend.line_status()}
    await headend.stop()
    # Each conversation starts with a request "/?<address>!"; the meter answers every address, so
    # overlapping conversations would garble each other: every request must get its readout.
    requests = [data for _, data in writes if data.startswith(b"/?")]
    assert len(requests) == 6  # fires at 01:00 and 02:00
    assert sims.meters["opt-1"].stats.protocol_errors == 0
    assert sims.meters["opt-1"].stats.readouts_sent == 6
    assert lines["opt-1"].peak_running == 1
    for meter_id in ("m-1", "m-2", "m-3"):
        assert len(await store.readings(meter_id, obis="1-0:1.8.0*255")) == 2
    await sims.close()
    await store.close()


async def test_live_reload_adds_and_removes_meters(store_url: str, vclock: VirtualClock) -> None:
    sims = SimFleet()
    for line in ("opt-1", "opt-2"):
        sims.add(line)
    store, configs, headend = await make(store_url, fleet({"m-1": "opt-1"}), sims)
    await headend.start()
    await until(vclock, 1.1)
    await headend.wait_idle()
    await configs.apply(fleet({"m-2": "opt-2"}), actor="test")
    await until(vclock, 2.1)
    await headend.schedules.stop()
    await headend.wait_idle()
    ids = [s.meter_id for s in headend.status()]
    await headend.stop()
    assert ids == ["m-2"]
    assert len(await store.readings("m-1", obis="1-0:1.8.0*255")) == 1
    assert len(await store.readings("m-2", obis="1-0:1.8.0*255")) == 1
    await sims.close()
    await store.close()


async def test_stop_is_bounded_with_a_conversation_in_flight(store_url: str, vclock: VirtualClock) -> None:
    sims = SimFleet()
    for line in ("opt-1", "opt-2"):
        sims.add(line)
    store, _, headend = await make(store_url, fleet({"m-1": "opt-1"}), sims, stop_timeout_s=0.5)
    await headend.start()
    await until(vclock, 1 + 1 / 3600)  # the readout at 300 Bd is under way
    assert headend.scheduler.line_status()[0].running == 1
    loop = asyncio.get_running_loop()
    began = loop.time()
    await headend.stop()
    assert loop.time() - began <= 0.5 + 1e-6
    assert headend.scheduler.idle
    await sims.close()
    await store.close()


async def test_status_shows_next_read(store_url: str, vclock: VirtualClock) -> None:
    sims = SimFleet()
    for line in ("opt-1", "opt-2"):
        sims.add(line)
    store, _, headend = await make(store_url, fleet({"m-1": "opt-1"}), sims)
    await headend.start()
    await asyncio.sleep(0)
    (row,) = headend.status()
    now = vclock.now()
    assert row.next_read_at is not None
    assert now < row.next_read_at <= now + timedelta(hours=1)
    assert row.next_read_at.minute == row.next_read_at.second == 0
    assert row.to_json()["meter_id"] == "m-1"
    await headend.stop()
    await sims.close()
    await store.close()
