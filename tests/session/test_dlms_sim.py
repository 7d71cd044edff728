"""Our DLMS client against our own simulated meter (metercom.sim.dlms, the codec's server role)
over every link: the wrapper on TCP and UDP, HDLC on the simulated 9,600 Bd line, and mode E
(IEC 62056-21 sign-on at 300 Bd, then HDLC) on the simulated line; public client and the
HLS-GMAC ciphered management client."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from metercom.cli.dlms import register_read, run_read
from metercom.clock import VirtualClock
from metercom.codec.dlms.security import OWN_COUNTER
from metercom.errors import DeviceRejectedError
from metercom.model.cosem import Quantity
from metercom.session.counters import FileCounterStore
from metercom.session.dlms import DlmsClient, DlmsKeys
from metercom.sim.dlms import (
    DEFAULT_AUTHENTICATION_KEY,
    DEFAULT_ENCRYPTION_KEY,
    DlmsMeterDevice,
    build_meter,
)
from metercom.transport import SimulatedLine, serve

CLIENT_TITLE = b"MTCREAD1"


def device(vclock: VirtualClock) -> DlmsMeterDevice:
    return DlmsMeterDevice(build_meter("generic", clock=vclock, seed=5, serial="00000055"))


@asynccontextmanager
async def link(dev: DlmsMeterDevice, kind: str) -> AsyncIterator[tuple[Any, dict[str, Any]]]:
    if kind in ("tcp", "udp"):
        async with await serve(f"{kind}://127.0.0.1:0", dev.serve_wrapper) as server:
            yield server.url, {}
        return
    line = SimulatedLine()
    handler = dev.serve_hdlc if kind == "hdlc" else dev.serve_mode_e
    task = asyncio.create_task(handler(line.b))
    try:
        yield line.a, {"link": "hdlc" if kind == "hdlc" else "iec21+hdlc", "physical": dev.physical_address}
    finally:
        await line.b.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("kind", ["tcp", "udp", "hdlc", "mode-e"])
async def test_public_client_reads_identification_and_clock(vclock: VirtualClock, kind: str) -> None:
    dev = device(vclock)
    async with link(dev, kind) as (target, options), DlmsClient.connect(target, **options) as client:
        assert isinstance(await client.get("0-0:96.1.0"), str | bytes)
        when = await client.read_clock()
        assert when.tzinfo is not None
        with pytest.raises(DeviceRejectedError):
            await client.get("1-0:1.8.0")  # the public client may not read energy


@pytest.mark.parametrize("kind", ["tcp", "hdlc"])
async def test_management_client_hls_gmac_ciphered(vclock: VirtualClock, kind: str) -> None:
    dev = device(vclock)
    keys = DlmsKeys(DEFAULT_ENCRYPTION_KEY, DEFAULT_AUTHENTICATION_KEY, CLIENT_TITLE)
    async with (
        link(dev, kind) as (target, options),
        DlmsClient.connect(target, client=1, auth="hls-gmac", keys=keys, **options) as client,
    ):
        assert client.association is not None
        assert client.association.ciphered
        energy = await client.get("1-0:1.8.0")
        assert isinstance(energy, Quantity)
        assert isinstance(energy.value, Decimal)
        now = await client.read_clock()
        profile = await client.read_profile("1-0:99.1.0", start=now - dt.timedelta(days=1), end=now)
        assert len(profile) > 0
        assert all(isinstance(row[0], dt.datetime) for row in profile.rows)


async def test_cli_keeps_the_invocation_counter_between_runs(vclock: VirtualClock, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(
        f"ek = {DEFAULT_ENCRYPTION_KEY.hex()}\nak = {DEFAULT_AUTHENTICATION_KEY.hex()}\n"
        f"system_title = {CLIENT_TITLE.hex()}\n"
    )
    counters = tmp_path / "counters.json"
    dev = device(vclock)
    seen = []
    async with await serve("tcp://127.0.0.1:0", dev.serve_wrapper) as server:
        for _ in range(2):
            parser = argparse.ArgumentParser()
            register_read(parser.add_subparsers(dest="protocol"))
            args = parser.parse_args(
                [
                    "dlms",
                    server.url,
                    "--client",
                    "1",
                    "--auth",
                    "hls-gmac",
                    "--key-file",
                    str(keys),
                    "--counter-file",
                    str(counters),
                    "--obis",
                    "1-0:1.8.0",
                    "--json",
                ]
            )
            out = io.StringIO()
            assert await run_read(args, out) == 0
            assert json.loads(out.getvalue())["readings"][0]["unit"] == "Wh"
            seen.append(FileCounterStore(counters).load(OWN_COUNTER))
    assert seen[0] is not None
    assert seen[1] is not None
    assert seen[1] > seen[0]
