"""Our DLMS client (session/dlms.py DlmsClient) against the simulated DLMS meter on the paths
the first tests left out: the wrapper over UDP (public and HLS-GMAC ciphered, and a UDP fleet),
HDLC over a real pty (``hdlc+serial://<slave path>``), the ``ua-no-info`` and reaction-delay
quirks, and drop/corrupt faults while serving (the client must raise, never hang).

A pty hands bytes over from a kernel work queue, so these tests run on a virtual clock with a
small real grace period (tests/transport/conftest.py explains why); every test requests the
``vclock`` fixture so that the clock is the one the test runs on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from metercom.clock import VirtualClock
from metercom.errors import RemoteProtocolError, TransportError
from metercom.model.cosem import Quantity
from metercom.session.dlms import DlmsClient, DlmsKeys
from metercom.sim.dlms import (
    DEFAULT_AUTHENTICATION_KEY,
    DEFAULT_ENCRYPTION_KEY,
    DlmsMeterDevice,
    Quirks,
    build_meter,
    serve_fleet,
)
from metercom.sim.fleet import Faults, LinkFaults
from metercom.transport import open_pty, serve

PTY_GRACE_S = 0.05
KEYS = DlmsKeys(DEFAULT_ENCRYPTION_KEY, DEFAULT_AUTHENTICATION_KEY, b"MTCREAD2")


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock(real_grace_s=PTY_GRACE_S)


def _device(clock: VirtualClock, quirks: Quirks | None = None) -> DlmsMeterDevice:
    return DlmsMeterDevice(build_meter("generic", clock=clock, seed=8, serial="00000088"), quirks=quirks)


@asynccontextmanager
async def _pty_meter(device: DlmsMeterDevice) -> AsyncIterator[str]:
    master, slave_path = await open_pty()
    task = asyncio.get_running_loop().create_task(device.serve_hdlc(master))
    try:
        yield f"hdlc+serial://{slave_path}?baud=9600"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await master.close()


# -- UDP -------------------------------------------------------------------------------------------


async def test_udp_wrapper_public_and_hls_gmac(vclock: VirtualClock) -> None:
    device = _device(vclock)
    async with await serve("udp://127.0.0.1:0", device.serve_wrapper) as server:
        async with DlmsClient.connect(server.url) as client:
            assert await client.get("0-0:96.1.0") in ("00000088", b"00000088")
        async with DlmsClient.connect(server.url, client=1, auth="hls-gmac", keys=KEYS) as client:
            assert client.association is not None
            assert client.association.ciphered
            assert isinstance(await client.get("1-0:1.8.0"), Quantity)


async def test_udp_fleet_each_meter_answers(vclock: VirtualClock) -> None:
    async with await serve_fleet(3, "udp://127.0.0.1:0", clock=vclock, seed=6) as fleet:
        for m in fleet.meters:
            assert m.url.startswith("udp://")
            async with DlmsClient.connect(m.url) as client:
                serial = await client.get("0-0:96.1.0")
            assert serial in (m.serial, m.serial.encode())


# -- HDLC over a pty -------------------------------------------------------------------------------


async def test_hdlc_over_a_pty_public_and_management(vclock: VirtualClock) -> None:
    device = _device(vclock)
    async with _pty_meter(device) as url:
        async with DlmsClient.connect(url, physical=device.physical_address) as client:
            assert (await client.read_clock()).tzinfo is not None
        async with DlmsClient.connect(
            url, physical=device.physical_address, client=1, auth="hls-gmac", keys=KEYS
        ) as client:
            assert isinstance(await client.get("1-0:1.8.0"), Quantity)


async def test_ua_without_information_field_is_accepted(vclock: VirtualClock) -> None:
    device = _device(vclock, Quirks(ua_without_info=True))
    async with _pty_meter(device) as url, DlmsClient.connect(url, physical=device.physical_address) as client:
        assert await client.get("0-0:96.1.0") in ("00000088", b"00000088")


async def test_reaction_delay_quirk_delays_every_answer(vclock: VirtualClock) -> None:
    loop = asyncio.get_running_loop()
    elapsed = []
    for delay_s in (0.0, 0.4):
        device = _device(vclock, Quirks(reaction_delay_s=delay_s))
        async with await serve("tcp://127.0.0.1:0", device.serve_hdlc) as server:
            url = server.url.replace("tcp://", "hdlc+tcp://")
            started = loop.time()
            async with DlmsClient.connect(url, physical=device.physical_address) as client:
                for _ in range(3):
                    await client.get("0-0:96.1.0")
            elapsed.append(loop.time() - started)
    # SNRM/UA, AARQ/AARE, 3 GETs, RLRQ/RLRE, DISC/UA: seven answers, each 0.4 s later.
    assert elapsed[1] - elapsed[0] == pytest.approx(7 * 0.4, abs=0.2)


# -- faults while serving --------------------------------------------------------------------------


async def _read_serial(url: str, physical: int, *, times: int) -> None:
    async with DlmsClient.connect(
        url, physical=physical, timeout_s=2.0, hdlc_timeout_s=0.5, hdlc_retries=1
    ) as client:
        for _ in range(times):
            await client.get("0-0:96.1.0")


@pytest.mark.parametrize("fault", ["drop", "corrupt"])
async def test_hdlc_faults_raise_instead_of_hanging(vclock: VirtualClock, fault: str) -> None:
    device = _device(vclock)
    device.faults = LinkFaults(drop_after=2) if fault == "drop" else LinkFaults(corrupt_every=1)
    async with await serve("tcp://127.0.0.1:0", device.serve_hdlc) as server:
        url = server.url.replace("tcp://", "hdlc+tcp://")
        with pytest.raises((TransportError, RemoteProtocolError)):
            await _read_serial(url, device.physical_address, times=5)


async def test_one_port_fleet_with_dropping_meter(vclock: VirtualClock) -> None:
    fleet = await serve_fleet(2, "tcp://127.0.0.1:0", clock=vclock, one_port=True, faults=Faults(drop=1.0))
    async with fleet:
        url = (fleet.shared_url or "").replace("tcp://", "hdlc+tcp://")
        with pytest.raises((TransportError, RemoteProtocolError)):
            await _read_serial(url, fleet.meters[0].physical_address, times=6)
