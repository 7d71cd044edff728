"""Iec21Session against the simulated meter on a pseudo-terminal, opened like a serial port.

A pty hands bytes over through a kernel work queue, microseconds later, so the virtual clock
gets a small real grace period (the loop waits that long for real I/O before each jump).
"""

from __future__ import annotations

import pytest

from metercom.clock import VirtualClock
from metercom.codec.iec62056_21 import SAMPLE_READOUT_BYTES
from metercom.session.iec21 import Iec21Session
from metercom.sim.iec21 import serve_iec21
from metercom.transport import open_transport


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock(real_grace_s=0.05)


async def test_readout_and_programming_over_a_pty(vclock: VirtualClock) -> None:
    async with await serve_iec21("pty") as server:
        assert server.url.startswith("/dev/")
        async with await open_transport(server.url) as port:
            session = Iec21Session(port, password="00000000")
            readout = await session.readout()
            async with session.programming() as prog:
                await prog.write("0.9.1", "080000")
                assert (await prog.read("0.9.1")).value == "080000"
    assert readout.raw == SAMPLE_READOUT_BYTES
    assert readout.baud_rate == 9600
    assert server.meter.stats.requests == 2
