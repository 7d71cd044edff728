"""Interop: our DLMS client (metercom.session.dlms) reads a meter served by gurux-dlms 1.0.203's
server classes, in-process, over the IP wrapper (TCP) and HDLC (TCP converter and the simulated
9,600 Bd line). The gurux server needs shims to work at all; ``gurux_harness.py`` records every
one in its docstring table."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

pytest.importorskip("gurux_dlms")

from gurux_dlms.enums.Authentication import Authentication
from gurux_harness import PROFILE_START, GuruxMeter, serve_gurux

from metercom.errors import AuthenticationError
from metercom.model.cosem import Quantity
from metercom.model.units import Unit
from metercom.session.dlms import DlmsClient
from metercom.transport import LineSettings, SimulatedLine, Transport, serve

pytestmark = pytest.mark.interop


@asynccontextmanager
async def gurux_tcp(meter: GuruxMeter, scheme: str) -> AsyncIterator[str]:
    async def handler(transport: Transport) -> None:
        await serve_gurux(transport, meter)

    async with await serve("tcp://127.0.0.1:0", handler) as server:
        yield server.url.replace("tcp://", f"{scheme}://")


async def read_everything(client: DlmsClient) -> None:
    assert await client.get("1-0:1.8.0") == Quantity(Decimal("12345.67"), Unit.WATT_HOUR)
    assert await client.get("0-0:96.1.0") == "GRX0001"
    values = await client.get_many(["1-0:1.8.0", "0-0:96.1.0"])
    assert values == [Quantity(Decimal("12345.67"), Unit.WATT_HOUR), "GRX0001"]
    objects = await client.read_object_list()
    assert {str(o.logical_name) for o in objects} >= {"1-0:1.8.0*255", "1-0:99.1.0*255", "0-0:1.0.0*255"}
    start = PROFILE_START + timedelta(hours=2)
    profile = await client.read_profile("1-0:99.1.0", start=start, end=start + timedelta(hours=1))
    assert len(profile) == 5
    assert profile.rows[0][0] == start
    assert profile.rows[0][1] == Decimal("1000.08")  # (100000 + 8) * 10^-2
    whole = await client.read_profile("1-0:99.1.0")
    assert len(whole) == 96
    assert whole.blocks >= 10
    assert whole.rows[-1][0] == PROFILE_START + timedelta(minutes=15 * 95)


@pytest.mark.parametrize("scheme", ["tcp", "hdlc+tcp"])
async def test_no_authentication(scheme: str) -> None:
    meter = GuruxMeter(hdlc=scheme.startswith("hdlc"))
    async with gurux_tcp(meter, scheme) as url, DlmsClient.connect(url, max_pdu_size=512) as client:
        await read_everything(client)
    # the release reached gurux: it dropped the DLMS association
    assert not meter.settings.connected & 2


@pytest.mark.parametrize("scheme", ["tcp", "hdlc+tcp"])
async def test_low_level_security(scheme: str) -> None:
    meter = GuruxMeter(
        hdlc=scheme.startswith("hdlc"), authentication=Authentication.LOW, password=b"12345678"
    )
    async with gurux_tcp(meter, scheme) as url:
        async with DlmsClient.connect(url, auth="low", password="12345678", max_pdu_size=512) as client:
            await read_everything(client)
        with pytest.raises(AuthenticationError, match="authentication-failure"):
            async with DlmsClient.connect(url, auth="low", password="00000000"):
                pass


async def test_hdlc_on_a_simulated_9600_baud_line_with_large_frames() -> None:
    meter = GuruxMeter(hdlc=True, max_info=1024)
    line = SimulatedLine(LineSettings(9600))
    task = asyncio.create_task(serve_gurux(line.b, meter))
    loop = asyncio.get_running_loop()
    try:
        async with DlmsClient.connect(line.a, hdlc_max_info=1024) as client:
            started = loop.time()
            profile = await client.read_profile("1-0:99.1.0")
            elapsed = loop.time() - started
        assert len(profile) == 96
        # 4.9 kB at 960 B/s: about 5.2 s of wire time at least, and no stalls
        assert 5.0 < elapsed < 7.0
    finally:
        await line.b.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_clock_is_read_as_an_aware_datetime() -> None:
    meter = GuruxMeter()
    async with gurux_tcp(meter, "tcp") as url, DlmsClient.connect(url) as client:
        when = await client.read_clock()
        assert when.tzinfo is not None
        assert abs(when - datetime(2026, 1, 1, 5, tzinfo=UTC)) < timedelta(seconds=1)
