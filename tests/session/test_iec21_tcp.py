"""Iec21Session against the simulated meter over real TCP on 127.0.0.1, in-process.

Loopback bytes are readable the instant they are written, so this runs on virtual time too:
only the reaction times pass (TCP has no baud rate), and ``set_line`` is recorded only.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from metercom.codec.iec62056_21 import SAMPLE_READOUT_BYTES
from metercom.errors import AuthenticationError, FrameError, RemoteProtocolError, TransportTimeout
from metercom.session.iec21 import Iec21Session
from metercom.sim.iec21 import ALWAYS, Iec21Faults, Iec21MeterConfig, serve_iec21
from metercom.transport import LineSettings, open_transport


async def test_readout_over_tcp() -> None:
    async with await serve_iec21("tcp://127.0.0.1:0") as server:
        assert server.url.startswith("tcp://127.0.0.1:")
        async with await open_transport(server.url) as transport:
            started = asyncio.get_running_loop().time()
            readout = await Iec21Session(transport).readout()
            elapsed = asyncio.get_running_loop().time() - started
            assert transport.line == LineSettings.parse("7E1", 300)  # recorded: TCP has no line
    assert readout.raw == SAMPLE_READOUT_BYTES
    assert readout.baud_rate == 9600
    assert elapsed == pytest.approx(3 * 0.2, abs=1e-3)  # three reaction times, no wire time


async def test_programming_over_tcp_and_state_shared_by_connections() -> None:
    async with await serve_iec21("tcp://127.0.0.1:0") as server:
        async with (
            await open_transport(server.url) as transport,
            Iec21Session(transport, password="00000000").programming() as prog,
        ):
            await prog.write("0.9.1", "235959")
        async with (
            await open_transport(server.url) as transport,
            Iec21Session(transport).programming() as prog,
        ):
            assert (await prog.read("0.9.1")).value == "235959"
            assert (await prog.read("1.8.0")).value == Decimal("343642.9")
    assert server.meter.stats.writes == 1


async def test_errors_over_tcp() -> None:
    config = Iec21MeterConfig(faults=Iec21Faults(corrupt_bcc=ALWAYS))
    async with (
        await serve_iec21("tcp://127.0.0.1:0", config) as server,
        await open_transport(server.url) as transport,
    ):
        session = Iec21Session(transport, retries=0, password="wrong")
        with pytest.raises(FrameError):
            await session.readout()
        with pytest.raises(FrameError, match="password"):  # the refusal's BCC is corrupt too
            async with session.programming():
                pass
    async with (
        await serve_iec21("tcp://127.0.0.1:0") as server,
        await open_transport(server.url) as transport,
    ):
        with pytest.raises(AuthenticationError):
            async with Iec21Session(transport, password="wrong").programming():
                pass
    config = Iec21MeterConfig(faults=Iec21Faults(no_answer=ALWAYS))
    async with (
        await serve_iec21("tcp://127.0.0.1:0", config) as server,
        await open_transport(server.url) as transport,
    ):
        with pytest.raises(TransportTimeout, match=r"5 s at 300 Bd on tcp://127\.0\.0\.1"):
            await Iec21Session(transport, retries=0, response_timeout_s=5.0).readout()


async def test_tcp_modem_passing_the_parity_bit() -> None:
    # The meter's side emulates a 7E1 UART on the byte pipe (what a transparent modem passes on);
    # the reader sees an 8N1 pipe and adds/strips the parity bit itself.
    async with await serve_iec21("tcp://127.0.0.1:0?format=7E1") as server:
        host_port = server.url.removeprefix("tcp://").partition("?")[0]
        async with await open_transport(f"tcp://{host_port}") as transport:
            readout = await Iec21Session(transport, software_parity=True).readout()
            with pytest.raises(RemoteProtocolError, match="software_parity"):
                await Iec21Session(transport, retries=0).readout()
    assert readout.raw == SAMPLE_READOUT_BYTES
