"""An RS-485 bus of 10 simulated units at 9600 Bd 8N1: scanned and read on the virtual clock.

Every figure is the wire time the baud rate allows: characters of 10 bits, t3.5 of silence
before every frame (the master's gap before a request, the slave's before its reply), and the
scan's reply timeout for every address where nobody answers. The simulated line delivers each
character at the end of its stop bit, so the elapsed virtual time must match to the microsecond.
"""

from __future__ import annotations

import asyncio

import pytest

from metercom.clock import VirtualClock
from metercom.codec.modbus import rtu_silence_s
from metercom.errors import TransportTimeout
from metercom.session.modbus import ModbusSession
from metercom.sim.modbus import build_bus
from metercom.transport import LineSettings, SimulatedLine

LINE = LineSettings(9600)
C = LINE.char_time_s  # 1.0417 ms
T35 = rtu_silence_s(9600, 10)  # 3.646 ms
UNITS = {1: "pzem004t", 2: "pzem004t", 3: "pzem004t", 5: "pzem004t", 8: "pmtr3", 13: "pzem004t"}
UNITS |= {21: "pmtr3", 34: "pzem004t", 55: "pzem004t", 89: "pmtr3"}
SCAN_TIMEOUT_S = 0.02
REPLY_CHARS = {"pzem004t": 25, "pmtr3": 5 + 2 * 58}


def scan_wire_time(last_unit: int) -> float:
    """Every request's duration plus the master's t3.5 before each request but the first."""
    durations = []
    for unit in range(1, last_unit + 1):
        profile = UNITS.get(unit)
        if profile is None:
            durations.append(8 * C + SCAN_TIMEOUT_S)  # pmtr3 probe, no answer: absent
        elif profile == "pmtr3":
            durations.append(8 * C + T35 + 7 * C)  # model code 0x5033: identified
        else:
            durations.append(8 * C + T35 + 5 * C)  # pmtr3 probe: exception 0x02
            durations.append(8 * C + T35 + 25 * C)  # PZEM probe: ten registers
    return sum(durations) + (len(durations) - 1) * T35


async def test_scan_and_read_ten_units_at_the_wire_limit(vclock: VirtualClock) -> None:
    line = SimulatedLine(LINE, name="rs485")
    bus = build_bus(UNITS, integrate_energy=False)
    task = bus.attach(line)
    session = ModbusSession(line.a, timeout_s=SCAN_TIMEOUT_S)
    try:
        found = await session.scan(range(1, 101), timeout_s=SCAN_TIMEOUT_S)
        scanned_at = vclock.monotonic()
        assert {r.unit: r.profile for r in found} == UNITS
        assert scanned_at == pytest.approx(scan_wire_time(100), abs=1e-6)

        # Read every unit, all requested at once: the scheduler puts them on the bus one at a time.
        session.timeout_s = 0.2
        devices = [session.device(unit, profile) for unit, profile in UNITS.items()]
        results = await asyncio.gather(*(device.read() for device in devices))
        read_s = vclock.monotonic() - scanned_at
        assert [len(r) for r in results] == [7 if p == "pzem004t" else 27 for p in UNITS.values()]
        expected = sum(T35 + 8 * C + T35 + REPLY_CHARS[p] * C for p in UNITS.values())
        assert read_s == pytest.approx(expected, abs=1e-6)
        stats = line.stats.a_to_b
        assert stats.bytes_sent == stats.bytes_delivered  # nothing lost on a clean line
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await line.close()


async def test_a_dead_unit_costs_its_timeouts_and_nothing_more(vclock: VirtualClock) -> None:
    """Nine live units and one that never answers, all polled in rounds at once."""
    line = SimulatedLine(LINE, name="rs485")
    live = dict.fromkeys(range(1, 10), "pzem004t")
    bus = build_bus(live, integrate_energy=False)
    task = bus.attach(line)
    session = ModbusSession(line.a, timeout_s=0.05, retries=1)
    finish: dict[int, float] = {}
    failures: dict[int, int] = {}

    async def poll(unit: int, rounds: int) -> None:
        device = session.device(unit, "pzem004t")
        for _ in range(rounds):
            try:
                await device.read()
            except TransportTimeout:
                failures[unit] = failures.get(unit, 0) + 1
        finish[unit] = vclock.monotonic()

    try:
        await asyncio.gather(*(poll(unit, 3) for unit in [*live, 10]))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await line.close()
    assert failures == {10: 3}
    poll_s = T35 + 8 * C + T35 + 25 * C
    dead_attempt_s = T35 + 8 * C + 0.05
    # Per round: nine polls and the dead unit's two attempts, each retry behind the others' turns.
    assert max(finish[u] for u in live) <= 3 * (9 * poll_s + 2 * dead_attempt_s) + 1e-6
    for unit in live:
        assert session.scheduler.stats[unit].max_wait_s <= 8 * poll_s + 2 * dead_attempt_s + 1e-6
    assert session.scheduler.stats[10].attempts == 6
