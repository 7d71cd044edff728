"""The simulator on a pty, read by our client through the slave path as through a serial port."""

from __future__ import annotations

from decimal import Decimal

import pytest

from metercom.clock import VirtualClock
from metercom.session.modbus import open_modbus
from metercom.sim.modbus import build_bus, stop_serving


@pytest.fixture
def vclock() -> VirtualClock:
    # A pty hands bytes over through a kernel work queue: let the virtual loop wait for real I/O.
    return VirtualClock(real_grace_s=0.2)


async def test_read_and_scan_over_a_pty(vclock: VirtualClock) -> None:
    bus = build_bus({1: "pzem004t", 3: "pmtr3"})
    master, task = await bus.serve_pty()
    try:
        async with await open_modbus(master.slave_path, timeout_s=0.5) as session:
            assert session.framing == "rtu"
            assert session.silence_s == pytest.approx(0.02)  # not the simulated line: the OS floor
            readings = await session.device(1, "pzem004t").read()
            assert readings[0].value == Decimal("230.0")
            events = await session.device(3, "pmtr3").read_events()
            assert events[0].name == "power_on"
            found = await session.scan(range(1, 5), timeout_s=0.1)
            assert [(r.unit, r.profile) for r in found] == [(1, "pzem004t"), (3, "pmtr3")]
    finally:
        await stop_serving(task)
        await master.close()
