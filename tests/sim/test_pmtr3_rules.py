"""The simulated pmtr3 evaluates pushed rules itself: rule slots written over Modbus, sampled once
per second of device time with the shared engine (moving average, hysteresis), relays switched,
transitions logged; invalid slot images are refused and change nothing (fuzzed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metercom.clock import VirtualClock
from metercom.codec.modbus.exceptions import IllegalDataValue
from metercom.model.rules import Command, Rule, encode_slot
from metercom.model.rules.slots import image_registers, relay_outputs, slot_crc
from metercom.session.modbus import ModbusDevice, ModbusSession
from metercom.sim.modbus import (
    RULE_FALSE,
    RULE_IDLE,
    RULE_TRUE,
    ModbusBus,
    PhaseValues,
    SimulatedModbusDevice,
    stop_serving,
)
from metercom.transport import LineSettings, SimulatedLine

START = datetime(2026, 3, 2, tzinfo=UTC)
OUTPUTS = relay_outputs(4)


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock(START)


def swell(phase: int, now: datetime) -> PhaseValues:
    """230 V, but L2 at 260 V from t = 100 s to t = 200 s."""
    t = (now - START).total_seconds()
    return PhaseValues(
        voltage_v=260.0 if phase == 2 and 100 <= t < 200 else 230.0, current_a=5.0, power_w=1150.0
    )


def over_voltage(**kwargs: object) -> Rule:
    options: dict[str, object] = {
        "window": timedelta(seconds=10),
        "recovery": timedelta(seconds=60),
        "action": Command.DISCONNECT,
        "targets": ("relay1",),
    }
    options.update(kwargs)
    return Rule.from_text("over-voltage", "(L1U > 253) || (L2U > 253) || (L3U > 253)", **options)  # type: ignore[arg-type]


@asynccontextmanager
async def pmtr3() -> AsyncIterator[tuple[SimulatedModbusDevice, ModbusDevice]]:
    sim = SimulatedModbusDevice("pmtr3", 1, values=swell, start=START, refresh_period_s=0.0)
    bus = ModbusBus([sim])
    line = SimulatedLine(LineSettings(115200))
    task = bus.attach(line)
    session = ModbusSession(line.a)
    try:
        yield sim, session.device(1, "pmtr3")
    finally:
        await stop_serving(task)
        await line.close()


async def until(clock: VirtualClock, seconds: float) -> None:
    await asyncio.sleep(max(0.0, (START + timedelta(seconds=seconds) - clock.now()).total_seconds()))


def relay(sim: SimulatedModbusDevice, number: int) -> bool:
    return bool(sim.registers("holding", 0x30, 1)[0] >> (number - 1) & 1)


def logged(sim: SimulatedModbusDevice, *names: str) -> list[tuple[str, int]]:
    return [(name, detail) for _, name, detail in sim.events() if name in names]


async def test_a_pushed_rule_switches_the_relay_on_the_meters_own_samples(vclock: VirtualClock) -> None:
    async with pmtr3() as (sim, device):
        image = encode_slot(over_voltage(), OUTPUTS)
        await device.write_rule_image(2, image)
        assert await device.read_rule_image(2) == image
        (status,) = [s for s in await device.read_rule_status() if s.index == 2]
        assert status.crc == slot_crc(image)
        assert status.state == 0
        await until(vclock, 106.9)
        assert relay(sim, 1)
        await until(vclock, 107.0)
        assert not relay(sim, 1)  # (2 x 230 + 8 x 260) / 10 = 254 on the sample of 107 s
        assert sim.registers("input", 0x01, 2) == [0, 0]  # the main contactor carries the load
        await until(vclock, 261.9)
        assert not relay(sim, 1)  # first false average at 202 s; recovery holds 60 s
        await until(vclock, 262.0)
        assert relay(sim, 1)
        status = (await device.read_rule_status())[2]
    assert (status.state, status.result, status.triggered_count) == (0, RULE_FALSE, 1)
    assert status.changed_at == int((START + timedelta(seconds=262)).timestamp())
    times = [
        (name, detail, (when - START).total_seconds())
        for when, name, detail in _events_with_time(sim)
        if name in ("relay_opened", "relay_closed", "rule_triggered", "rule_recovered")
    ]
    assert times == [
        ("relay_opened", 1, 107.0),
        ("rule_triggered", 2, 107.0),
        ("relay_closed", 1, 262.0),
        ("rule_recovered", 2, 262.0),
    ]


def _events_with_time(sim: SimulatedModbusDevice) -> list[tuple[datetime, str, int]]:
    spec = sim.profile.event_log
    assert spec is not None
    out = []
    for seq, name, detail in sim.events():
        base = spec.entries.address(spec.index_of(seq))
        low, high = sim.registers("holding", base + 2, 2)
        out.append((datetime.fromtimestamp(high << 16 | low, UTC), name, detail))
    return out


async def test_a_dry_run_slot_logs_but_never_switches(vclock: VirtualClock) -> None:
    async with pmtr3() as (sim, device):
        await device.write_rule_image(0, encode_slot(over_voltage(dry_run=True), OUTPUTS))
        await until(vclock, 150)
        assert relay(sim, 1)
        assert (await device.read_rule_status())[0].state == 1  # it would have triggered
        await until(vclock, 300)
    assert relay(sim, 1)
    assert logged(sim, "rule_dry_run_triggered", "rule_dry_run_recovered", "relay_opened") == [
        ("rule_dry_run_triggered", 0),
        ("rule_dry_run_recovered", 0),
    ]


async def test_an_auxiliary_output_goes_high_then_low(vclock: VirtualClock) -> None:
    rule = Rule.from_text(
        "swell-lamp", "L2U > 253", action=Command.HIGH, targets=("relay3",), recovery=timedelta(seconds=5)
    )
    async with pmtr3() as (sim, device):
        await device.write_rule_image(0, encode_slot(rule, OUTPUTS))
        await until(vclock, 99.5)
        assert not relay(sim, 3)
        assert relay(sim, 1)
        await until(vclock, 100.0)
        assert relay(sim, 3)
        assert (await device.read_rule_status())[0].result == RULE_TRUE
        await until(vclock, 204.5)
        assert relay(sim, 3)
        await until(vclock, 205.0)  # false from 200 s, 5 s of recovery
        assert not relay(sim, 3)
        assert relay(sim, 1)


async def test_rewriting_the_same_image_changes_nothing_and_an_empty_image_clears(
    vclock: VirtualClock,
) -> None:
    async with pmtr3() as (sim, device):
        image = encode_slot(over_voltage(), OUTPUTS)
        await device.write_rule_image(1, image)
        await until(vclock, 150)
        await device.write_rule_image(1, image)
        assert sim.rule_slot_writes == 1
        assert (await device.read_rule_status())[1].state == 1  # state and averages kept
        await device.write_rule_image(1, b"")
        assert await device.read_rule_image(1) == b""
        status = (await device.read_rule_status())[1]
        assert (status.state, status.result, status.crc) == (0, RULE_IDLE, 0)
        assert not relay(sim, 1)  # clearing a slot leaves the outputs where they are
    assert logged(sim, "rule_slot_written") == [("rule_slot_written", 1), ("rule_slot_written", 1)]


async def test_invalid_slot_writes_are_refused_and_change_nothing(vclock: VirtualClock) -> None:
    async with pmtr3() as (sim, device):
        good = encode_slot(over_voltage(), OUTPUTS)
        await device.write_rule_image(0, good)
        before = sim.registers("holding", 0x0300, 120)
        session = device.session
        words = image_registers(good)
        crc = slot_crc(good)
        bad_crc = [len(good), (crc ^ 1) & 0xFFFF, crc >> 16, 0, *words]
        too_many_outputs = encode_slot(over_voltage(targets=("relay5",)), {"relay5": 5})
        wrong_outputs = [
            len(too_many_outputs),
            slot_crc(too_many_outputs) & 0xFFFF,
            slot_crc(too_many_outputs) >> 16,
            0,
            *image_registers(too_many_outputs),
        ]
        for registers in (bad_crc, wrong_outputs, [len(good), crc & 0xFFFF, crc >> 16, 0, *words[:-1]]):
            with pytest.raises(IllegalDataValue):
                await session.write_registers(1, 0x0300, registers)
        assert sim.registers("holding", 0x0300, 120) == before
        assert sim.rule_slot_writes == 1


def _slot_write_pdu(address: int, registers: list[int]) -> bytes:
    count = len(registers)
    return (
        bytes((0x10,))
        + address.to_bytes(2, "big")
        + count.to_bytes(2, "big")
        + bytes((2 * count,))
        + b"".join(r.to_bytes(2, "big") for r in registers)
    )


_IMAGE = encode_slot(over_voltage(), OUTPUTS)


@st.composite
def slot_writes(draw: st.DrawFn) -> list[int]:
    """Mutations of a valid slot write (bytes flipped, cut, grown) and random register blocks."""
    if draw(st.booleans()):
        return draw(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=120))
    image = bytearray(_IMAGE)
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(image) - 1))
        image[at] = draw(st.integers(0, 255))
    image = image[: draw(st.integers(0, len(image)))] + bytes(draw(st.binary(max_size=8)))
    length = draw(st.sampled_from([len(image), draw(st.integers(0, 300))]))
    crc = slot_crc(bytes(image)) if draw(st.booleans()) else draw(st.integers(0, 0xFFFFFFFF))
    return [length & 0xFFFF, crc & 0xFFFF, crc >> 16, 0, *image_registers(bytes(image))]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(registers=slot_writes(), slot=st.integers(0, 7))
def test_fuzzed_slot_writes_are_answered_never_crash_the_device(registers: list[int], slot: int) -> None:
    bus = ModbusBus([SimulatedModbusDevice("pmtr3", 1, refresh_period_s=0.0)])
    device = bus.devices[1]
    reply = bus.respond(1, _slot_write_pdu(0x0300 + 120 * slot, registers[:123]))
    assert reply is not None
    assert reply[0] == 0x10 or reply[:2] in (b"\x90\x02", b"\x90\x03")
    status = device.rule_status(slot)
    if reply[0] == 0x90:
        assert device.rule_slot_writes == 0
        assert status["crc"] == 0
    else:
        image_length = registers[0]
        assert status["crc"] == (registers[1] | registers[2] << 16)
        assert device.rule_slot_writes == (1 if image_length else 0)
