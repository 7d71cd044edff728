"""The Modbus simulators: register contents, the protocols.md 5.1 reply vectors, behaviours, serving."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from metercom.clock import VirtualClock
from metercom.codec.modbus import encode_mbap, encode_rtu, rtu_silence_s
from metercom.errors import ConnectionLost, InputError
from metercom.model.modbus_profile import RegisterTable
from metercom.session.modbus import ModbusSession
from metercom.sim.modbus import (
    ModbusBus,
    PhaseValues,
    SimulatedModbusDevice,
    StaticPhaseValues,
    build_bus,
    stop_serving,
)
from metercom.transport import LineSettings, SimulatedLine, Transport, open_transport

REPLY_1 = bytes.fromhex("01 04 14 08 FC 04 D2 00 00 0B 16 00 00 30 39 00 00 01 F4 00 63 00 00 EA 0D")
REPLY_2 = bytes.fromhex("02 04 14 08 FD 86 A0 00 01 A0 D8 00 02 56 78 00 12 01 F3 00 64 FF FF 10 E1")
READ_10 = bytes.fromhex("04 0000 000A")


async def read_until_closed(transport: Transport) -> None:
    while True:
        await transport.read(64, timeout_s=1)


def reply(bus: ModbusBus, unit: int, pdu_hex: str) -> str | None:
    out = bus.respond(unit, bytes.fromhex(pdu_hex))
    return None if out is None else out.hex(" ").upper()


# -- vectors, server side ------------------------------------------------------------------------


async def test_default_pzem_answers_the_slave_1_vector() -> None:
    bus = build_bus({1: "pzem004t"}, integrate_energy=False)
    assert encode_rtu(1, bus.respond(1, READ_10) or b"") == REPLY_1


async def test_pzem_with_high_words_answers_the_slave_2_vector() -> None:
    values = StaticPhaseValues(PhaseValues(230.1, 100.0, 49.9, 1.00, 17224.8))
    device = SimulatedModbusDevice(
        "pzem004t", 2, values=values, energy_wh=1201784, alarm_threshold_w=10000, integrate_energy=False
    )
    bus = ModbusBus([device])
    assert encode_rtu(2, bus.respond(2, READ_10) or b"") == REPLY_2


async def test_reset_energy_vector() -> None:
    bus = build_bus({1: "pzem004t"}, integrate_energy=False)
    assert encode_rtu(1, bus.respond(1, b"\x42") or b"") == bytes.fromhex("01 42 80 11")
    assert bus.devices[1].registers("input", 5, 2) == [0, 0]


async def test_holding_registers_and_general_address() -> None:
    bus = build_bus({1: "pzem004t"})
    assert reply(bus, 0xF8, "03 0001 0002") == "03 04 08 FC 00 01"  # threshold 2300 W, address 1
    assert reply(bus, 0xF8, "06 0002 0002") == "06 00 02 00 02"
    assert sorted(bus.devices) == [2]  # the module now listens on address 2
    bus.add(SimulatedModbusDevice("pzem004t", 7))
    assert reply(bus, 0xF8, "03 0001 0001") is None  # two devices: nobody takes the general address


# -- refusals ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "pdu", "expected"),
    [
        ("pzem004t", "04 0000 000B", "84 02"),  # one register past the block
        ("pzem004t", "10 0001 0001 02 0005", "90 01"),  # a PZEM has no 0x10
        ("pzem004t", "65 00", "E5 01"),  # unknown function
        ("pzem004t", "04 0000 0000", "84 03"),  # quantity 0 (pymodbus refuses to decode it)
        ("pzem004t", "06 0002 0000", "86 03"),  # address 0 is not allowed
        ("pzem004t", "06 0002 00F8", "86 03"),  # nor 248
        ("pzem004t", "06 0000 0001", "86 02"),  # not a holding register
        ("pmtr3", "06 0010 0001", "86 03"),  # half of the clock
        ("pmtr3", "06 0031 0007", "86 02"),  # relay count is read-only
        ("pmtr3", "10 0100 0002 04 0000 0000", "90 02"),  # event count is read-only
        ("pmtr3", "06 0020 0002", "86 03"),  # voltage mode 2 does not exist
        ("pmtr3", "06 0030 0010", "86 03"),  # relay 5 does not exist
        ("pmtr3", "04 0000 003A", None),  # the whole poll block, reserved gaps included
        ("pmtr3", "04 003A 0001", "84 02"),
    ],
)
async def test_refusals(profile: str, pdu: str, expected: str | None) -> None:
    bus = build_bus({1: profile})
    out = reply(bus, 1, pdu)
    if expected is None:
        assert out is not None
        assert out.startswith("04 74")  # 58 registers
    else:
        assert out == expected


async def test_a_refused_multi_register_write_changes_nothing() -> None:
    bus = build_bus({1: "pmtr3"})
    before = bus.devices[1].registers("holding", 0x40, 8)
    # slot 0 fields, then one register into the read-only relay count: refused as a whole
    assert reply(bus, 1, "10 0030 0002 04 0000 0009") == "90 02"
    assert bus.devices[1].registers("holding", 0x40, 8) == before
    assert bus.devices[1].registers("holding", 0x30, 1) == [1]


async def test_unknown_unit_gets_no_answer_on_rtu_and_0x0b_on_tcp() -> None:
    bus = build_bus({1: "pzem004t"})
    assert bus.respond(9, READ_10) is None
    assert bus.respond(9, READ_10, gateway=True) == bytes.fromhex("84 0B")
    assert bus.stats.unanswered == 2
    assert bus.respond(1, b"") is None


def test_device_arguments_are_checked() -> None:
    with pytest.raises(InputError):
        SimulatedModbusDevice("pzem004t", 0)
    with pytest.raises(InputError):
        SimulatedModbusDevice("pmtr3", 1, energy_wh=[1.0, 2.0])
    bus = build_bus({1: "pzem004t"})
    with pytest.raises(InputError):
        bus.add(SimulatedModbusDevice("pzem004t", 1))


# -- behaviour over time -----------------------------------------------------------------------------


async def test_energy_integrates_power_over_virtual_time() -> None:
    bus = build_bus({1: "pzem004t"})
    device = bus.devices[1]
    device.update()
    await asyncio.sleep(3600)
    assert device.registers("input", 5, 2) == [12345 + 283, 0]  # 283.8 Wh in an hour, counted whole
    assert device.energy_wh[0] == pytest.approx(12345 + 283.8)


async def test_alarm_follows_the_threshold_and_is_logged() -> None:
    bus = build_bus({1: "pmtr3"})
    device = bus.devices[1]
    assert reply(bus, 1, "06 0001 0064") == "06 00 01 00 64"  # 100 W < 283.8 W
    assert device.registers("input", 0x09, 1) == [0xFFFF]
    assert device.registers("input", 0x19, 1) == [0xFFFF]
    names = [name for _, name, _ in device.events()]
    assert names[-4:] == ["alarm_threshold_changed", "alarm_on", "alarm_on", "alarm_on"]
    assert reply(bus, 1, "06 0001 0BB8") == "06 00 01 0B B8"
    assert device.registers("input", 0x09, 1) == [0]


async def test_power_triggered_action_slot() -> None:
    values = StaticPhaseValues(PhaseValues(power_w=100.0))
    bus = ModbusBus([SimulatedModbusDevice("pmtr3", 1, values=values)])
    device = bus.devices[1]
    # slot 1: open relay 1 when the total power rises above 500 W
    assert reply(bus, 1, "10 0048 0008 10 0001 0001 0000 0002 01F4 0000 0000 0000") == "10 00 48 00 08"
    device.registers("input", 0, 1)
    assert device.registers("holding", 0x30, 1) == [1]
    values.set(1, PhaseValues(power_w=400.0))
    device.registers("input", 0, 1)  # 400 + 100 + 100 W: fires
    assert device.registers("holding", 0x30, 1) == [0]
    assert device.registers("holding", 0x48 + 6, 1) == [1]
    assert [name for _, name, _ in device.events()][-2:] == ["relay_opened", "action_fired"]


async def test_clock_runs_from_the_value_set(vclock: VirtualClock) -> None:
    bus = build_bus({1: "pmtr3"})
    device = bus.devices[1]
    unix = int(datetime(2031, 1, 1, tzinfo=UTC).timestamp())
    words = f"{unix & 0xFFFF:04X} {unix >> 16:04X}"
    assert reply(bus, 1, f"10 0010 0002 04 {words}") == "10 00 10 00 02"
    await asyncio.sleep(10)
    low, high = device.registers("holding", 0x10, 2)
    assert (high << 16 | low) == unix + 10
    assert device.device_time() == datetime(2031, 1, 1, 0, 0, 10, tzinfo=UTC)
    assert vclock.now().year == 2026


async def test_broadcast_executes_writes_everywhere() -> None:
    bus = build_bus({1: "pzem004t", 2: "pmtr3"})
    assert bus.respond(0, bytes.fromhex("06 0001 0010")) is None
    assert bus.respond(0, b"\x42") is None
    assert bus.respond(0, READ_10) is None  # a broadcast read is ignored
    for device in bus.devices.values():
        assert device.registers("holding", 1, 1) == [16]
        assert device.energy_wh == [0.0] * device.profile.phases


# -- serving ---------------------------------------------------------------------------------------


async def test_rtu_serving_ignores_corrupt_and_foreign_frames(vclock: VirtualClock) -> None:
    line = SimulatedLine(LineSettings(9600))
    bus = build_bus({1: "pzem004t"}, integrate_energy=False)
    task = bus.attach(line)
    t35 = rtu_silence_s(9600, 10)
    bad = bytearray(encode_rtu(1, READ_10))
    bad[3] ^= 1
    await line.a.write(bytes(bad))
    await asyncio.sleep(0.05)
    await line.a.write(encode_rtu(5, READ_10))  # not ours
    await asyncio.sleep(0.05)
    assert line.a.rx.buffered == 0
    started = vclock.monotonic()
    await line.a.write(encode_rtu(1, READ_10))
    data = b""
    while len(data) < 25:
        data += await line.a.read(64, timeout_s=1)
    assert data == REPLY_1
    assert vclock.monotonic() - started == pytest.approx((8 + 25) * LineSettings(9600).char_time_s + t35)
    assert bus.stats.corrupt_frames == 1
    assert bus.stats.unanswered == 1
    await stop_serving(task)
    await line.close()


async def test_tcp_serving_closes_a_broken_stream() -> None:
    bus = build_bus({1: "pzem004t"})
    server = await bus.serve_url("tcp://127.0.0.1:0")
    try:
        client = await open_transport(server.url)
        await client.write(encode_mbap(7, 1, READ_10))
        data = b""
        while len(data) < 29:
            data += await client.read(64, timeout_s=1)
        assert data[:2] == b"\x00\x07"
        await client.write(b"garbage that is not MBAP")
        with pytest.raises(ConnectionLost):
            await read_until_closed(client)
        await client.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_several_units_on_one_line_keep_their_values_apart() -> None:
    values = StaticPhaseValues(PhaseValues(voltage_v=240.0))
    bus = ModbusBus(
        [SimulatedModbusDevice("pzem004t", 1), SimulatedModbusDevice("pzem004t", 2, values=values)]
    )
    line = SimulatedLine(LineSettings(9600))
    task = bus.attach(line)
    session = ModbusSession(line.a)
    assert (await session.read_registers(1, RegisterTable.INPUT, 0, 1)) == [2300]
    assert (await session.read_registers(2, RegisterTable.INPUT, 0, 1)) == [2400]
    await stop_serving(task)
    await line.close()
