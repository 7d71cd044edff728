"""Head-end adapters against simulated meters: DLMS over the wrapper on loopback TCP and HDLC on a
simulated line, Modbus PZEM-004T and pmtr3 units sharing one simulated RS-485 bus; what they
collect is saved through the collector into SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from metercom.clock import VirtualClock
from metercom.errors import ConfigError
from metercom.model.obis import Obis
from metercom.service.adapters import (
    DlmsMeterSession,
    MeterSessionFactory,
    ModbusMeterSession,
    ReservingCounterStore,
)
from metercom.service.collector import Collector
from metercom.service.config import parse_config
from metercom.service.config_model import FleetConfig, ReadPlan
from metercom.service.config_store import ConfigStore
from metercom.service.meters import Borrowed, MeterContext, NotSupportedError, open_meter_session
from metercom.service.scheduler import ConversationScheduler
from metercom.service.status import StatusBoard
from metercom.service.store import Store
from metercom.session.counters import FileCounterStore
from metercom.sim.dlms import DlmsMeterDevice, build_meter, secret_environment
from metercom.sim.modbus import build_bus, stop_serving
from metercom.transport import LineSettings, SimulatedLine, Transport, open_transport, serve

START = datetime(2026, 3, 28, 20, 0, tzinfo=UTC)  # the night Europe/Berlin moves to summer time
LP = Obis.parse("1-0:99.1.0*255")
ENV = secret_environment()


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock(START, real_grace_s=0.005)


def dlms_config(url: str, *, line_kind: str | None = None, physical: int | None = None) -> str:
    line = ""
    where = f'url = "{url}"'
    if line_kind is not None:
        line = f'[[lines]]\nid = "bus"\nurl = "{url}"\ntype = "{line_kind}"\nbaud = 9600\nformat = "8N1"\n'
        where = 'line = "bus"'
    address = "client = 1, logical = 1" + (f", physical = {physical}" if physical is not None else "")
    return f"""
[secrets]
guek = "env:METERCOM_SIM_GUEK"
gak = "env:METERCOM_SIM_GAK"
{line}
[[meters]]
id = "d-1"
protocol = "dlms"
{where}
address = {{ {address} }}
authentication = "high-gmac"
security = "authenticated-encrypted"
keys = {{ encryption = "secret:guek", authentication = "secret:gak" }}
device_profile = "generic"
"""


MODBUS_CONFIG = """
[[lines]]
id = "rs485"
url = "serial:///dev/ttySIM"
type = "rs485"
baud = 9600
format = "8N1"
response_timeout_s = 0.5

[[meters]]
id = "pzem-1"
protocol = "modbus"
line = "rs485"
address = { unit = 1 }
device_profile = "pzem004t"

[[meters]]
id = "p3-2"
protocol = "modbus"
line = "rs485"
address = { unit = 2 }
device_profile = "pmtr3"

[[meters]]
id = "p3-3"
protocol = "modbus"
line = "rs485"
address = { unit = 3 }
device_profile = "pmtr3"
"""

PLAN = ReadPlan(
    "p",
    objects=(Obis.parse("1.8.0"), Obis.parse("2.8.0"), Obis.parse("1.6.0"), Obis.parse("1-0:0.0.99*255")),
)


def context(config: FleetConfig, meter_id: str, transport: Transport) -> MeterContext:
    meter = config.meter(meter_id)
    return MeterContext(meter, config.line(meter.line), config, transport, env=ENV)


@asynccontextmanager
async def stored(url: str, text: str) -> AsyncIterator[tuple[Store, Collector, FleetConfig]]:
    store = await Store.open(url)
    configs = ConfigStore(store)
    await configs.apply(text, actor="test")
    applied = await configs.current()
    assert applied is not None
    collector = Collector(store, ConversationScheduler(), StatusBoard())
    collector.configure(applied.config)
    try:
        yield store, collector, applied.config
    finally:
        await store.close()


def dlms_device(vclock: VirtualClock, seed: int = 1) -> DlmsMeterDevice:
    return DlmsMeterDevice(build_meter("generic", clock=vclock, seed=seed, serial=f"{seed:08d}"))


async def test_dlms_wrapper_on_tcp_reads_plan_profile_clock_and_relay(
    store_url: str, vclock: VirtualClock, tmp_path: Path
) -> None:
    device = dlms_device(vclock)
    factory = MeterSessionFactory(state_dir=tmp_path)
    async with await serve("tcp://127.0.0.1:0", device.serve_wrapper) as server:
        text = dlms_config(server.url)
        async with stored(store_url, text) as (store, collector, config):
            transport = await open_transport(server.url)
            session = await factory(context(config, "d-1", transport))
            try:
                assert isinstance(session, DlmsMeterSession)
                assert session.capabilities.profiles
                assert session.capabilities.relay
                now = vclock.now()
                plan = ReadPlan(PLAN.id, PLAN.objects, profiles=(config_profile(timedelta(hours=6)),))
                data = await session.read(plan, since={}, now=now)
                meter_time = await session.read_clock()
                # registers: stamped with the meter's clock, the maximum demand with its own time
                by_code = {str(r.obis): r for r in data.readings}
                energy = by_code["1-0:1.8.0*255"]
                assert isinstance(energy.value, Decimal)
                assert energy.unit == "Wh"
                assert energy.captured_at == data.meter_time
                assert data.meter_time is not None
                assert abs((data.meter_time - now).total_seconds()) < 5
                assert by_code["1-0:1.6.0*255"].captured_at != data.meter_time
                assert data.missing == ("1-0:0.0.99*255",)
                # profile: every 15 minutes of the last 6 h, UTC, with units
                rows = data.profile_rows[str(LP)]
                assert len(rows) == 25  # both ends inclusive
                times = [r.capture_time for r in rows]
                assert all(t.tzinfo is UTC for t in times)
                assert all(b - a == timedelta(minutes=15) for a, b in itertools.pairwise(times))
                assert rows[-1].units["1-0:1.8.0*255"] == "Wh"
                # recovery reads exactly a range
                part = await session.read_profile(LP, times[3], times[6])
                assert [r.capture_time for r in part] == times[3:7]
                # clock: set five minutes ahead and read back
                assert abs((meter_time - now).total_seconds()) < 5
                await session.set_clock(meter_time + timedelta(minutes=5))
                ahead = await session.read_clock()
                assert abs((ahead - meter_time - timedelta(minutes=5)).total_seconds()) < 5
                # relay
                assert await session.read_relay()
                await session.disconnect()
                assert not await session.read_relay()
                assert not device.meter.connected
                await session.reconnect()
                assert await session.read_relay()
                saved = await collector.save(config.meter("d-1"), data)
                assert saved.inserted == len(data.readings) + 25
            finally:
                await session.close()
                await transport.close()
            assert len(await store.profile_rows("d-1", LP)) == 25
            assert (await store.marker("d-1", LP)) == times[-1]
            assert (await store.check_integrity()).ok
    # counters are durable under the state directory
    files = list((tmp_path / "dlms-counters").glob("*@d-1.json"))
    assert len(files) == 1
    assert (FileCounterStore(files[0]).load("own") or 0) > 1


def config_profile(history: timedelta) -> object:
    from metercom.service.config_model import ObjectRead

    return ObjectRead(LP, history)


async def test_dlms_hdlc_on_a_simulated_line_across_the_dst_change(
    store_url: str, vclock: VirtualClock, tmp_path: Path
) -> None:
    device = dlms_device(vclock, seed=2)
    line = SimulatedLine(LineSettings(9600), name="bus")
    text = dlms_config("serial:///dev/ttySIM", line_kind="rs485", physical=device.physical_address)
    await asyncio.sleep((datetime(2026, 3, 29, 4, 0, tzinfo=UTC) - vclock.now()).total_seconds())
    task = asyncio.create_task(device.serve_hdlc(line.b))
    try:
        async with stored(store_url, text) as (store, collector, config):
            factory = MeterSessionFactory(state_dir=tmp_path)
            session = await factory(context(config, "d-1", Borrowed(line.a)))
            try:
                now = datetime(2026, 3, 29, 4, 0, tzinfo=UTC)
                # 00:00 UTC .. 04:00 UTC spans 02:00 CET -> 03:00 CEST: 17 rows, none missing
                rows = await session.read_profile(LP, now - timedelta(hours=4), now)
                data = await session.read(PLAN, since={}, now=now)
            finally:
                await session.close()
            times = [r.capture_time for r in rows]
            assert len(times) == 17
            assert all(b - a == timedelta(minutes=15) for a, b in itertools.pairwise(times))
            await store.save_profile_rows("d-1", LP, rows)
            await collector.save(config.meter("d-1"), data)
            assert len(await store.profile_rows("d-1", LP)) == 17
            assert (await store.check_integrity()).ok
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_modbus_units_share_one_bus_scheduler(store_url: str, vclock: VirtualClock) -> None:
    bus = build_bus({1: "pzem004t", 2: "pmtr3", 3: "pmtr3"}, start=vclock.now())
    line = SimulatedLine(LineSettings(9600), name="rs485")
    task = bus.attach(line)
    factory = MeterSessionFactory()
    try:
        async with stored(store_url, MODBUS_CONFIG) as (store, collector, config):
            sessions = {
                m: await factory(context(config, m, Borrowed(line.a))) for m in ("pzem-1", "p3-2", "p3-3")
            }
            schedulers = {id(s.bus) for s in sessions.values() if isinstance(s, ModbusMeterSession)}
            assert len(schedulers) == 1  # one BusScheduler for the physical line
            plan = ReadPlan("p", objects=(Obis.parse("1.8.0"), Obis.parse("32.7.0"), Obis.parse("21.8.0")))
            results = await asyncio.gather(
                *(s.read(plan, since={}, now=vclock.now()) for s in sessions.values())
            )
            for meter_id, data in zip(sessions, results, strict=True):
                assert data.readings, meter_id
                await collector.save(config.meter(meter_id), data)
            pzem, p3 = sessions["pzem-1"], sessions["p3-2"]
            assert not pzem.capabilities.read_clock
            assert not pzem.capabilities.relay
            assert p3.capabilities.read_clock
            assert p3.capabilities.relay
            assert p3.capabilities.events
            assert results[0].meter_time is None
            assert results[1].meter_time is not None
            assert all(r.captured_at == results[1].meter_time for r in results[1].readings)
            with pytest.raises(NotSupportedError):
                await pzem.read_clock()
            with pytest.raises(NotSupportedError):
                await p3.read_profile(Obis.parse("99.1.0"), vclock.now(), vclock.now())
            await p3.set_clock(vclock.now() + timedelta(seconds=30))
            assert abs((await p3.read_clock() - vclock.now()).total_seconds() - 30) <= 2
            await p3.disconnect()
            assert not await p3.read_relay()
            await p3.reconnect()
            assert await p3.read_relay()
            events_plan = ReadPlan("e", events=(config_event(),))
            data = await p3.read(events_plan, since={}, now=vclock.now() + timedelta(minutes=1))
            codes = [e.description for e in data.events[str(config_event().obis)]]
            assert "power_on" in codes
            await collector.save(config.meter("p3-2"), data)
            stats = sessions["p3-3"].bus.stats  # type: ignore[attr-defined]
            assert {1, 2, 3} <= set(stats)
            assert len(await store.readings("pzem-1")) == 1  # a PZEM has no 32.7.0 (its voltage is 12.7.0)
            assert (await store.check_integrity()).ok
    finally:
        await stop_serving(task)


def config_event() -> object:
    from metercom.service.config_model import ObjectRead

    return ObjectRead(Obis.parse("0-0:99.98.0*255"), timedelta(days=1))


async def test_missing_keys_and_unknown_profiles_are_configuration_errors(vclock: VirtualClock) -> None:
    config = parse_config(dlms_config("tcp://127.0.0.1:9"))
    with pytest.raises(ConfigError):
        await open_meter_session(
            MeterContext(
                config.meter("d-1"),
                config.line(config.meter("d-1").line),
                config,
                Borrowed(SimulatedLine().a),
                env={},
            )
        )


def test_reserving_counter_store_writes_once_per_reserve(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    store = ReservingCounterStore(FileCounterStore(path), reserve=10)
    for value in range(1, 26):
        store.save("own", value)
    assert store.writes == 3  # 1 -> 11, 12 -> 22, 23 -> 33
    assert store.load("own") == 25
    assert FileCounterStore(path).load("own") == 33
    store.save("peer:guek", 7)
    assert FileCounterStore(path).load("peer:guek") is None
    store.flush()
    assert FileCounterStore(path).load("peer:guek") == 7
    # after a restart the next association starts above everything that may have been sent
    again = ReservingCounterStore(FileCounterStore(path), reserve=10)
    assert (again.load("own") or 0) >= 25
