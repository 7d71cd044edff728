"""ModbusSession and ModbusDevice against scripted peers and the simulator, over the simulated line and TCP.

The frame vectors of protocols.md 5.1 are checked here from the client side: the request bytes
the session puts on the wire, and the readings (scaled, with units and OBIS codes) it makes of
the reply bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pymodbus.pdu.register_message import ReadInputRegistersRequest, WriteSingleRegisterRequest

from metercom.clock import VirtualClock
from metercom.codec.modbus import (
    GatewayTargetFailedToRespond,
    IllegalDataAddress,
    IllegalFunction,
    ServerDeviceFailure,
    encode_rtu,
    rtu_silence_s,
)
from metercom.errors import (
    ConfigError,
    FrameError,
    InputError,
    LocalProtocolError,
    RemoteProtocolError,
    TransportTimeout,
)
from metercom.model.modbus_profile import ActionSlot, load_modbus_profile, profile_from_toml
from metercom.session.modbus import ModbusSession, open_modbus
from metercom.sim.modbus import ModbusBus, PhaseValues, SimulatedModbusDevice, StaticPhaseValues, build_bus
from metercom.transport import LineSettings, SimulatedEnd, SimulatedLine, Transport, serve

LINE = LineSettings(9600)  # 8N1, the PZEM's format
CHAR_S = LINE.char_time_s
T35 = rtu_silence_s(9600, 10)

READ_10 = bytes.fromhex("01 04 00 00 00 0A 70 0D")
REPLY_1 = bytes.fromhex("01 04 14 08 FC 04 D2 00 00 0B 16 00 00 30 39 00 00 01 F4 00 63 00 00 EA 0D")
REPLY_2 = bytes.fromhex("02 04 14 08 FD 86 A0 00 01 A0 D8 00 02 56 78 00 12 01 F3 00 64 FF FF 10 E1")


class Script:
    """A peer on end b that checks each request and answers with given bytes (or nothing)."""

    def __init__(self, end: SimulatedEnd, steps: Sequence[tuple[bytes, Sequence[bytes]]]) -> None:
        self.end = end
        self.steps = list(steps)
        self.received: list[bytes] = []
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        for request, replies in self.steps:
            data = b""
            while len(data) < len(request):
                data += await self.end.read(256)
            self.received.append(data)
            assert data == request, f"expected {request.hex(' ')}, got {data.hex(' ')}"
            await asyncio.sleep(T35)
            for reply in replies:
                await self.end.write(reply)
                await self.end.drain()

    async def done(self) -> None:
        await asyncio.wait_for(self.task, 10)


@asynccontextmanager
async def scripted(
    steps: Sequence[tuple[bytes, Sequence[bytes]]], **options: object
) -> AsyncIterator[tuple[ModbusSession, Script]]:
    line = SimulatedLine(LINE)
    script = Script(line.b, steps)
    session = ModbusSession(line.a, **options)  # type: ignore[arg-type]
    try:
        yield session, script
    finally:
        script.task.cancel()
        await asyncio.gather(script.task, return_exceptions=True)
        await line.close()


@asynccontextmanager
async def simulated(bus: ModbusBus, **options: object) -> AsyncIterator[tuple[ModbusSession, SimulatedLine]]:
    line = SimulatedLine(LINE)
    task = bus.attach(line)
    session = ModbusSession(line.a, **options)  # type: ignore[arg-type]
    try:
        yield session, line
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await line.close()


# -- protocols.md 5.1 vectors, client side ---------------------------------------------------------


async def test_reading_slave_1_gives_the_vector_values(vclock: VirtualClock) -> None:
    async with scripted([(READ_10, [REPLY_1])]) as (session, script):
        readings = await session.device(1, "pzem004t").read()
        await script.done()
    values = {r.address: (r.value, r.unit, str(r.obis) if r.obis else None) for r in readings}
    assert values == {
        "voltage": (Decimal("230.0"), "V", "1-0:12.7.0*255"),
        "current": (Decimal("1.234"), "A", "1-0:11.7.0*255"),
        "active_power": (Decimal("283.8"), "W", "1-0:1.7.0*255"),
        "active_energy": (Decimal("12.345"), "kWh", "1-0:1.8.0*255"),
        "frequency": (Decimal("50.0"), "Hz", "1-0:14.7.0*255"),
        "power_factor": (Decimal("0.99"), None, "1-0:13.7.0*255"),
        "alarm": (False, None, None),
    }
    assert readings[1].raw == "000004d2"  # low word first on the wire, shown as the 32-bit value
    # 8 request characters, t3.5, 25 reply characters: the wire time of one poll.
    assert vclock.monotonic() == pytest.approx(8 * CHAR_S + T35 + 25 * CHAR_S)


async def test_reading_slave_2_combines_low_word_first() -> None:
    request = encode_rtu(2, bytes.fromhex("04 0000 000A"))
    async with scripted([(request, [REPLY_2])]) as (session, script):
        raw = await session.device(2, "pzem004t").read_raw()
        await script.done()
    assert raw == {
        "voltage": 2301,
        "current": 100000,
        "active_power": 172248,
        "active_energy": 1201784,
        "frequency": 499,
        "power_factor": 100,
        "alarm": 0xFFFF,
    }
    values = {r.address: r.value for r in load_modbus_profile("pzem004t").readings(raw)}
    assert values["current"] == Decimal("100.000")
    assert values["active_power"] == Decimal("17224.8")
    assert values["active_energy"] == Decimal("1201.784")
    assert values["power_factor"] == Decimal("1.00")
    assert values["alarm"] is True


async def test_reset_energy_and_its_error_reply() -> None:
    steps = [(bytes.fromhex("01 42 80 11"), [bytes.fromhex("01 42 80 11")])]
    steps.append((bytes.fromhex("01 42 80 11"), [bytes.fromhex("01 C2 04 70 A3")]))
    async with scripted(steps) as (session, script):
        device = session.device(1, "pzem004t")
        await device.reset_energy()
        with pytest.raises(ServerDeviceFailure, match="exception 0x04 SERVER DEVICE FAILURE") as info:
            await device.reset_energy()
        await script.done()
    assert info.value.function == 0x42
    assert session.scheduler.stats[1].attempts == 2  # a refusal is not retried


async def test_exception_reply_raises_its_class() -> None:
    async with scripted([(READ_10, [bytes.fromhex("01 84 02 C2 C1")])]) as (session, script):
        with pytest.raises(IllegalDataAddress, match="unit 1 refused function 0x04"):
            await session.read_input_registers(1, 0, 10)
        await script.done()


async def test_general_address_requests() -> None:
    steps = [
        (bytes.fromhex("F8 03 00 01 00 02 81 A2"), [encode_rtu(0xF8, bytes.fromhex("03 04 08 FC 00 01"))]),
        (bytes.fromhex("F8 06 00 02 00 02 BD A2"), [bytes.fromhex("F8 06 00 02 00 02 BD A2")]),
    ]
    async with scripted(steps) as (session, script):
        assert await session.read_holding_registers(0xF8, 1, 2) == [2300, 1]
        await session.write_register(0xF8, 2, 2)
        await script.done()


# -- corrupt and foreign frames --------------------------------------------------------------------


async def test_a_crc_error_is_retried_then_reported() -> None:
    bad = bytearray(REPLY_1)
    bad[5] ^= 0x01
    async with scripted([(READ_10, [bytes(bad)])] * 3, timeout_s=0.1, retries=2) as (session, script):
        with pytest.raises(FrameError, match="CRC mismatch"):
            await session.read_input_registers(1, 0, 10)
        await script.done()
    assert session.scheduler.stats[1].attempts == 3
    assert session.stats.corrupt_frames == 3


async def test_a_crc_error_then_a_good_reply_succeeds() -> None:
    bad = bytearray(REPLY_1)
    bad[5] ^= 0x01
    async with scripted([(READ_10, [bytes(bad)]), (READ_10, [REPLY_1])], timeout_s=0.1) as (session, script):
        assert (await session.read_input_registers(1, 0, 10))[0] == 2300
        await script.done()


async def test_frames_from_other_units_and_noise_are_skipped() -> None:
    """A late reply of another unit, and a driver glitch, do not count as the answer."""
    late = encode_rtu(9, bytes.fromhex("04 02 00 01"))
    async with scripted([(READ_10, [late, b"\x00" + REPLY_1])]) as (session, script):
        assert (await session.read_input_registers(1, 0, 10))[5] == 12345
        await script.done()
    assert session.stats.ignored_frames == 1
    assert session.stats.noise_bytes == 1


async def test_no_reply_is_a_timeout_after_the_retries(vclock: VirtualClock) -> None:
    async with scripted([], timeout_s=0.1, retries=1) as (session, _):
        with pytest.raises(TransportTimeout, match=r"unit 1: no reply to function 0x04 within 0\.1 s"):
            await session.read_input_registers(1, 0, 10)
    # two attempts: request, 0.1 s timeout; the second waits t3.5 after the first
    assert vclock.monotonic() == pytest.approx(2 * (8 * CHAR_S + 0.1) + T35)


@pytest.mark.parametrize(
    ("reply_pdu", "match"),
    [
        ("04 13 08FC 04D2 0000 0B16 0000 3039 0000 01F4 0063 00", "byte count 20"),
        ("04 02 08FC", "must have 22 bytes"),
        ("84 02 00", "exception response has 2 bytes"),
    ],
)
async def test_malformed_read_replies(reply_pdu: str, match: str) -> None:
    async with scripted([(READ_10, [encode_rtu(1, bytes.fromhex(reply_pdu))])], retries=0) as (session, _):
        with pytest.raises(RemoteProtocolError, match=match):
            await session.read_input_registers(1, 0, 10)


async def test_a_write_reply_must_echo_the_request() -> None:
    request = encode_rtu(1, bytes.fromhex("06 0001 0064"))
    reply = encode_rtu(1, bytes.fromhex("06 0001 0065"))
    async with scripted([(request, [reply])], retries=0) as (session, _):
        with pytest.raises(RemoteProtocolError, match="does not echo"):
            await session.write_register(1, 1, 100)


async def test_request_checks() -> None:
    line = SimulatedLine(LINE)
    session = ModbusSession(line.a)
    with pytest.raises(InputError):
        await session.read_input_registers(0, 0, 1)
    with pytest.raises(LocalProtocolError):
        await session.read_input_registers(1, 0, 126)  # pymodbus refuses to encode it
    with pytest.raises(InputError):
        await session.write_register(1, 0, 70000)
    with pytest.raises(InputError):
        await session.write_registers(1, 0, [])
    with pytest.raises(LocalProtocolError):
        await session.broadcast(ReadInputRegistersRequest(address=0, count=1))
    with pytest.raises(LocalProtocolError):
        await session.execute(1, WriteSingleRegisterRequest(address=0))  # no value to write
    with pytest.raises(InputError):
        ModbusSession(line.a, framing="ascii")  # type: ignore[arg-type]
    await line.close()


# -- against the simulator ---------------------------------------------------------------------------


async def test_consecutive_reads_keep_the_t35_gap(vclock: VirtualClock) -> None:
    async with simulated(build_bus({1: "pzem004t"}, integrate_energy=False)) as (session, _):
        device = session.device(1, "pzem004t")
        await device.read()
        first = vclock.monotonic()
        await device.read()
        second = vclock.monotonic() - first
    assert first == pytest.approx(33 * CHAR_S + T35)
    assert second == pytest.approx(33 * CHAR_S + 2 * T35)  # the master's own t3.5 before sending


async def test_pmtr3_read_clock_mode_relays_slots_events(vclock: VirtualClock) -> None:
    values = StaticPhaseValues(
        {1: PhaseValues(230.0, 1.0, 50.0, 1.0, None), 2: PhaseValues(231.0), 3: PhaseValues()}
    )
    bus = ModbusBus([SimulatedModbusDevice("pmtr3", 7, values=values)])
    async with simulated(bus) as (session, _):
        device = session.device(7, "pmtr3")
        readings = {r.address: r for r in await device.read()}
        assert readings["l1.voltage"].value == Decimal("230.0")
        assert str(readings["l1.voltage"].obis) == "1-0:32.7.0*255"
        assert readings["l2.voltage"].value == Decimal("231.0")
        assert readings["l1.active_power"].value == Decimal("230.0")  # V x I x PF
        assert readings["voltage_mode"].value == "LN"
        assert readings["model_code"].value == Decimal(0x5033)
        assert readings["l1.current"].captured_at == vclock.now().replace(microsecond=0)

        target = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
        assert await device.set_clock(target) == target
        assert (await device.read_clock() - target).total_seconds() < 1

        await device.set_voltage_mode("LL")
        assert await device.read_voltage_mode() == "LL"
        ll = {r.address: r for r in await device.read()}
        assert str(ll["l1.voltage"].obis) == "1-0:32.7.128*255"
        assert ll["l1.voltage"].value == Decimal("399.2")  # L1-L2 of 230 V and 231 V, 120 degrees apart

        assert await device.read_relays() == (True, False, False, False)
        assert await device.set_relay(1, False) == (False, False, False, False)
        opened = {r.address: r.value for r in await device.read()}
        assert opened["l1.current"] == Decimal("0.000")

        slot = ActionSlot(2, True, 1, "close", "at_time", int(target.timestamp()) + 60)
        await device.write_action_slot(slot)
        slots = await device.read_action_slots()
        assert slots[2] == slot
        assert len(slots) == 8
        await asyncio.sleep(61)
        assert (await device.read_relays())[0] is True
        assert (await device.read_action_slots())[2].fired

        events = await device.read_events()
        names = [e.name for e in events]
        assert names == [
            "power_on",
            "clock_set",
            "voltage_mode_changed",
            "relay_opened",
            "relay_closed",
            "action_fired",
        ]
        assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
        assert events[4].time == datetime.fromtimestamp(slot.parameter, UTC)
        assert [e.name for e in await device.read_events(since_seq=4)] == ["relay_closed", "action_fired"]
        assert await device.read_events(since_seq=6) == []

        await device.set_alarm_threshold(100)
        assert await device.read_alarm_threshold() == Decimal(100)
        await device.reset_energy()
        energies = {r.address: r.value for r in await device.read() if r.address.endswith("energy")}
        assert set(energies.values()) == {Decimal("0.000")}


async def test_event_ring_wraps_and_keeps_the_newest() -> None:
    bus = ModbusBus([SimulatedModbusDevice("pmtr3", 3)])
    async with simulated(bus) as (session, _):
        device = session.device(3, "pmtr3")
        for i in range(40):
            await device.set_voltage_mode("LL" if i % 2 == 0 else "LN")
        events = await device.read_events()
    assert len(events) == 32
    assert events[0].seq == 41 - 31
    assert events[-1].seq == 41
    assert all(e.name == "voltage_mode_changed" for e in events)


async def test_change_address_and_confirm() -> None:
    bus = build_bus({1: "pzem004t"})
    async with simulated(bus) as (session, _):
        moved = await session.device(1, "pzem004t").change_address(9)
        assert moved.unit == 9
        assert (await moved.read_point("voltage")) == Decimal("230.0")
        with pytest.raises(TransportTimeout):
            await session.read_registers(1, "input", 0, 1, timeout_s=0.05, retries=0)
        with pytest.raises(InputError):
            await moved.change_address(248)


async def test_profile_features_missing_on_a_pzem() -> None:
    bus = build_bus({1: "pzem004t"})
    async with simulated(bus) as (session, _):
        device = session.device(1, "pzem004t")
        with pytest.raises(ConfigError, match="keeps no time"):
            await device.set_clock()
        with pytest.raises(ConfigError, match="keeps no time"):
            await device.read_clock()
        with pytest.raises(ConfigError):
            await device.read_events()
        with pytest.raises(ConfigError):
            await device.read_relays()
        with pytest.raises(ConfigError):
            await device.set_voltage_mode("LL")
        with pytest.raises(InputError, match="not writable"):
            await device.write_point("voltage", 1)
        with pytest.raises(IllegalFunction):
            await session.write_registers(1, 1, [5, 6])  # a PZEM has no function 0x10
        with pytest.raises(IllegalDataAddress):
            await session.read_input_registers(1, 0, 11)


async def test_broadcast_reaches_every_unit() -> None:
    bus = build_bus({1: "pzem004t", 2: "pzem004t", 3: "pmtr3"})
    async with simulated(bus) as (session, _):
        await session.broadcast(WriteSingleRegisterRequest(address=1, registers=[777], dev_id=0))
        for unit in (1, 2, 3):
            assert await session.read_holding_registers(unit, 1, 1) == [777]


async def test_scan_finds_profiles() -> None:
    bus = build_bus({2: "pzem004t", 5: "pmtr3"})
    async with simulated(bus) as (session, _):
        found = await session.scan(range(1, 7), timeout_s=0.05)
    assert [(r.unit, r.profile) for r in found] == [(2, "pzem004t"), (5, "pmtr3")]


async def test_scan_reports_an_unknown_device() -> None:
    other = load_modbus_profile("pmtr3")
    async with simulated(build_bus({4: "pzem004t"})) as (session, _):
        found = await session.scan([4], profiles=[other], timeout_s=0.05)
    assert found[0].profile is None
    assert "exception 0x02" in found[0].detail


# -- TCP -------------------------------------------------------------------------------------------


async def test_modbus_tcp_against_the_simulator() -> None:
    bus = build_bus({1: "pzem004t", 2: "pmtr3"})
    server = await bus.serve_url("tcp://127.0.0.1:0")
    try:
        async with await open_modbus(server.url, timeout_s=0.5) as session:
            assert session.framing == "tcp"
            readings = await session.device(1, "pzem004t").read()
            assert readings[0].value == Decimal("230.0")
            assert len(await session.device(2, "pmtr3").read()) == 27
            with pytest.raises(GatewayTargetFailedToRespond):
                await session.read_input_registers(3, 0, 1)
            assert [r.unit for r in await session.scan(range(1, 5))] == [1, 2]
    finally:
        server.close()
        await server.wait_closed()


async def test_rtu_over_tcp_against_the_simulator() -> None:
    bus = build_bus({4: "pzem004t"})
    server = await bus.serve_url("tcp://127.0.0.1:0", framing="rtu")
    try:
        async with await open_modbus(server.url, framing="rtu", timeout_s=0.5) as session:
            assert session.framing == "rtu"
            assert (await session.read_input_registers(4, 0, 10))[0] == 2300
    finally:
        server.close()
        await server.wait_closed()


async def test_a_reply_cut_short_is_a_frame_error_even_without_a_silence() -> None:
    """With a silence longer than the reply timeout, the deadline flushes the partial frame."""
    async with scripted([(READ_10, [REPLY_1[:12]])], timeout_s=0.1, retries=0, silence_s=5.0) as (session, _):
        with pytest.raises(FrameError, match="12-byte frame"):
            await session.read_input_registers(1, 0, 10)


async def test_a_broken_modbus_tcp_stream_is_not_retried_in_place() -> None:
    async def garbage(transport: Transport) -> None:
        await transport.read(64)
        await transport.write(b"\x00\x01\x00\x07\x00\x03\x01\x84\x02")  # protocol id 7
        await asyncio.sleep(10)

    server = await serve("tcp://127.0.0.1:0", garbage)
    try:
        async with await open_modbus(server.url, retries=0) as session:
            with pytest.raises(RemoteProtocolError, match="protocol id 7"):
                await session.read_input_registers(1, 0, 1)
    finally:
        server.close()
        await server.wait_closed()


async def test_profile_without_commands() -> None:
    profile = profile_from_toml(
        'name = "bare"\nphases = 1\nfunctions = [4]\n[identify]\ntable = "input"\naddress = 0\ncount = 1\n'
        '[[read]]\ntable = "input"\naddress = 0\ncount = 1\n'
        '[[point]]\nname = "v"\ntable = "input"\naddress = 0\n'
    )
    line = SimulatedLine(LINE)
    device = ModbusSession(line.a).device(1, profile)
    with pytest.raises(ConfigError, match="no energy reset"):
        await device.reset_energy()
    with pytest.raises(ConfigError, match="no address register"):
        await device.change_address(2)
    with pytest.raises(ConfigError, match="has no alarm threshold"):
        await device.read_alarm_threshold()
    with pytest.raises(ConfigError, match="has no relays"):
        await device.read_action_slots()
    assert "unit 1 bare" in repr(device)
    assert "rtu" in repr(device.session)
    await line.close()
